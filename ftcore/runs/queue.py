"""The queue every backend keeps: runs first in, first out, and runs submitted together keeping one place.

A backend holds its own lock around every call: the queue itself is plain data.
"""

from __future__ import annotations

from collections.abc import Iterator

from .backend import QueuedRun


class RunQueue:
    """Queued jobs, the next to start first; a group of jobs submitted together counts as one place."""

    def __init__(self) -> None:
        self._jobs: list[QueuedRun] = []

    def __iter__(self) -> Iterator[QueuedRun]:
        return iter(list(self._jobs))

    def __contains__(self, job: object) -> bool:
        return job in self._jobs

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def add(self, jobs: tuple[QueuedRun, ...] | list[QueuedRun]) -> None:
        """Put jobs at the end of the line, in order."""
        self._jobs.extend(jobs)

    def drop(self, job: QueuedRun) -> bool:
        """Take a queued job out of the line and mark it cancelled (True); False when it is not queued."""
        if job not in self._jobs:
            return False
        self._jobs.remove(job)
        job.cancel()
        return True

    def place(self, job: QueuedRun) -> int | None:
        """1 for the next run to start, 2 for the one after it...; None when not queued."""
        if job not in self._jobs:
            return None
        ahead = self._jobs[:self._jobs.index(job)]
        return len({other.group for other in ahead if other.group != job.group}) + 1

    def next_group(self) -> list[QueuedRun]:
        """The first job in line and the jobs submitted with it."""
        return [job for job in self._jobs if job.group == self._jobs[0].group]

    def take(self, jobs: list[QueuedRun]) -> None:
        """Remove jobs that have started."""
        self._jobs = [job for job in self._jobs if job not in jobs]

    def cancel_all(self) -> None:
        """Cancel every queued job."""
        for job in self._jobs:
            job.cancel()
        self._jobs.clear()
