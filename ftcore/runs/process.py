"""A run in a process of its own: queued with a backend, launched when admitted, stopped, and watched through its
folder (runs.folder), which its process (runs.child, or a Ray job) writes; a snapshot is what the folder says.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from ..config import TrainConfig
from ..errors import FtcoreError
from ..lr_find.finding import FinderSettings, LrFinding, check_request
from ..records import KEPT, EventKind, History, LrStep, Status
from .child import ChildProcess
from .folder import (
    EVENTS_FILE,
    FINDING_FILE,
    METRICS_FILE,
    REQUEST_FILE,
    STATE_FILE,
    event_from_dict,
    new_run_id,
    read_events,
    read_owner,
    read_request,
    request_stop,
    write_request,
)
from .queue import QueueingBackend
from .saved import Run, load_saved_run
from .snapshot import FinderSnapshot, JobSnapshot, run_label

STOP_GRACE_SECONDS = 30.0  # after Stop, the time a run has to end its batch before its process is ended
NOT_YET_RUNNING = (Status.NEW, Status.QUEUED, Status.STARTING)  # a start event moves these to running
PROCS_ENV = "FTCORE_WORKER_PROCS"  # processes per run under torchrun (default: one per GPU, else one)


class Handle(Protocol):
    """Where a launched run executes: a child process here (runs.child) or a job on a Ray cluster (runs.cluster)."""

    def running(self) -> bool: ...  # True while the run's process (or job) has not ended
    def signal(self, sig: int) -> None: ...  # SIGUSR1: end within the current batch; SIGTERM, SIGKILL: end it
    def rss_bytes(self) -> int: ...  # resident memory of its process on this machine now (0: elsewhere, or ended)
    def lost_message(self, epoch: int, step: int) -> str | None: ...  # why it ended without a word, where known


class ProcessJob:
    """One run in a process of its own (a child of this server, or a Ray job): started, stopped and watched."""

    def __init__(self, config: TrainConfig, runs_dir: str | Path, job_id: str | None = None, resume: bool = False,
                 owner: str | None = None):
        self.id = job_id or new_run_id()
        self.config = config
        self.folder = Path(runs_dir) / self.id
        self.resume = resume
        self.owner = owner  # who may list, steer, stop and resume it (runs.folder.owner_of; None: whoever has it)
        self.procs = 1  # processes of the run (torchrun), set by the backend
        self.max_procs = sys.maxsize  # the most processes this kind of work can use
        self.estimate = 0  # bytes of memory the backend reserved for it
        self.gpu_estimate = 0  # bytes of GPU memory each of its processes needs (0: it trains on no GPU)
        self.group = self.id  # jobs submitted together share one group: admitted at once, sharing one slot
        self.backend: QueueingBackend | None = None
        self._lock = threading.Lock()
        self._handle: Handle | None = None
        self._status = Status.NEW
        self._queued = self._ended = self._stop_asked = 0.0
        self._offset = 0
        self._info: dict = {}
        self._history = History()  # what the run's events say so far
        self._last_batch = (0, 0)  # (epoch, step) of the last batch the run reported
        self._end: dict | None = None

    @classmethod
    def resumed(cls, folder: str | Path, handle: Handle | None = None) -> ProcessJob:
        """A job continuing the interrupted run in `folder`; with `handle`, one watching it where launched before."""
        folder = Path(folder)
        request = read_request(folder)
        job = cls(TrainConfig.from_dict(request.config), folder.parent, folder.name,
                  resume=request.resume if handle else True, owner=request.owner)
        if handle is not None:
            job._queued = time.monotonic()
            job.attach(handle)
        return job

    @classmethod
    def continued(cls, folder: str | Path, owner: str | None) -> ProcessJob:
        """A new run of `owner`'s from the interrupted run in `folder`, which keeps its owner and its record."""
        folder = Path(folder)
        job = cls(TrainConfig.from_dict(read_request(folder).config), folder.parent, resume=True, owner=owner)
        try:
            job.folder.mkdir()
            shutil.copyfile(folder / STATE_FILE, job.folder / STATE_FILE)
            shutil.copyfile(folder / EVENTS_FILE, job.folder / EVENTS_FILE)
        except OSError as e:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise FtcoreError(f"the run in {folder} cannot be continued ({e.strerror or e}); start a new run") from None
        return job

    # ---- the server's side

    def start(self, backend: QueueingBackend | None = None) -> ProcessJob:
        """Queue the run with `backend` (or launch it at once without one) and return self."""
        self.prepare(backend)
        if backend is None:
            self.launch({})
        else:
            backend.submit(self)
        return self

    def prepare(self, backend: QueueingBackend | None) -> None:
        """All of `start` but the queueing: refuse a run that can never fit, write its request, mark it queued."""
        if backend is not None:
            backend.check_fits(self.config)  # a run that can never fit is refused before anything is written
        if not self.resume and (self.folder / REQUEST_FILE).exists():
            raise FtcoreError(f"a run named {self.id} already exists in {self.folder.parent}; it was kept, so start "
                              "this one under another name")
        if self.resume:  # the stopped run's checkpoint stays until this one replaces it
            (self.folder / "stop").unlink(missing_ok=True)
            with self._lock:  # the curves so far are shown again; how that process ended is not this one's end
                self._read()
                self._end = None
        self._write_request()
        self._queued = time.monotonic()
        self._status = Status.QUEUED
        self.backend = backend

    def _write_request(self) -> None:
        write_request(self.folder, self.config, self.resume, owner=self.owner)

    def launch(self, env: dict[str, str]) -> None:
        """Start the child process (the local backend calls this when the run is admitted)."""
        self.attach(ChildProcess.start(self.folder, self.procs, env))

    def attach(self, handle: Handle) -> None:
        """The run has been launched where `handle` watches it."""
        with self._lock:
            self._handle, self._status = handle, Status.STARTING

    def cancel(self) -> None:
        """Mark a queued run as cancelled (the backend has dropped it); a new run's folder goes with it."""
        with self._lock:
            self._status, self._ended = Status.CANCELLED, time.monotonic()
        if not self.resume:  # it holds nothing but the request (a resumed run's folder keeps its run)
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def stop_asked(self) -> bool:
        """True once Stop was asked of the running run."""
        return bool(self._stop_asked)

    def stop(self) -> None:
        """Cancel the run if it is still queued; else ask it to end after its current batch."""
        if self.backend is not None and self.backend.cancel(self):
            return
        with self._lock:
            if self._handle is None or self._stop_asked:
                return
            self._stop_asked = time.monotonic()
        request_stop(self.folder)
        if self.procs == 1:  # the worker stops within its batch; torchrun's launcher would die of SIGUSR1
            self.terminate(signal.SIGUSR1)

    def alive(self) -> bool:
        """True while the run's process runs; ends it when it outlives Stop by STOP_GRACE_SECONDS."""
        with self._lock:
            handle, asked = self._handle, self._stop_asked
        if handle is None or not handle.running():
            return False
        if asked and time.monotonic() - asked > STOP_GRACE_SECONDS:
            self.terminate(signal.SIGKILL)
            return False
        return True

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the run's processes (its torchrun workers too)."""
        if self._handle is not None:
            self._handle.signal(sig)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended (or was cancelled); True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.snapshot().done:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def started_training(self) -> bool:
        """True once the run has reported a trained batch (or a finder step), so its memory is taken."""
        with self._lock:
            self._read()
            return self._last_batch != (0, 0)

    def rss_bytes(self) -> int:
        """Resident memory of the run's process on this machine now (0 when it is not running here)."""
        return self._handle.rss_bytes() if self._handle is not None else 0

    # ---- reading the folder

    def _read(self) -> None:
        """Take in the events written since the last read."""
        events, self._offset = read_events(self.folder, self._offset)
        for event in events:
            self._take(event)

    def _take(self, logged: dict) -> None:
        """Take in one logged event of the run: into its history, and what the page shows besides."""
        event, kind = event_from_dict(logged), logged.get("type")
        if event is not None:
            self._history.apply(event)
        if kind in (EventKind.BATCH, EventKind.LR):
            self._last_batch = (logged.get("epoch", 1), logged["step"])
        if kind == EventKind.STARTED:
            self._info = logged
        if kind in (EventKind.STARTED, EventKind.LR) and self._status in NOT_YET_RUNNING:
            self._status = Status.RUNNING
        if kind in (EventKind.END, EventKind.RESUMED):  # a resumed run has not ended: how that process ended is void
            self._end = logged if kind == EventKind.END else None

    def _status_now(self, alive: bool) -> tuple[Status, str | None]:
        """The status and error, from the last event and whether the process still lives."""
        if self._end is not None and (not alive or self._end["status"] != Status.FAILED):
            return Status(self._end["status"]), self._end.get("error")
        if self._status in (Status.QUEUED, Status.CANCELLED, Status.NEW) or alive:
            return self._status, None
        return Status.FAILED, self._killed_message()

    def _killed_message(self) -> str:
        epoch, step = self._last_batch
        lost = self._handle.lost_message(max(epoch, 1), step) if self._handle is not None else None
        return lost or (f"the run was killed by the system (probably out of memory) at epoch {max(epoch, 1)}, batch "
                        f"{step}; its curves up to then are kept")

    def _observe(self) -> tuple[Status, str | None, float]:
        """(status, error, seconds since queued) after reading the new events; called under the lock."""
        self._read()
        # the process and the status are read together: launch() sets both under this lock
        alive = self._handle is not None and self._handle.running()
        status, error = self._status_now(alive)
        if status.ended and not self._ended:
            self._ended = time.monotonic()
        end = self._ended or time.monotonic()
        return status, error, end - self._queued if self._queued else 0.0

    def _queue_note(self) -> str | None:
        """Its place while queued; ends a run past Stop's grace. Before this job's lock: the backend's comes first."""
        self.alive()
        return self.backend.queue_note(self) if self.backend is not None and self._status == Status.QUEUED else None

    def snapshot(self) -> JobSnapshot:
        """What the folder says now, and whether the process lives."""
        note = self._queue_note()
        with self._lock:
            status, error, elapsed = self._observe()
            info, history = self._info, self._history
            # written (atomically) before the end event; a resumed run's earlier checkpoint does not count
            saved = self._end is not None and (self.folder / METRICS_FILE).is_file()
            if self._end is not None and self._end.get("history") and not history.epochs:
                history.epochs = History.from_dict(self._end["history"]).epochs
            last_epoch = history.epochs[-1].epoch if history.epochs else 0
            resumable = (status in (Status.FAILED, Status.STOPPED) and (self.folder / STATE_FILE).is_file()
                         and last_epoch < self.config.total_epochs)
            return JobSnapshot(
                id=self.id, label=run_label(self.config), config=self.config, status=status,
                epochs=list(history.epochs), batches=list(history.batches), examples_per_sec=history.examples_per_sec,
                devices=list(info.get("devices", [])), weights=info.get("weights", ""),
                classes=list(info.get("classes", [])), train_size=info.get("train_size", 0),
                test_size=info.get("test_size", 0), steps_per_epoch=info.get("steps_per_epoch", 0),
                elapsed=elapsed, error=error, saved_to=str(self.folder) if saved else None,
                heldout=history.heldout, queue_note=note, resumable=resumable,
                batchnorm=info.get("batchnorm", ""), steering=list(history.steering))

    def to_run(self) -> Run:
        """The ended run as a Run of the tab, its model loaded from the folder when first used."""
        return load_saved_run(self.folder)


class FinderJob(ProcessJob):
    """The learning-rate finder on a run's recipe, in a child process queued like a training run."""

    def __init__(self, config: TrainConfig, folder_root: str | Path, settings: FinderSettings | None = None,
                 owner: str | None = None):
        super().__init__(config, folder_root, owner=owner)
        self.max_procs = 1  # a range test is one process on one device, even where training would take several
        self.settings = settings or FinderSettings()
        self._steps: list[LrStep] = []
        self._finding: LrFinding | None = None

    def start(self, backend: QueueingBackend | None = None) -> FinderJob:
        """Check the recipe and the settings, then queue it like a run."""
        check_request(self.config, self.settings)
        super().start(backend)
        return self

    def _write_request(self) -> None:
        write_request(self.folder, self.config, task="lr_find", options=asdict(self.settings), owner=self.owner)

    def _take(self, logged: dict) -> None:
        super()._take(logged)
        if logged.get("type") == EventKind.LR:
            self._steps.append(event_from_dict(logged))

    def _killed_message(self) -> str:
        lost = self._handle.lost_message(1, self._last_batch[1]) if self._handle is not None else None
        if lost:
            return lost.replace("the run's", "the learning-rate finder's", 1)
        return (f"the learning-rate finder was killed by the system (probably out of memory) at step "
                f"{self._last_batch[1]}; start it again with a smaller batch or image size")

    def snapshot(self) -> FinderSnapshot:  # type: ignore[override]
        """What the folder says now: the steps so far, and the curve with its suggestion once it has ended."""
        note = self._queue_note()
        with self._lock:
            status, error, elapsed = self._observe()
            if status in KEPT and self._finding is None and (self.folder / FINDING_FILE).is_file():
                self._finding = LrFinding.from_dict(json.loads((self.folder / FINDING_FILE).read_text()))
            return FinderSnapshot(id=self.id, config=self.config, settings=self.settings, status=status,
                                  steps=list(self._steps), elapsed=elapsed, error=error, finding=self._finding,
                                  queue_note=note)

    def to_run(self) -> Run:
        """A finder trains no model to keep."""
        raise TypeError("a learning-rate finder has no run to keep")


def list_interrupted(runs_dir: str | Path, owner: str | None = None) -> list[Path]:
    """Run folders (with `owner`, that owner's) that ended before their last epoch with a state to resume from."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith(".") or not all((folder / name).is_file() for name in (STATE_FILE, REQUEST_FILE)):
            continue
        if owner is not None and read_owner(folder) != owner:
            continue
        ends = [e for e in read_events(folder)[0] if e.get("type") == EventKind.END]
        if not ends or ends[-1]["status"] != Status.FINISHED:
            found.append(folder)
    return found
