"""The queueing every backend shares: runs first in, first out (runs submitted together keeping one place), a
daemon thread that admits the next when there is room, and the calls that do not depend on where runs train.

`QueueingBackend` keeps the queue and the runs it started; `local.LocalBackend` and `cluster.RayBackend` say how a
run is sized, when there is room for the next and how it is launched.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from pathlib import Path

from ..config import TrainConfig
from .backend import QueuedRun
from .snapshot import FinderSnapshot, JobSnapshot


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


class QueueingBackend:
    """The queue, the runs started and not yet seen to end, and the admitting thread (a backend's own lock guards
    them: it is held while the thread asks jobs, and a job takes its own lock only after asking the backend)."""

    poll_seconds = 0.25  # how often the admitting thread looks for ended runs and admits the next

    def __init__(self) -> None:
        self._queue = RunQueue()
        self._running: dict[str, QueuedRun] = {}  # a key of the backend's (the run's id, a Ray submission) -> the run
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        atexit.register(self.shutdown)

    # ---- what each backend says

    def check_fits(self, config: TrainConfig) -> int:
        """The run's estimated memory in bytes; FtcoreError naming what to lower when it could never fit here."""
        raise NotImplementedError

    def size(self, job: QueuedRun, together: int) -> None:
        """Set what `job` takes of the machine (its estimates, its processes) when it is submitted with `together`
        jobs in all."""
        raise NotImplementedError

    def queue_note(self, job: QueuedRun) -> str:
        """The queued job's place and what it waits for, in one line."""
        raise NotImplementedError

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go (where the machines that run them can write)."""
        raise NotImplementedError

    def _admit_next(self) -> bool:
        """Launch the next run(s) in line if there is room for them now (taking them out of the queue); under the
        lock."""
        raise NotImplementedError

    def _watch(self) -> None:
        """Read what the backend reads once a round, before the lock is taken (a cluster's jobs)."""

    def _adopt(self) -> None:
        """Watch runs started before a restart, under the lock (a cluster's)."""

    # ---- the contract

    def submit(self, *jobs: QueuedRun) -> None:
        """Queue prepared jobs; several given together keep their place together and start together where the
        backend can (a lesson's runs, side by side). Refuse any that could never fit."""
        for job in jobs:
            self.size(job, len(jobs))
            job.group = jobs[0].id
        with self._lock:
            self._queue.add(jobs)
            self._start_thread()
            self._lock.notify_all()

    def cancel(self, job: QueuedRun) -> bool:
        """Drop a queued job (True), or do nothing for one already started (False)."""
        with self._lock:
            if not self._queue.drop(job):
                return False
            self._lock.notify_all()
            return True

    def snapshot(self, job: QueuedRun) -> JobSnapshot | FinderSnapshot:
        """Where the job stands: what its folder says, whether its process lives, its place in the queue."""
        return job.snapshot()

    def stop(self, job: QueuedRun) -> None:
        """Take a queued job out of the queue, or ask a running one to end after its current batch."""
        job.stop()

    def list(self) -> list[QueuedRun]:
        """The jobs queued here (first in line first), then those started."""
        with self._lock:
            return [*self._queue, *self._running.values()]

    def running(self) -> list[QueuedRun]:
        """The jobs started and not yet seen to end."""
        with self._lock:
            return list(self._running.values())

    def shutdown(self) -> None:
        """Cancel the queue."""
        with self._lock:
            self._queue.cancel_all()

    # ---- the admitting thread

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"ftcore-{type(self).__name__}", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self._watch()
            except Exception:  # what it reads is unreachable for now (a cluster's head): keep the queue, try again
                with self._lock:
                    self._lock.wait(self.poll_seconds)
                continue
            with self._lock:
                for key, job in list(self._running.items()):
                    if not job.alive():
                        del self._running[key]
                self._adopt()
                while self._queue and self._admit_next():
                    pass
                self._lock.wait(self.poll_seconds)
