"""Where runs train, as one contract: the queueing every backend shares (`QueueingBackend`: first in, first out, runs
submitted together keeping one place, a daemon thread that admits the next when there is room), which the pages,
series and command line speak to, and what a backend needs of a run it queues (`QueuedRun`). `local` and
`cluster` say how a run is sized and launched; this module imports neither them nor process.
"""

from __future__ import annotations

import atexit
import signal
import threading
from pathlib import Path
from typing import Protocol

from ..config import TrainConfig
from .snapshot import FinderSnapshot, JobSnapshot


class QueuedRun(Protocol):
    """What a backend needs of a run it queues: its settings, folder and share of the machine, and its calls."""

    id: str
    config: TrainConfig
    folder: Path  # the run's folder: its whole record
    procs: int  # processes of the run (torchrun), set by the backend
    max_procs: int  # the most processes this kind of work can use
    estimate: int  # bytes of memory the backend reserved for it
    gpu_estimate: int  # bytes of GPU memory each of its processes needs (0: it trains on no GPU)
    group: str  # runs submitted together share one group: admitted at once, sharing one slot

    def launch(self, env: dict[str, str]) -> None: ...  # start its process here, with `env` added to the environment
    def attach(self, handle: object) -> None: ...  # it was launched where `handle` watches it (a cluster's job)
    def alive(self) -> bool: ...  # True while its process runs
    def started_training(self) -> bool: ...  # True once it reported a trained batch: its memory is taken
    def rss_bytes(self) -> int: ...  # resident memory of its process on this machine now
    def cancel(self) -> None: ...  # mark it cancelled: the backend dropped it from the queue
    def stop(self) -> None: ...  # ask it to end after its current batch
    def terminate(self, sig: int = signal.SIGTERM) -> None: ...  # send `sig` to its processes
    def snapshot(self) -> JobSnapshot | FinderSnapshot: ...  # what its folder says now


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class RunQueue(list):
    """Queued jobs in a list, the next to start first; a group of jobs submitted together counts as one place."""

    def drop(self, job: QueuedRun) -> bool:
        """Take a queued job out of the line and mark it cancelled (True); False when it is not queued."""
        if job not in self:
            return False
        self.remove(job)
        job.cancel()
        return True

    def place(self, job: QueuedRun) -> int | None:
        """1 for the next run to start, 2 for the one after it...; None when not queued."""
        if job not in self:
            return None
        return len({other.group for other in self[:self.index(job)] if other.group != job.group}) + 1

    def next_group(self) -> list[QueuedRun]:
        """The first job in line and the jobs submitted with it."""
        return [job for job in self if job.group == self[0].group]

    def take(self, jobs: list[QueuedRun]) -> None:
        """Remove jobs that have started."""
        self[:] = [job for job in self if job not in jobs]

    def cancel_all(self) -> None:
        """Cancel every queued job."""
        for job in self:
            job.cancel()
        self.clear()


class QueueingBackend:
    """The queue, the runs started and not yet seen to end, and the thread that admits the next."""

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
        """Set what `job` takes of the machine (its estimates, its processes), submitted with `together` jobs in all."""
        raise NotImplementedError

    def waits_for(self, job: QueuedRun) -> str:
        """What the next run in line waits for, in words (under the lock)."""
        raise NotImplementedError

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go (where the machines that run them can write)."""
        raise NotImplementedError

    def _admit_next(self) -> bool:
        """Launch the next run(s) in line where there is room now, taking them out of the queue; under the lock."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Read what the backend reads once a round, before the lock is taken (a cluster's nodes and jobs)."""

    def _adopt(self) -> None:
        """Watch runs started before a restart, under the lock (a cluster's)."""

    # ---- the contract

    def submit(self, *jobs: QueuedRun) -> None:
        """Queue prepared jobs (several together keep one place and start together); refuse any that could never fit."""
        for job in jobs:
            self.size(job, len(jobs))
            job.group = jobs[0].id
        with self._lock:
            self._queue.extend(jobs)
            self._start_thread()
            self._lock.notify_all()

    def queue_note(self, job: QueuedRun) -> str:
        """The queued job's place and what it waits for, in one line ("starting" once it has left the queue)."""
        with self._lock:
            place = self._queue.place(job)
            waits = self.waits_for(job) if place == 1 else ""
        if place is None:
            return "starting"
        if place > 1:
            return f"queued: {ordinal(place)} in line; starts when the {place - 1} run(s) before it have started"
        return f"queued: next in line; starts when {waits}"

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
                self.refresh()
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
