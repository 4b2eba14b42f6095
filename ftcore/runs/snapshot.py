"""What a page draws of a job: a run's or a finder's state at one moment, built with keywords, safe to read
without a lock, and the run's short name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import TrainConfig, lr_text
from ..lr_find.finding import FinderSettings, LrFinding
from ..records import BatchRecord, EpochRecord, LrStep, Status, SteerRecord
from ..train.steering import Rates, changes_text, starting_rates


def run_label(config: TrainConfig) -> str:
    """A short name for a run: mode, architecture, lr, whether the output layer gets 10x, and whether its photos
    were edited."""
    mode = "fine-tune" if config.mode == "finetune" else "scratch"
    groups = f", head {config.head_lr_mult:g}x" if config.param_groups else ""
    return f"{mode} {config.arch} lr {lr_text(config.lr)}{groups}{', cleaned photos' if config.edits else ''}"


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state at one moment; safe to read and draw without the lock."""

    id: str
    label: str
    config: TrainConfig
    status: Status
    epochs: list[EpochRecord]
    batches: list[BatchRecord]
    examples_per_sec: float
    devices: list[str]
    weights: str
    classes: list[str]
    train_size: int
    test_size: int
    steps_per_epoch: int
    elapsed: float  # wall seconds since start (to the end, once done)
    error: str | None = None
    saved_to: str | None = None  # the run's folder once its model is written there
    heldout: str = "test"  # the split every epoch is measured on: val where the data has one, else test
    queue_note: str | None = None  # while queued: its place and what it waits for
    resumable: bool = False  # ended before its last epoch with a state saved after an earlier one
    batchnorm: str = ""  # train.plan.batchnorm_note: BatchNorm over fewer photos than the whole batch, and why
    steering: list[SteerRecord] = field(default_factory=list)  # every change of its learning rates while it trained

    @property
    def rates(self) -> Rates:
        """The learning rates it trains at now: its last change's, else those it started at."""
        last = self.steering[-1] if self.steering else None
        return Rates.of(last) if last is not None else starting_rates(self.config)

    @property
    def steerable(self) -> bool:
        """True while it trains epochs of every layer, whose rates can change from one batch to the next."""
        return self.status == Status.RUNNING and self.config.epochs > 0

    def steering_text(self) -> str:
        """"Steered at epoch 1.44: lr 2e-3, output layer 2e-2; at epoch 2.10: ..."; "" when never steered."""
        return "Steered " + changes_text(self.steering) if self.steering else ""

    @property
    def done(self) -> bool:
        """True once the run has ended, whatever the outcome."""
        return Status(self.status).ended

    @property
    def has_model(self) -> bool:
        """True when the run ended with a model, saved in its folder."""
        return self.done and self.saved_to is not None and self.status != Status.FAILED

    def status_line(self) -> str:
        """Status, epoch and progress through it (output-layer epochs count), speed, devices and time, in one line."""
        if self.status == Status.QUEUED:
            return self.queue_note or Status.QUEUED.value
        if self.status == Status.CANCELLED:
            return "cancelled before it started"
        done = self.batches[-1].epoch if self.batches else 0.0
        epoch = max(1, math.ceil(done - 1e-9))
        within = round(100 * (done - (epoch - 1)))
        speed = (f"{self.examples_per_sec:.1f} examples/sec on {', '.join(self.devices)}" if self.devices
                 else "starting")
        total, recorded = self.config.total_epochs, self.epochs[-1].epoch if self.epochs else 0.0
        where = f"epoch {epoch}/{total} ({within}%)"
        # after an epoch's last batch the run is measuring it, and after the last epoch it is also saving: say so,
        # so that a run busy on its held-out photos does not look stuck at 100%
        if self.status == Status.RUNNING and recorded >= total:
            where = f"all {total} epochs trained; writing its results"
        elif self.status == Status.RUNNING and self.batches and done - recorded >= 1 - 1e-6:
            where = f"epoch {epoch}/{total} trained; measuring it on the {self.heldout} photos"
        return f"{self.status}: {where}; {speed}; {self.elapsed:.0f} s"

    @property
    def progress(self) -> float:
        """Fraction of all training steps done, 0 to 1."""
        if not self.batches:
            return 1.0 if self.status == Status.FINISHED else 0.0
        return min(self.batches[-1].epoch / self.config.total_epochs, 1.0)


@dataclass
class FinderSnapshot:
    """A learning-rate finder's state at one moment, for the page to draw."""

    id: str
    config: TrainConfig
    settings: FinderSettings
    status: Status
    steps: list[LrStep]  # the steps taken so far
    elapsed: float
    error: str | None = None
    finding: LrFinding | None = None  # once it has ended with a curve
    queue_note: str | None = None

    @property
    def done(self) -> bool:
        """True once the finder has ended, whatever the outcome."""
        return Status(self.status).ended

    @property
    def progress(self) -> float:
        """Share of the planned steps taken (1 once ended)."""
        return 1.0 if self.done else len(self.steps) / self.settings.steps

    def curve(self) -> tuple[list[float], list[float], list[float]]:
        """(lrs, losses, smoothed) to plot: the finished curve, else the steps so far."""
        if self.finding is not None:
            return self.finding.lrs, self.finding.losses, self.finding.smoothed
        return [s.lr for s in self.steps], [s.loss for s in self.steps], [s.smoothed for s in self.steps]

    def status_line(self) -> str:
        """Status, step and lr reached, in one line."""
        if self.status == Status.QUEUED:
            return self.queue_note or Status.QUEUED.value
        if self.status == Status.CANCELLED:
            return "cancelled before it started"
        if not self.steps:
            return f"{self.status}: loading data and model; {self.elapsed:.0f} s" if not self.done else \
                f"{self.status} before its first step"
        last = self.steps[-1]
        return (f"{self.status}: step {last.step}/{last.steps}, lr {last.lr:.1e}, loss {last.loss:.3f} per photo; "
                f"{self.elapsed:.0f} s")
