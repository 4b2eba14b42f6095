"""What a run measures and reports, as plain records: the training loop's epochs, batches and history, the events
it sends as it goes (the finder's steps among them), and the two closed sets every part of a run shares, how it
stands (`Status`) and the kinds of line its event log holds (`EventKind`).

A leaf: it imports nothing of the lab, so the loop (`ftcore.train`), the run folder (`ftcore.runs.folder`), the
charts and the checkpoints all read and write the same records without importing each other. Every kind of
progress reaches its caller through one `Sink`, a callable that takes any `Event`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Where a run (or a learning-rate finder) is in its life; written to JSON as its plain value."""

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
    STEER = "steer"  # the run's learning rates changed while it trained (a SteerRecord)
    RESUMED = "resumed"  # a new process continues after an epoch; what came after it is gone
    END = "end"  # how the run ended (a Status), why, and its history when it failed


# A model whose held-out accuracy is within this of 1 / classes is said to be at chance: guessing would do as well.
CHANCE_MARGIN = 0.05


@dataclass
class EpochRecord:
    """Metrics of one epoch, as the book prints them."""

    epoch: float  # epochs completed; fractional when a run stopped mid-epoch
    train_loss: float  # mean per-example loss over the augmented batches seen this epoch
    train_acc: float  # accuracy on those same augmented batches
    test_acc: float | None  # on the test split, for runs without a val split (the book); None when stopped first
    examples: int  # training images seen this epoch
    seconds: float  # training compute this epoch (batches on the device, not data loading or evaluation)
    wall_seconds: float = 0.0  # the whole training pass, data loading and augmentation included
    eval_seconds: float = 0.0  # evaluating the held-out split (val, else test) after the epoch
    stage: str = "full"  # "full": every trainable layer; "head": the output layer alone on cached features
    val_acc: float | None = None  # on the val split, where the data has one (then test_acc stays None)
    class_acc: list[float | None] | None = None  # held-out accuracy of each class (its recall), in class order

    @property
    def heldout_acc(self) -> float | None:
        """The epoch's accuracy on the split every choice uses: val where there is one, else test."""
        return self.val_acc if self.val_acc is not None else self.test_acc

    @property
    def balanced_acc(self) -> float | None:
        """The mean of the classes' held-out accuracies: what accuracy would be were every class as large."""
        recalls = [r for r in self.class_acc or [] if r is not None]
        return sum(recalls) / len(recalls) if recalls else None


@dataclass
class BatchRecord:
    """Metrics of one optimiser step."""

    epoch: float  # progress in epochs, e.g. 1.25 after a quarter of the second epoch
    loss: float  # mean per-example loss of this batch
    acc: float  # accuracy on this batch


@dataclass
class SteerRecord:
    """One change of a running run's learning rates: where it applied and the rates from there on."""

    epoch: float  # progress in epochs where the change applied, as BatchRecord.epoch (before the next batch)
    lr: float  # the copied layers' learning rate from then on (0: frozen)
    head_lr: float  # the output layer's learning rate from then on


@dataclass
class History:
    """Everything a run measured; plain data, stored in checkpoints and metrics.json."""

    devices: list[str] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)
    examples_per_sec: float = 0.0  # training images per second of training compute, as the book reports
    stopped: bool = False  # True when stopped before the last epoch finished
    precision: str = "fp32"  # the arithmetic of the training steps ("auto" resolved; evaluation may use bf16)
    decode_seconds: float = 0.0  # decoding the photos once (decode_once), before the first epoch
    feature_seconds: float = 0.0  # running the frozen copied layers once over every photo (head epochs)
    heldout: str = "test"  # the split of the per-epoch accuracy: "val" where the data has one, else "test"
    test_acc: float | None = None  # with a val split: the test split, evaluated once at the end (None: no test)
    split: dict = field(default_factory=dict)  # DatasetSplits.record(): layout, held-out share, seed, photos
    edits: dict = field(default_factory=dict)  # the photo edits it trained with: relabeled, excluded, sha256 ({}: none)
    steering: list[SteerRecord] = field(default_factory=list)  # every change of its learning rates while it trained

    def final(self) -> EpochRecord | None:
        """The last epoch record (what the book's closing line prints), if any."""
        return self.epochs[-1] if self.epochs else None

    def apply(self, event: Event) -> None:
        """Fold one event of the run into this history: the one place a stream of events becomes a history (the
        loop's recorder, a page reading a run's folder and the command line following a cluster's run all use it)."""
        if isinstance(event, RunStarted):
            self.heldout = event.heldout
        elif isinstance(event, BatchEnded):
            self.batches.append(event.record)
            self.examples_per_sec = event.examples_per_sec or self.examples_per_sec
        elif isinstance(event, EpochEnded):
            self.epochs.append(event.record)
            self.examples_per_sec = event.examples_per_sec or self.examples_per_sec
        elif isinstance(event, Steered):
            self.steering.append(event.record)
        elif isinstance(event, Resumed):  # a new process goes on after that epoch: what came after it is void
            self.epochs = [e for e in self.epochs if e.epoch <= event.epoch]
            self.batches = [b for b in self.batches if b.epoch <= event.epoch]
            self.steering = [s for s in self.steering if s.epoch < event.epoch]

    def to_dict(self) -> dict:
        """Plain dict (JSON- and weights_only-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild a history written by `to_dict`."""
        return cls(devices=list(d.get("devices", [])),
                   epochs=[EpochRecord(**e) for e in d.get("epochs", [])],
                   batches=[BatchRecord(**b) for b in d.get("batches", [])],
                   examples_per_sec=float(d.get("examples_per_sec", 0.0)),
                   stopped=bool(d.get("stopped", False)), precision=str(d.get("precision", "fp32")),
                   decode_seconds=float(d.get("decode_seconds", 0.0)),
                   feature_seconds=float(d.get("feature_seconds", 0.0)), heldout=str(d.get("heldout", "test")),
                   test_acc=d.get("test_acc"), split=dict(d.get("split") or {}), edits=dict(d.get("edits") or {}),
                   steering=[SteerRecord(**s) for s in d.get("steering", [])])

    def accuracy_text(self) -> str:
        """"test acc 0.939" as the book, or "val acc 0.912, test acc 0.905" where the run chose on val (the test
        split measured once, at the end); "" before any epoch was measured."""
        last = self.final()
        if last is None or last.heldout_acc is None:
            return ""
        text = f"{self.heldout} acc {last.heldout_acc:.3f}"
        if self.heldout == "val" and self.test_acc is not None:
            text += f", test acc {self.test_acc:.3f}"
        return text

    def final_test(self) -> float | None:
        """The run's test accuracy: with a val split, the test split's one measurement at the end; else the last
        epoch's (the book's column)."""
        if self.heldout == "val":
            return self.test_acc
        last = self.final()
        return last.test_acc if last is not None else None

    def final_heldout(self) -> float | None:
        """The last epoch's accuracy on the held-out split (val where there is one, else test)."""
        last = self.final()
        return last.heldout_acc if last is not None else None

    def chance_note(self, num_classes: int) -> str | None:
        """One sentence where the last held-out accuracy is within CHANCE_MARGIN of guessing (1 / classes): the
        model has not learned to tell the classes apart; None where it has, or was never measured."""
        accuracy, chance = self.final_heldout(), 1 / max(num_classes, 1)
        if accuracy is None or accuracy - chance > CHANCE_MARGIN:
            return None
        return (f"this model's {self.heldout} accuracy, {accuracy:.3f}, is within {CHANCE_MARGIN * 100:.0f} points "
                f"of guessing ({chance:.3f} for {num_classes} classes): it has not learned to tell them apart, so "
                "its answers mean little; choose a run that learned")


@dataclass
class RunStarted:
    """Sent once the data and model are ready, before the first batch."""

    classes: list[str]
    train_size: int
    test_size: int
    steps_per_epoch: int
    devices: list[str]
    weights: str  # WeightsSource.describe()
    heldout: str = "test"  # the split test_size counts and every epoch is measured on: val or test
    sizes: dict[str, int] = field(default_factory=dict)  # split -> photos, for every split of the run
    batchnorm: str = ""  # batchnorm_note: why BatchNorm sees fewer photos than the whole batch, if it does


@dataclass
class BatchEnded:
    """Sent after every optimiser step."""

    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    steps: int  # steps per epoch
    record: BatchRecord
    examples_per_sec: float  # over the run so far (the loop's parts send this epoch's; the run's recorder the run's)
    examples: int = 0  # training photos of this epoch so far
    seconds: float = 0.0  # training compute of this epoch so far (the book's timer)


@dataclass
class EpochEnded:
    """Sent after each epoch's evaluation (or when a stop cut the epoch short)."""

    record: EpochRecord
    examples_per_sec: float = 0.0  # over the run's timed epochs so far (the run's recorder fills it in)


@dataclass
class Steered:
    """Sent when the run applies a change of its learning rates, before the batch it first trains."""

    record: SteerRecord


@dataclass
class Resumed:
    """Sent when a new process continues a run after `epoch`: what the run recorded after it is void."""

    epoch: float


@dataclass
class StateCaptured:
    """Sent, where the caller asked for it, after every full epoch that ran whole and after the output-layer epochs
    (not one by one: they take seconds) in a run that has full epochs: everything the next epoch depends on
    (`train.resume.capture`), for a caller that keeps it to resume from."""

    epoch: int  # epochs done, output-layer epochs included
    state: dict[str, Any]  # plain tensors and dicts, safe to keep while training goes on and to torch.save


@dataclass
class LrStep:
    """One step of the range test, as it happens (for progress bars and live charts)."""

    step: int  # 1-based
    steps: int  # planned
    lr: float
    loss: float  # per photo
    smoothed: float


Event = RunStarted | BatchEnded | EpochEnded | Steered | Resumed | StateCaptured | LrStep
Sink = Callable[[Event], None]  # where a run's progress goes: every kind of event, one call each
