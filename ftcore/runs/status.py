"""How a run (or a learning-rate finder) stands, and the kinds of event it writes: the two closed sets that the
server, the child process and the pages share. Both are `StrEnum`s, so they are written to and read from JSON as
their plain values."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a run is in its life."""

    NEW = "new"  # made, not yet submitted
    QUEUED = "queued"  # waiting for a slot, its memory, or the runs before it
    STARTING = "starting"  # its process is loading data and model
    RUNNING = "running"  # it has reported its start
    FINISHED = "finished"  # every epoch trained (a finder: its whole curve)
    STOPPED = "stopped"  # asked to stop; ended after its batch, keeping what it trained
    FAILED = "failed"  # ended by an error, or its process died
    CANCELLED = "cancelled"  # dropped from the queue before it started

    @property
    def ended(self) -> bool:
        """True once the run has ended, whatever the outcome."""
        return self in ENDED


ENDED = frozenset({Status.FINISHED, Status.STOPPED, Status.FAILED, Status.CANCELLED})
KEPT = frozenset({Status.FINISHED, Status.STOPPED})  # ended with what it trained kept


class EventKind(StrEnum):
    """The `type` of each line of a run's events.jsonl."""

    STARTED = "started"  # data and model are ready: devices, classes, sizes
    BATCH = "batch"  # one optimiser step
    EPOCH = "epoch"  # one epoch, measured on the held-out photos
    LR = "lr"  # one step of the learning-rate finder
    RESUMED = "resumed"  # a new process continues after an epoch; what came after it is gone
    END = "end"  # how the run ended (a Status), why, and its history when it failed
