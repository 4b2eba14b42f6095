"""Jobs: a training run in a background thread, watched through lock-guarded snapshots.

The thread only ever writes to its job (under the lock); a UI polls `snapshot()` from its own thread and
draws. Nothing here knows about Streamlit, so the CLI, the app and the tests share it.

A job given a runs folder writes each finished or stopped run to <runs>/<run id>/ (checkpoint.pt and
metrics.json) from its own thread. Runs keep their settings and history in memory, but their models only
in a small process-wide cache (`MODELS`): the rest are reloaded from disk when asked for.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig, lr_text
from .errors import FtcoreError, user_message
from .lru import LruStore
from .records import BatchEnded, BatchRecord, EpochEnded, EpochRecord, Event, History, RunStarted
from .runs.folder import CHECKPOINT_FILE, METRICS_FILE, REQUEST_FILE
from .runs.status import Status
from .training import TrainedModel, TrainingDiverged, fit

log = logging.getLogger(__name__)

# Models of saved runs kept in memory at once (process-wide); ResNet-18 is about 45 MB each.
MODELS_IN_MEMORY = 3
# Phrases with which PyTorch and the C allocator report memory running out outside torch.OutOfMemoryError.
OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def new_run_id() -> str:
    """A run id unique across tabs and restarts: the start time (sortable) and 8 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def is_out_of_memory(error: BaseException) -> bool:
    """True for the ways PyTorch and Python say memory ran out (GPU or CPU)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(w in str(error).lower() for w in OUT_OF_MEMORY_WORDS)


class ModelCache(LruStore[TrainedModel]):
    """The models of at most `capacity` runs (MODELS_IN_MEMORY by default)."""

    def __init__(self, capacity: int = MODELS_IN_MEMORY):
        super().__init__(capacity)


MODELS = ModelCache()

def out_of_memory_message(config: TrainConfig, devices: list[str]) -> str:
    """What a run that ran out of memory says: where, at which sizes, and what to lower."""
    where = ", ".join(devices) or config.device
    return (f"out of memory on {where} while training at batch size {config.batch_size} and image "
            f"size {config.image_size}; choose a smaller batch size or image size and start again")


def run_label(config: TrainConfig) -> str:
    """A short name for a run: mode, architecture, lr and whether the output layer gets 10x."""
    mode = "fine-tune" if config.mode == "finetune" else "scratch"
    groups = f", head {config.head_lr_mult:g}x" if config.param_groups else ""
    return f"{mode} {config.arch} lr {lr_text(config.lr)}{groups}"


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
    trained: TrainedModel | None = None  # set once finished or stopped
    saved_to: str | None = None  # the run's folder once written to the runs folder
    warning: str | None = None  # a finished run that could not be saved says why here
    heldout: str = "test"  # the split every epoch is measured on: val where the data has one, else test
    queue_note: str | None = None  # while queued: its place and what it waits for
    resumable: bool = False  # ended before its last epoch with a state saved after an earlier one
    batchnorm: str = ""  # training.batchnorm_note: BatchNorm over fewer photos than the whole batch, and why

    @property
    def done(self) -> bool:
        """True once the run has ended, whatever the outcome."""
        return Status(self.status).ended

    @property
    def has_model(self) -> bool:
        """True when the run ended with a model (in memory, or saved in its folder)."""
        return self.done and (self.trained is not None or (self.saved_to is not None and self.status != Status.FAILED))

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


class Run:
    """A finished or stopped run kept for comparison and prediction.

    Its settings and history stay in memory; its model stays in memory while it is among the few most
    recently used (`MODELS`) and is reloaded from its folder after that. A run that was never saved keeps
    its model itself."""

    def __init__(self, id: str, label: str, config: TrainConfig, history: History,
                 trained: TrainedModel | None = None, path: str | Path | None = None):
        if trained is None and path is None:
            raise ValueError(f"run {id} needs its trained model or the folder it was saved to")
        self.id, self.label, self.config, self.history = id, label, config, history
        self.path = Path(path) if path is not None else None
        self._pinned = trained if self.path is None else None  # nowhere else to reload it from
        if trained is not None and self.path is not None:
            MODELS.put(id, trained)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, {self.label!r}, path={str(self.path) if self.path else None!r})"

    @property
    def trained(self) -> TrainedModel:
        """The trained model and what it was trained with (reloaded from disk if it left memory)."""
        if self._pinned is not None:
            return self._pinned
        return MODELS.get(self.id, self._load)

    @property
    def in_memory(self) -> bool:
        """True when asking for `trained` needs no disk read."""
        return self._pinned is not None or self.id in MODELS.ids()

    def checkpoint_bytes(self) -> bytes:
        """The run's checkpoint file, read from its folder when it has one."""
        if self.path is not None and (self.path / CHECKPOINT_FILE).is_file():
            return (self.path / CHECKPOINT_FILE).read_bytes()
        from .checkpoints import checkpoint_bytes
        return checkpoint_bytes(self.trained)

    def _load(self) -> TrainedModel:
        from .checkpoints import load_checkpoint  # checkpoints imports training; keep jobs light to import
        return load_checkpoint(self.path / CHECKPOINT_FILE)


def save_run_folder(trained: TrainedModel, runs_dir: str | Path, run_id: str) -> Path:
    """Write a run to <runs_dir>/<run_id>/ (checkpoint.pt, metrics.json) through a temporary folder, so a
    listing never sees half a run and an existing run is never overwritten."""
    from .checkpoints import save_run

    runs_dir = Path(runs_dir)
    final = runs_dir / run_id
    if final.exists():
        raise FtcoreError(f"a run named {run_id} already exists in {runs_dir}; it was kept and this run was not "
                          "saved (download its checkpoint instead)")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f".saving-{run_id}-"))
    except OSError as e:
        raise FtcoreError(f"cannot write runs to {runs_dir} ({e.strerror or e}); free some space or make it "
                          "writable") from None
    try:
        save_run(trained, tmp)
        os.rename(tmp, final)  # fails rather than replace a folder another run took meanwhile
    except (FtcoreError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = e if isinstance(e, FtcoreError) else (e.strerror or e)
        raise FtcoreError(f"the run could not be saved to {final} ({reason}); download its checkpoint "
                          "instead") from None
    return final


def load_saved_run(folder: str | Path) -> Run:
    """A run from its folder's metrics.json (its model loads from checkpoint.pt only when asked for)."""
    folder = Path(folder)
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text())
        config = TrainConfig.from_dict(metrics["config"])
        history = History.from_dict(metrics["history"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FtcoreError(f"saved run {folder} cannot be read ({type(e).__name__}); delete that folder") from None
    if not (folder / CHECKPOINT_FILE).is_file():
        raise FtcoreError(f"saved run {folder} has no checkpoint.pt; delete that folder")
    return Run(folder.name, run_label(config), config, history, path=folder)


def list_saved_runs(runs_dir: str | Path) -> tuple[list[Run], list[str]]:
    """Every run saved in `runs_dir`, oldest first, and one sentence for each folder that could not be read."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return [], []
    runs, problems = [], []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # runs being written, and anything that is not a run
        if (folder / REQUEST_FILE).is_file() and not (folder / METRICS_FILE).is_file():
            continue  # a run training in a child process, or one that died before it ended (see runner)
        try:
            runs.append(load_saved_run(folder))
        except FtcoreError as e:
            problems.append(str(e))
    return runs, problems


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
                batchnorm=self._info.batchnorm)

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
                self._examples_per_sec = history.examples_per_sec or self._examples_per_sec
        if trained is None:
            gc.collect()  # free the failed run's model and batches now, not at some later collection
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _out_of_memory_message(self) -> str:
        return out_of_memory_message(self.config, self._info.devices)
