"""The contract every kind of job keeps: a training in a thread (`thread.TrainingJob`), one in a child process
(`process.ProcessJob`) and the learning-rate finder (`process.FinderJob`). Pages, experiments and backends speak
to a job only through it."""

from __future__ import annotations

from typing import Protocol

from ..config import TrainConfig
from .saved import Run
from .snapshot import JobSnapshot


class Job(Protocol):
    """A run that can be started, watched through snapshots, stopped, and kept once it ends."""

    id: str
    config: TrainConfig

    def start(self) -> Job:
        """Begin (or queue) the work and return the job."""
        ...

    def stop(self) -> None:
        """End it after its current batch (a queued job is cancelled)."""
        ...

    def join(self, timeout: float | None = None) -> bool:
        """Wait until it has ended; True when it has."""
        ...

    def snapshot(self) -> JobSnapshot:
        """Its state now, as a copy that is safe to read without a lock."""
        ...

    def to_run(self) -> Run:
        """The ended job as a run of the tab (one that ended with a model)."""
        ...

    def release_model(self) -> None:
        """Forget a model held in memory once it is saved."""
        ...
