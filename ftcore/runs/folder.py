"""The run folder: every file a run keeps, and its events written by the run and read back by the server.

<runs>/<run id>/ holds request.json (what to do, written by the server: train, or find a learning rate),
events.jsonl (one JSON object per line, appended by the run as it goes: started, batch, steer, epoch, end), resume.pt
(after every epoch), worker.log (the child's own output) and, once a training ends with a model, checkpoint.pt
and metrics.json (a finder's curve goes to lr_find.json). A file named `stop` asks the run to end after its
current batch; steer.jsonl logs the asks to train at other learning rates from its next batch, and steered.json is
where the run says whether it still runs, the rates it trains at and what came of each ask. Everything is on disk,
so a refreshed page or a restarted server reads the same curves, and a run that dies keeps everything it wrote.
checkpoint.pt and metrics.json are also what `ftcore train --out` writes.

Every name of those files is here, so a `train --out` folder is a run folder too; the modules that write the files
inside (`models.checkpoint`, `models.metrics`, `train.resume`, `lr_find.finding`) take their paths from the caller.
The folder's request and events are plain data (the config as its dict), so this module needs nothing of the
training loop but its records, and no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..records import (
    BatchEnded,
    BatchRecord,
    EpochEnded,
    EpochRecord,
    Event,
    EventKind,
    LrStep,
    Resumed,
    RunStarted,
    Status,
    Steered,
    SteerRecord,
)
from ..util.paths import RUNS_DIR_ENV, atomic_write

REQUEST_FILE = "request.json"
EVENTS_FILE = "events.jsonl"
STOP_FILE = "stop"
LOG_FILE = "worker.log"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
STATE_FILE = "resume.pt"  # the state to resume from (train.resume.save_state), replaced after every epoch
FINDING_FILE = "lr_find.json"  # a learning-rate finder's curve and suggestion (lr_find.finding.write_curve)
STEER_FILE = "steer.jsonl"  # the ask log: the learning rates asked of the running run, one line an ask (runs.steering)
STEERED_FILE = "steered.json"  # the run's side: running or not, its rates now, its answer to each ask


TASKS = ("train", "lr_find")  # what a child can be asked to do with the config


def write_request(folder: Path, config: TrainConfig, resume: bool = False, task: str = "train",
                  options: dict | None = None, owner: str | None = None) -> None:
    """What the child does: the task (training, or the learning-rate finder with its `options`), the config,
    whether a training continues from resume.pt, and who owns the run (owner_of: who may list, steer, stop and
    resume it). Each request names a new attempt: a process of an earlier one (on a machine the cluster gave up for
    lost) ends once it sees the folder is no longer its own."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    request = {"task": task, "config": config.to_dict(), "resume": resume, "options": options or {},
               "attempt": uuid.uuid4().hex, "owner": owner}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / REQUEST_FILE) as out:
            out.write(json.dumps(request, indent=2).encode())
    except OSError as e:
        raise FtcoreError(f"the run's folder {folder} cannot be written on {socket.gethostname()} "
                          f"({e.strerror or e}); point ${RUNS_DIR_ENV} (runs) or $FTCORE_CACHE (the rest) at a folder "
                          "this machine can write") from None


def owner_of(secret: str) -> str:
    """What a run folder records of its owner: a digest of the owner's secret (a tab's id), so that reading the
    files does not give away the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


def read_owner(folder: Path) -> str | None:
    """Who owns the run in `folder` (owner_of), or None for a run with no owner (the command line's, or one made
    before runs had owners)."""
    try:
        return json.loads((folder / REQUEST_FILE).read_text()).get("owner")
    except (OSError, ValueError, AttributeError):
        return None


def read_request(folder: Path) -> tuple[dict, bool]:
    """The config (as the dict TrainConfig.from_dict takes) and the resume flag the server wrote."""
    request = json.loads((folder / REQUEST_FILE).read_text())
    return dict(request["config"]), bool(request.get("resume", False))


def read_attempt(folder: Path) -> str | None:
    """The attempt the folder's request names now (None when it cannot be read, or predates attempts)."""
    try:
        return json.loads((folder / REQUEST_FILE).read_text()).get("attempt")
    except (OSError, ValueError):
        return None


def read_task(folder: Path) -> tuple[str, dict]:
    """The task the server asked for ("train" for requests written before there were others) and its options."""
    request = json.loads((folder / REQUEST_FILE).read_text())
    return request.get("task", "train"), dict(request.get("options") or {})


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create a run folder (before training, so that an unwritable one fails at once)."""
    out_dir = Path(out_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FtcoreError(f"cannot create the output folder {out_dir} ({e.strerror or e}); choose a writable "
                          "one (--out)") from None
    return out_dir


def event_dict(event: Event) -> dict:
    """A training (or finder) event as one JSON-able object with its type."""
    if isinstance(event, RunStarted):
        return {"type": EventKind.STARTED, **asdict(event)}
    if isinstance(event, BatchEnded):
        return {"type": EventKind.BATCH, "epoch": event.epoch, "step": event.step, "steps": event.steps,
                "record": asdict(event.record), "examples_per_sec": event.examples_per_sec}
    if isinstance(event, EpochEnded):
        return {"type": EventKind.EPOCH, "record": asdict(event.record), "examples_per_sec": event.examples_per_sec}
    if isinstance(event, LrStep):
        return {"type": EventKind.LR, **asdict(event)}
    if isinstance(event, Steered):
        return {"type": EventKind.STEER, "record": asdict(event.record)}
    if isinstance(event, Resumed):
        return {"type": EventKind.RESUMED, "epoch": event.epoch}
    raise TypeError(f"not a training event: {event!r}")


def event_from_dict(d: dict) -> Event | None:
    """The event a logged dict was made from (event_dict's inverse); None for the lines that are not training
    events (how the run ended)."""
    fields = {k: v for k, v in d.items() if k != "type"}
    kind = d.get("type")
    if kind == EventKind.RESUMED:
        return Resumed(epoch=d["epoch"])
    if kind == EventKind.STARTED:
        return RunStarted(**fields)
    if kind == EventKind.BATCH:
        return BatchEnded(epoch=d["epoch"], step=d["step"], steps=d["steps"], record=BatchRecord(**d["record"]),
                          examples_per_sec=d["examples_per_sec"])
    if kind == EventKind.EPOCH:
        return EpochEnded(record=EpochRecord(**d["record"]), examples_per_sec=d["examples_per_sec"] or 0.0)
    if kind == EventKind.STEER:
        return Steered(record=SteerRecord(**d["record"]))
    if kind == EventKind.LR:
        return LrStep(**fields)
    return None


class EventLog:
    """Appends a run's events to <folder>/events.jsonl, one line each, flushed at once (under torchrun, rank 0
    alone writes)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / EVENTS_FILE

    def write(self, record: dict) -> None:
        """Append one object as a line; the line reaches the OS before this returns."""
        from ..devices import distributed  # here, not at import: pages read run folders before torch has loaded

        if not distributed.context().is_main:
            return
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def __call__(self, event: Event) -> None:
        self.write(event_dict(event))

    def end(self, status: Status, error: str | None = None, history: dict | None = None) -> None:
        """The last line: how the run ended (finished, stopped, failed), why, and the history when it failed."""
        self.write({"type": EventKind.END, "status": status, "error": error, "history": history})

    def resumed(self, epoch: float) -> None:
        """A new process continues after `epoch`: the events after it are void."""
        self(Resumed(epoch))


def read_events(folder: Path, offset: int = 0) -> tuple[list[dict], int]:
    """The whole lines of events.jsonl from byte `offset` on, and the offset after them (a line the run is still
    writing is left for the next read)."""
    path = Path(folder) / EVENTS_FILE
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    whole = chunk[:chunk.rfind(b"\n") + 1]
    events = []
    for line in whole.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash in the middle of a write: the rest of the log still counts
    return events, offset + len(whole)


def request_stop(folder: Path) -> None:
    """Ask the run in `folder` to end after its current batch."""
    (Path(folder) / STOP_FILE).touch()


def stop_requested(folder: Path) -> bool:
    """True once the server asked the run to stop."""
    return os.path.exists(Path(folder) / STOP_FILE)


def new_run_id() -> str:
    """A run id unique across tabs and restarts: the start time (sortable) and 8 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
