"""Where runs train: the contract every backend keeps, and the one every queued run keeps for it.

A backend queues prepared runs (`QueuedRun`: in practice `process.ProcessJob`, whose folder is the run's whole
record), starts them when it has room, and answers for them. `local.LocalBackend` trains them in child processes of
this server; `cluster.RayBackend` as jobs on a Ray cluster. The pages, the experiments and the command line speak to
a backend only through `Backend`, a job speaks to the backend it was given only through it too, and a backend
speaks to its runs only through `QueuedRun`; so this module imports neither side.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Protocol

from ..config import TrainConfig
from .snapshot import FinderSnapshot, JobSnapshot


class QueuedRun(Protocol):
    """What a backend needs of a run it queues: its settings and folder, its share of the machine, and the calls
    that launch, watch, stop and drop it."""

    id: str
    config: TrainConfig
    folder: Path  # the run's folder: its whole record
    procs: int  # processes of the run (torchrun), set by the backend
    max_procs: int  # the most processes this kind of work can use
    estimate: int  # bytes of memory the backend reserved for it
    gpu_estimate: int  # bytes of GPU memory each of its processes needs (0: it trains on no GPU)
    group: str  # runs submitted together share one group: admitted at once, sharing one slot

    def launch(self, env: dict[str, str]) -> None:
        """Start its process on this machine with `env` added to the environment."""
        ...

    def attach(self, handle: object) -> None:
        """The run has been launched where `handle` watches it (a job on a cluster)."""
        ...

    def alive(self) -> bool:
        """True while its process runs."""
        ...

    def started_training(self) -> bool:
        """True once it has reported a trained batch, so its memory is taken."""
        ...

    def rss_bytes(self) -> int:
        """Resident memory of its process on this machine now."""
        ...

    def cancel(self) -> None:
        """Mark it cancelled (the backend has dropped it from the queue)."""
        ...

    def stop(self) -> None:
        """Ask it to end after its current batch."""
        ...

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to its processes."""
        ...

    def snapshot(self) -> JobSnapshot | FinderSnapshot:
        """What its folder says now."""
        ...


class Backend(Protocol):
    """Runs queued in order, started when they fit, watched, stopped and cancelled."""

    def check_fits(self, config: TrainConfig) -> int:
        """The run's estimated memory in bytes; FtcoreError naming what to lower when it could never fit here."""
        ...

    def submit(self, *jobs: QueuedRun) -> None:
        """Queue prepared jobs; several given together start together (a lesson's runs, side by side)."""
        ...

    def snapshot(self, job: QueuedRun) -> JobSnapshot | FinderSnapshot:
        """Where the job stands now: its folder's record, and what the backend knows (its place, whether it runs)."""
        ...

    def stop(self, job: QueuedRun) -> None:
        """Take a queued job out of the queue, or ask a running one to end after its current batch."""
        ...

    def cancel(self, job: QueuedRun) -> bool:
        """Drop a queued job (True), or do nothing for one already started (False)."""
        ...

    def list(self) -> list[QueuedRun]:
        """The jobs queued or started here and not yet seen to end, queued ones first in line."""
        ...

    def queue_note(self, job: QueuedRun) -> str:
        """A queued job's place and what it waits for, in one line."""
        ...

    def running(self) -> list[QueuedRun]:
        """The jobs started and not yet seen to end."""
        ...

    def shutdown(self) -> None:
        """Cancel the queue (the local backend also asks every running job to stop; a cluster's jobs go on)."""
        ...

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go (where the machines that run them can write)."""
        ...
