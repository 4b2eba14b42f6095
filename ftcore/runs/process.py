"""A run in a child process: launched when the backend admits it, stopped, and watched through its folder.

`ProcessJob` keeps the Job contract (runs.job) as `thread.TrainingJob` does (start, stop, join, snapshot, to_run),
so pages draw both alike; but nothing of the run lives in the server: the child writes its events, states and
checkpoint into <runs>/<run id>/ (see runs.folder), and a snapshot is what that folder says, plus whether the
process still lives. It speaks to the backend it was queued with only through runs.backend.Backend.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from ..config import TrainConfig
from ..lr_find.finding import FinderSettings, LrFinding, check_request
from ..records import KEPT, EventKind, History, LrStep, Status, SteerRecord
from ..util.paths import REPO_ROOT, child_environment
from . import forkserver
from .backend import Backend
from .folder import (
    FINDING_FILE,
    LOG_FILE,
    METRICS_FILE,
    REQUEST_FILE,
    STATE_FILE,
    batch_record,
    epoch_record,
    new_run_id,
    read_events,
    read_request,
    request_stop,
    write_request,
)
from .saved import Run, load_saved_run
from .snapshot import FinderSnapshot, JobSnapshot, run_label

STOP_GRACE_SECONDS = 30.0  # after Stop, the time a run has to end its batch before its process is ended
NOT_YET_RUNNING = (Status.NEW, Status.QUEUED, Status.STARTING)  # a start event moves these to running
PROCS_ENV = "FTCORE_WORKER_PROCS"  # processes per run under torchrun (default: one per GPU, else one)
WORKER_MODULE = "ftcore.runs.worker"  # the child process of a run: python -m WORKER_MODULE <run folder>


def worker_command(folder: Path, procs: int) -> list[str]:
    """The child's command line: the worker itself, or torchrun with `procs` processes of it."""
    if procs > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                "-m", WORKER_MODULE, str(folder)]
    return [sys.executable, "-m", WORKER_MODULE, str(folder)]


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Handle(Protocol):
    """Where a launched run executes: a child process of this server (ChildProcess) or a job on a Ray cluster
    (runs.cluster.RayJob). The job reads everything else from the run's folder."""

    def running(self) -> bool:
        """True while the run's process (or job) has not ended."""
        ...

    def signal(self, sig: int) -> None:
        """SIGUSR1: end within the current batch (where the process can be signalled); SIGTERM and SIGKILL: end it."""
        ...

    def rss_bytes(self) -> int:
        """Resident memory of the run's process on this machine now (0 when it runs elsewhere or has ended)."""
        ...

    def lost_message(self, epoch: int, step: int) -> str | None:
        """Why the run ended without writing its end, in one sentence, where the handle knows (else None)."""
        ...


class ChildProcess:
    """A run's process on this machine: `python -m ftcore.runs.worker <folder>` (or torchrun with several), or the same
    worker forked from the warm fork server (runs.forkserver), which skips importing torch again."""

    def __init__(self, pid: int, proc: subprocess.Popen | None = None):
        self.pid = pid  # the child's process id, and its process group's
        self.proc = proc  # the fresh process (None: forked, and followed through a pidfd)
        self._pidfd: int | None = None
        self._pidfd_lock = threading.Lock()  # pages and the backend ask at once; the pidfd is closed once
        if proc is None:
            try:
                self._pidfd = os.pidfd_open(pid)
            except ProcessLookupError:  # it has ended already
                pass

    @classmethod
    def start(cls, folder: Path, procs: int, env: dict[str, str]) -> ChildProcess:
        """Launch the worker on `folder`, its output appended to the folder's worker.log."""
        environment = child_environment(env)
        if procs == 1:
            pid = forkserver.fork_run(str(folder), environment, str(folder / LOG_FILE))
            if pid is not None:
                return cls(pid)
        with open(folder / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(worker_command(folder, procs), cwd=REPO_ROOT, env=environment,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # Ctrl-C on the server's terminal is the server's
        return cls(proc.pid, proc)

    def running(self) -> bool:
        """True until the child has exited."""
        if self.proc is not None:
            return self.proc.poll() is None
        with self._pidfd_lock:
            if self._pidfd is None:
                return False
            if select.select([self._pidfd], [], [], 0)[0]:  # a pidfd reads as ready once its process has exited
                os.close(self._pidfd)
                self._pidfd = None
                return False
            return True

    def signal(self, sig: int) -> None:
        """Send `sig` to the child's process group (its torchrun workers too)."""
        if self.running():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def rss_bytes(self) -> int:
        """Resident memory of the child now (0 when it has ended or cannot be read)."""
        if not self.running():
            return 0
        try:
            with open(f"/proc/{self.pid}/status") as f:
                line = next(line for line in f if line.startswith("VmRSS:"))
            return int(line.split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            return 0

    def lost_message(self, epoch: int, step: int) -> str | None:
        """A child that died without a word was killed on this machine: the job's own sentence says so."""
        return None

    def __del__(self):
        if self._pidfd is not None:
            os.close(self._pidfd)


class ProcessJob:
    """One run trained by `python -m ftcore.runs.worker` in a process of its own: a child of this server, or a job on a
    Ray cluster, as its backend launches it."""

    def __init__(self, config: TrainConfig, runs_dir: str | Path, job_id: str | None = None, resume: bool = False):
        self.id = job_id or new_run_id()
        self.config = config
        self.folder = Path(runs_dir) / self.id
        self.resume = resume
        self.procs = 1  # processes of the run (torchrun), set by the backend
        self.max_procs = sys.maxsize  # the most processes this kind of work can use
        self.estimate = 0  # bytes of memory the backend reserved for it
        self.gpu_estimate = 0  # bytes of GPU memory each of its processes needs (0: it trains on no GPU)
        self.group = self.id  # jobs submitted together share one group: admitted at once, sharing one slot
        self.backend: Backend | None = None
        self._lock = threading.Lock()
        self._handle: Handle | None = None
        self._status = Status.NEW
        self._queued = self._started = self._ended = self._stop_asked = 0.0
        self._offset = 0
        self._info: dict = {}
        self._epochs: list = []
        self._batches: list = []
        self._steering: list[SteerRecord] = []
        self._last_batch = (0, 0)  # (epoch, step) of the last batch the run reported
        self._examples_per_sec = 0.0
        self._end: dict | None = None

    @classmethod
    def resumed(cls, folder: str | Path) -> ProcessJob:
        """A job that continues the interrupted run in `folder` from its last saved epoch."""
        folder = Path(folder)
        config, _ = read_request(folder)
        return cls(TrainConfig.from_dict(config), folder.parent, folder.name, resume=True)

    @classmethod
    def adopted(cls, folder: str | Path, handle: Handle) -> ProcessJob:
        """A job that watches the run in `folder`, launched earlier (before a server restart) where `handle` sees
        it."""
        folder = Path(folder)
        config, resume = read_request(folder)
        job = cls(TrainConfig.from_dict(config), folder.parent, folder.name, resume=resume)
        job._queued = time.monotonic()
        job.attach(handle)
        return job

    # ---- the server's side

    def start(self, backend: Backend | None = None) -> ProcessJob:
        """Queue the run with `backend` (or launch it at once without one) and return self."""
        self.prepare(backend)
        if backend is None:
            self.launch({})
        else:
            backend.submit(self)
        return self

    def prepare(self, backend: Backend | None) -> None:
        """Everything of `start` but the queueing: refuse a run that can never fit, write its request, mark it
        queued (Backend.submit queues several prepared jobs to start together)."""
        if backend is not None:
            backend.check_fits(self.config)  # a run that can never fit is refused before anything is written
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
        write_request(self.folder, self.config, self.resume)

    def launch(self, env: dict[str, str]) -> None:
        """Start the child process (the local backend calls this when the run is admitted)."""
        self.attach(ChildProcess.start(self.folder, self.procs, env))

    def attach(self, handle: Handle) -> None:
        """The run has been launched where `handle` watches it."""
        with self._lock:
            self._handle, self._status, self._started = handle, Status.STARTING, time.monotonic()

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
        while True:
            if self.snapshot().done:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def started_training(self) -> bool:
        """True once the run has reported a trained batch (or a finder step), so its memory is taken."""
        with self._lock:
            self._read()
            return bool(self._batches or self._epochs or self._last_batch != (0, 0))

    def rss_bytes(self) -> int:
        """Resident memory of the run's process on this machine now (0 when it is not running here)."""
        return self._handle.rss_bytes() if self._handle is not None else 0

    # ---- reading the folder

    def _read(self) -> None:
        """Take in the events written since the last read."""
        events, self._offset = read_events(self.folder, self._offset)
        for event in events:
            self._take(event)

    def _take(self, event: dict) -> None:
        """Take in one event of the run."""
        kind = event.get("type")
        if kind == EventKind.RESUMED:  # a new process continues after epoch E: what came after it is gone
            self._epochs = [e for e in self._epochs if e.epoch <= event["epoch"]]
            self._batches = [b for b in self._batches if b.epoch <= event["epoch"]]
            self._steering = [s for s in self._steering if s.epoch < event["epoch"]]
            self._end = None
        elif kind == EventKind.STARTED:
            self._info = event
            if self._status in NOT_YET_RUNNING:
                self._status = Status.RUNNING
        elif kind == EventKind.BATCH:
            self._batches.append(batch_record(event["record"]))
            self._last_batch = (event["epoch"], event["step"])
            self._examples_per_sec = event["examples_per_sec"]
        elif kind == EventKind.STEER:
            self._steering.append(SteerRecord(**event["record"]))
        elif kind == EventKind.EPOCH:
            self._epochs.append(epoch_record(event["record"]))
            self._examples_per_sec = event["examples_per_sec"] or self._examples_per_sec
        elif kind == EventKind.END:
            self._end = event

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
        if lost:
            return lost
        return (f"the run was killed by the system (probably out of memory) at epoch {max(epoch, 1)}, batch {step}; "
                "its curves up to then are kept")

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
        """Its place in the queue while queued; ends a run that outlived Stop's grace period. Called before taking
        this job's lock: the backend's thread holds its own lock while it asks jobs."""
        self.alive()
        return self.backend.queue_note(self) if self.backend is not None and self._status == Status.QUEUED else None

    def snapshot(self) -> JobSnapshot:
        """What the folder says now, and whether the process lives."""
        note = self._queue_note()
        with self._lock:
            status, error, elapsed = self._observe()
            info = self._info
            # written (atomically) before the end event; a resumed run's earlier checkpoint does not count
            saved = self._end is not None and (self.folder / METRICS_FILE).is_file()
            if self._end is not None and self._end.get("history") and not self._epochs:
                self._epochs = History.from_dict(self._end["history"]).epochs
            last_epoch = self._epochs[-1].epoch if self._epochs else 0
            resumable = (status in (Status.FAILED, Status.STOPPED) and (self.folder / STATE_FILE).is_file()
                         and last_epoch < self.config.total_epochs)
            return JobSnapshot(
                id=self.id, label=run_label(self.config), config=self.config, status=status,
                epochs=list(self._epochs), batches=list(self._batches), examples_per_sec=self._examples_per_sec,
                devices=list(info.get("devices", [])), weights=info.get("weights", ""),
                classes=list(info.get("classes", [])), train_size=info.get("train_size", 0),
                test_size=info.get("test_size", 0), steps_per_epoch=info.get("steps_per_epoch", 0),
                elapsed=elapsed, error=error, saved_to=str(self.folder) if saved else None,
                heldout=info.get("heldout", "test"), queue_note=note, resumable=resumable,
                batchnorm=info.get("batchnorm", ""), steering=list(self._steering))

    def to_run(self) -> Run:
        """The ended run as a Run of the tab, its model loaded from the folder when first used."""
        return load_saved_run(self.folder)

    def release_model(self) -> None:
        """Nothing to release: the model lives in the folder, and in the server only once a page asks for it."""


class FinderJob(ProcessJob):
    """The learning-rate finder on a run's recipe, in a child process queued like a training run."""

    def __init__(self, config: TrainConfig, folder_root: str | Path, settings: FinderSettings | None = None):
        super().__init__(config, folder_root)
        self.max_procs = 1  # a range test is one process on one device, even where training would take several
        self.settings = settings or FinderSettings()
        self._steps: list[LrStep] = []
        self._finding: LrFinding | None = None

    def start(self, backend: Backend | None = None) -> FinderJob:
        """Check the recipe and the settings, then queue it like a run."""
        check_request(self.config, self.settings)
        super().start(backend)
        return self

    def _write_request(self) -> None:
        write_request(self.folder, self.config, task="lr_find", options=asdict(self.settings))

    def _take(self, event: dict) -> None:
        if event.get("type") == EventKind.LR:
            self._steps.append(LrStep(**{k: v for k, v in event.items() if k != "type"}))
            self._last_batch = (1, event["step"])
            if self._status in NOT_YET_RUNNING:
                self._status = Status.RUNNING
        else:
            super()._take(event)

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


def list_interrupted(runs_dir: str | Path) -> list[Path]:
    """Run folders that ended (or died) before their last epoch with a state to resume from, oldest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith(".") or not all((folder / name).is_file() for name in (STATE_FILE, REQUEST_FILE)):
            continue
        events, _ = read_events(folder)
        ends = [e for e in events if e.get("type") == EventKind.END]
        if not ends or ends[-1]["status"] != Status.FINISHED:
            found.append(folder)
    return found

