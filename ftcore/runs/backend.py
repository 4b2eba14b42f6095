"""Where runs train: the contract every backend keeps.

A backend queues prepared runs (`process.ProcessJob`, whose folder is the run's whole record), starts them when
it has room, and answers for them. `local.LocalBackend` trains them in child processes of this server;
`cluster.RayBackend` as jobs on a Ray cluster. The pages,
the experiments and the command line speak to a backend only through this protocol, and a job speaks to the
backend it was given only through it too (so neither module imports the other).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..config import TrainConfig
    from .process import ProcessJob
    from .snapshot import FinderSnapshot, JobSnapshot


@runtime_checkable
class Backend(Protocol):
    """Runs queued in order, started when they fit, watched, stopped and cancelled."""

    def check_fits(self, config: TrainConfig) -> int:
        """The run's estimated memory in bytes; FtcoreError naming what to lower when it could never fit here."""
        ...

    def submit(self, *jobs: ProcessJob) -> None:
        """Queue prepared jobs; several given together start together (a lesson's runs, side by side)."""
        ...

    def snapshot(self, job: ProcessJob) -> JobSnapshot | FinderSnapshot:
        """Where the job stands now: its folder's record, and what the backend knows (its place, whether it runs)."""
        ...

    def stop(self, job: ProcessJob) -> None:
        """Take a queued job out of the queue, or ask a running one to end after its current batch."""
        ...

    def cancel(self, job: ProcessJob) -> bool:
        """Drop a queued job (True), or do nothing for one already started (False)."""
        ...

    def list(self) -> list[ProcessJob]:
        """The jobs queued or started here and not yet seen to end, queued ones first in line."""
        ...

    def queue_note(self, job: ProcessJob) -> str:
        """A queued job's place and what it waits for, in one line."""
        ...

    def running(self) -> list[ProcessJob]:
        """The jobs started and not yet seen to end."""
        ...

    def shutdown(self) -> None:
        """Cancel the queue (the local backend also asks every running job to stop; a cluster's jobs go on)."""
        ...

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go (where the machines that run them can write)."""
        ...
