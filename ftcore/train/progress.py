"""How a run reports: its recorder, the one sink every part of the loop sends its events to, which keeps the run's
history and speed and passes each event on; and the one way a run's own loss ends it (TrainingDiverged)."""

from __future__ import annotations

import dataclasses
import math

from ..config import TrainConfig
from ..data.run_data import RunData
from ..errors import FtcoreError
from ..models.weights import WeightsSource
from ..records import BatchEnded, EpochEnded, EpochRecord, Event, History, RunStarted, Sink
from .evaluate import Tally


class TrainingDiverged(FtcoreError):
    """The loss became NaN or infinite; `history` holds everything measured before that batch."""

    def __init__(self, epoch: int, step: int, loss: float, history: History | None = None):
        super().__init__(f"training diverged at epoch {epoch}, batch {step} (loss {loss}); "
                         "lower the learning rate and start again")
        self.epoch, self.step, self.loss = epoch, step, loss
        self.history = history or History()


def record_heldout(record: EpochRecord, split: str, tally: Tally | None) -> None:
    """Store an epoch's held-out accuracy under its split's name (val_acc, or test_acc as the book), and each
    class's; nothing where the measurement was stopped."""
    if tally is None:
        return
    if split == "val":
        record.val_acc = tally.accuracy
    else:
        record.test_acc = tally.accuracy
    record.class_acc = tally.recalls


class Progress:
    """The run's recorder: a sink for every event of the loop's parts. It keeps the run's history as it grows and
    its speed (the book's examples/sec), completes each batch and epoch event with them, and passes every event on
    to the caller's sink."""

    def __init__(self, config: TrainConfig, history: History, data: RunData, sink: Sink):
        self.config, self.history, self.data, self.sink = config, history, data, sink
        self.steps = len(data.train) if config.epochs else math.ceil(
            data.train_size * (1 + config.head_views) / config.batch_size)

    def started(self, weights: WeightsSource, batchnorm: str) -> None:
        """Data and model are ready: say what the run trains on, where, and from which weights."""
        data = self.data
        self.sink(RunStarted(data.splits.classes, data.train_size, data.heldout_size, self.steps,
                             self.history.devices, weights.describe(), data.splits.heldout, dict(data.sizes),
                             batchnorm))

    def feature_speed(self) -> float:
        """Photos per second through the frozen layers (forward only), for output-layer epochs."""
        photos = self.data.train_size * (1 + self.config.head_views) + self.data.heldout_size
        return photos / self.history.feature_seconds if self.history.feature_seconds else 0.0

    def __call__(self, event: Event) -> None:
        """Record `event` in the run's history and pass it on, with the run's speed and history where it carries
        them."""
        if isinstance(event, BatchEnded):
            event = self._batch(event)
        elif isinstance(event, EpochEnded):
            event = self._epoch(event.record)
        self.history.apply(event)
        self.sink(event)

    def _batch(self, event: BatchEnded) -> BatchEnded:
        """One optimiser step ended: the speed so far (the frozen layers' during output-layer epochs, else over this
        epoch's batches and the full epochs before it)."""
        if event.epoch <= self.config.head_epochs:
            return dataclasses.replace(event, examples_per_sec=self.feature_speed())
        full = [e for e in self.history.epochs if e.stage == "full"]
        speed = (event.examples + sum(e.examples for e in full)) / (event.seconds + sum(e.seconds for e in full))
        return dataclasses.replace(event, examples_per_sec=speed)

    def _epoch(self, record: EpochRecord) -> EpochEnded:
        """One epoch ended: the run's speed over its timed full epochs, this one included."""
        timed = [e for e in [*self.history.epochs, record] if e.stage == "full"]
        speed = (sum(e.examples for e in timed) / max(sum(e.seconds for e in timed), 1e-9) if timed
                 else self.feature_speed())
        return EpochEnded(record, speed)
