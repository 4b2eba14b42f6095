"""Jobs: a training run in a background thread, watched through lock-guarded snapshots.

The thread only ever writes to its job (under the lock); a UI polls `snapshot()` from its own thread and
draws. Nothing here knows about Streamlit, so the CLI, the app and the tests share it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

import torch

from .errors import FtcoreError, user_message
from .training import (
    BatchEnded,
    BatchRecord,
    EpochEnded,
    EpochRecord,
    Event,
    History,
    RunStarted,
    TrainConfig,
    TrainResult,
    fit,
)

log = logging.getLogger(__name__)

def run_label(config: TrainConfig) -> str:
    """A short name for a run: mode, architecture, lr and whether the output layer gets 10x."""
    mode = "fine-tune" if config.mode == "finetune" else "scratch"
    groups = f", head {config.head_lr_mult:g}x" if config.param_groups else ""
    return f"{mode} {config.arch} lr {config.lr:.0e}{groups}"


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state at one moment; safe to read and draw without the lock."""

    id: str
    label: str
    config: TrainConfig
    status: str  # starting, running, finished, stopped or failed
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
    result: TrainResult | None = None  # set once finished or stopped

    @property
    def done(self) -> bool:
        """True once the thread has ended, whatever the outcome."""
        return self.status in ("finished", "stopped", "failed")

    @property
    def progress(self) -> float:
        """Fraction of all training steps done, 0 to 1."""
        if not self.batches:
            return 1.0 if self.status == "finished" else 0.0
        return min(self.batches[-1].epoch / self.config.epochs, 1.0)


@dataclass
class Run:
    """A finished or stopped run kept for comparison and prediction."""

    id: str
    label: str
    config: TrainConfig
    history: History
    result: TrainResult = field(repr=False)


class TrainingJob:
    """Runs `fit(config)` in a daemon thread; `stop()` ends it after the current batch, keeping the model."""

    def __init__(self, config: TrainConfig, job_id: str | None = None):
        self.id = job_id or uuid.uuid4().hex[:10]
        self.config = config
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"ftcore-train-{self.id}", daemon=True)
        self._status = "starting"
        self._epochs: list[EpochRecord] = []
        self._batches: list[BatchRecord] = []
        self._examples_per_sec = 0.0
        self._started = self._ended = 0.0
        self._info = RunStarted([], 0, 0, 0, [], "")
        self._error: str | None = None
        self._result: TrainResult | None = None

    def start(self) -> TrainingJob:
        """Start the thread (once) and return self."""
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end after the batch in progress."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        """Copy the current state under the lock."""
        with self._lock:
            end = self._ended or time.monotonic()
            return JobSnapshot(self.id, run_label(self.config), self.config, self._status, list(self._epochs),
                               list(self._batches), self._examples_per_sec, list(self._info.devices),
                               self._info.weights, list(self._info.classes), self._info.train_size,
                               self._info.test_size, self._info.steps_per_epoch,
                               end - self._started if self._started else 0.0, self._error, self._result)

    def to_run(self) -> Run:
        """The finished job as a Run (call once it is done and did not fail)."""
        snap = self.snapshot()
        if snap.result is None:
            raise ValueError(f"job {self.id} has no result (status {snap.status})")
        return Run(self.id, snap.label, self.config, snap.result.history, snap.result)

    # ---- the thread's side: it writes only through these, under the lock.

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RunStarted):
                self._info, self._status = event, "running"
            elif isinstance(event, BatchEnded):
                self._batches.append(event.record)
                self._examples_per_sec = event.examples_per_sec
            elif isinstance(event, EpochEnded):
                self._epochs.append(event.record)
                self._examples_per_sec = event.history.examples_per_sec

    def _run(self) -> None:
        result, error = None, None
        try:
            result = fit(self.config, self._on_event, self._stop)
        except FtcoreError as e:
            error = user_message(e)
        except torch.OutOfMemoryError:
            error = "out of memory on the device; lower the batch size or the micro-batch and start again"
        except Exception as e:  # a bug in ftcore, not the user's doing: keep the traceback in the server log
            log.exception("training job %s failed", self.id)
            error = f"training failed unexpectedly ({type(e).__name__}: {e}); the server log has the details"
        with self._lock:
            self._ended = time.monotonic()
            self._result, self._error = result, error
            if result is not None:
                self._status = "stopped" if result.history.stopped else "finished"
                self._epochs = list(result.history.epochs)
                self._batches = list(result.history.batches)
                self._examples_per_sec = result.history.examples_per_sec
            else:
                self._status = "failed"
