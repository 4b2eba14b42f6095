"""A training run in a background thread of the caller, watched through lock-guarded snapshots.

The thread only ever writes to its job (under the lock); a UI polls `snapshot()` from its own thread and
draws. Nothing here knows about Streamlit, so the CLI, the app and the tests share it.

A job given a runs folder writes each finished or stopped run to <runs>/<run id>/ (checkpoint.pt and
metrics.json) from its own thread. Runs keep their settings and history in memory, but their models only
in a small process-wide cache (`saved.MODELS`): the rest are reloaded from disk when asked for.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import FtcoreError, user_message
from ..models.trained import TrainedModel
from ..records import BatchEnded, BatchRecord, EpochEnded, EpochRecord, Event, RunStarted, Status, Steered, SteerRecord
from ..train.loop import fit
from ..train.memory import is_out_of_memory, out_of_memory_message
from ..train.progress import TrainingDiverged
from .folder import new_run_id
from .saved import Run, save_run_folder
from .snapshot import JobSnapshot, run_label

log = logging.getLogger(__name__)


class TrainingJob:
    """Runs `fit(config)` in a daemon thread; `stop()` ends it after the current batch, keeping the model."""

    def __init__(self, config: TrainConfig, job_id: str | None = None, runs_dir: str | Path | None = None):
        self.id = job_id or new_run_id()
        self.config = config
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"ftcore-train-{self.id}", daemon=True)
        self._status = Status.STARTING
        self._epochs: list[EpochRecord] = []
        self._batches: list[BatchRecord] = []
        self._steering: list[SteerRecord] = []
        self._examples_per_sec = 0.0
        self._started = self._ended = 0.0
        self._info = RunStarted([], 0, 0, 0, [], "")
        self._error: str | None = None
        self._trained: TrainedModel | None = None
        self._saved_to: str | None = None
        self._warning: str | None = None

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
            if self._status in (Status.STARTING, Status.RUNNING) and self._started and not self._thread.is_alive():
                # The thread always records how it ended; if it is gone without that, say so, never hang.
                self._status = Status.FAILED
                self._error = "the training thread ended without a result; the server log has the details"
                self._ended = self._ended or time.monotonic()
            end = self._ended or time.monotonic()
            return JobSnapshot(
                id=self.id, label=run_label(self.config), config=self.config, status=self._status,
                epochs=list(self._epochs), batches=list(self._batches), examples_per_sec=self._examples_per_sec,
                devices=list(self._info.devices), weights=self._info.weights, classes=list(self._info.classes),
                train_size=self._info.train_size, test_size=self._info.test_size,
                steps_per_epoch=self._info.steps_per_epoch,
                elapsed=end - self._started if self._started else 0.0, error=self._error, trained=self._trained,
                saved_to=self._saved_to, warning=self._warning, heldout=self._info.heldout,
                batchnorm=self._info.batchnorm, steering=list(self._steering))

    def release_model(self) -> None:
        """Forget the trained model once it is saved (its Run reloads it from disk); snapshots then carry none."""
        with self._lock:
            if self._saved_to is not None:
                self._trained = None

    def to_run(self) -> Run:
        """The finished job as a Run (call once it is done and did not fail)."""
        snap = self.snapshot()
        if snap.trained is None:
            raise ValueError(f"job {self.id} has no trained model (status {snap.status})")
        return Run(self.id, snap.label, self.config, snap.trained.history, snap.trained, snap.saved_to)

    # ---- the thread's side: it writes only through these, under the lock.

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RunStarted):
                self._info, self._status = event, Status.RUNNING
            elif isinstance(event, BatchEnded):
                self._batches.append(event.record)
                self._examples_per_sec = event.examples_per_sec
            elif isinstance(event, EpochEnded):
                self._epochs.append(event.record)
                self._examples_per_sec = event.history.examples_per_sec
            elif isinstance(event, Steered):
                self._steering.append(event.record)

    def _run(self) -> None:
        trained, error, history = None, None, None
        try:
            trained = fit(self.config, self._on_event, self._stop)
        except TrainingDiverged as e:
            error, history = user_message(e), e.history  # the curves up to the last finite batch stay
        except FtcoreError as e:
            error = user_message(e)
        except BaseException as e:  # the thread must always say how it ended
            if is_out_of_memory(e):
                error = self._out_of_memory_message()
            else:  # a bug in ftcore, not the user's doing: keep the traceback in the server log
                log.exception("training job %s failed", self.id)
                error = f"training failed unexpectedly ({type(e).__name__}: {e}); the server log has the details"
        saved_to, warning = None, None
        if trained is not None and self.runs_dir is not None:
            try:
                saved_to = str(save_run_folder(trained, self.runs_dir, self.id))
            except FtcoreError as e:
                warning = user_message(e)
        with self._lock:
            self._ended = time.monotonic()
            self._trained, self._error = trained, error
            self._saved_to, self._warning = saved_to, warning
            if trained is not None:
                self._status = Status.STOPPED if trained.history.stopped else Status.FINISHED
                history = trained.history
            else:
                self._status = Status.FAILED
            if history is not None:
                self._epochs = list(history.epochs)
                self._batches = list(history.batches)
                self._steering = list(history.steering)
                self._examples_per_sec = history.examples_per_sec or self._examples_per_sec
        if trained is None:
            gc.collect()  # free the failed run's model and batches now, not at some later collection
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _out_of_memory_message(self) -> str:
        return out_of_memory_message(self.config, self._info.devices)
