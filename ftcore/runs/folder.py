"""The run folder: every file a run keeps (a `train --out` folder is one too), its request, its owner, and its events
written by the run and read back by the server: request.json, events.jsonl, resume.pt, worker.log, checkpoint.pt
and metrics.json (lr_find.json for a finder), the `stop` file, and the ask log and answers of runs.steering. The
modules that write the files inside take their paths from the caller. Plain data only, and no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
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
    """Write what the child does (task, config, resume, options, owner) as a new attempt: an older one ends."""
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
    """What a run records of its owner: a digest of the owner's secret (a tab's id), never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Request:
    """What request.json says: the task, its options and config, whether to resume, the attempt and the owner."""

    task: str
    config: dict
    resume: bool = False
    options: dict = field(default_factory=dict)
    attempt: str | None = None
    owner: str | None = None


def read_request(folder: Path) -> Request:
    """The request the server wrote in `folder`; OSError or ValueError where there is none to read."""
    d = json.loads((folder / REQUEST_FILE).read_text())
    return Request(task=d.get("task", "train"), config=dict(d["config"]), resume=bool(d.get("resume", False)),
                   options=dict(d.get("options") or {}), attempt=d.get("attempt"), owner=d.get("owner"))


def read_owner(folder: Path) -> str | None:
    """Who owns the run in `folder` (owner_of); None for a run without one (the command line's, or older)."""
    try:
        return read_request(folder).owner
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create a run folder (before training, so that an unwritable one fails at once)."""
    out_dir = Path(out_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FtcoreError(f"cannot create the output folder {out_dir} ({e.strerror or e}); choose a writable "
                          "one (--out)") from None
    return out_dir


# Each training (or finder) event class and the kind its log line names; the records an event carries.
EVENT_KINDS: dict[type, EventKind] = {RunStarted: EventKind.STARTED, BatchEnded: EventKind.BATCH,
                                      EpochEnded: EventKind.EPOCH, LrStep: EventKind.LR, Steered: EventKind.STEER,
                                      Resumed: EventKind.RESUMED}
EVENT_RECORDS: dict[type, type] = {BatchEnded: BatchRecord, EpochEnded: EpochRecord, Steered: SteerRecord}


def event_dict(event: Event) -> dict:
    """A training (or finder) event as one JSON-able object with its type."""
    return {"type": EVENT_KINDS[type(event)], **asdict(event)}


def event_from_dict(d: dict) -> Event | None:
    """The event a logged dict was made from (event_dict's inverse); None for the `end` line."""
    kind = next((cls for cls, name in EVENT_KINDS.items() if name == d.get("type")), None)
    if kind is None:
        return None
    fields = {k: v for k, v in d.items() if k != "type"}
    if kind in EVENT_RECORDS:
        fields["record"] = EVENT_RECORDS[kind](**fields["record"])
    return kind(**fields)


class EventLog:
    """Appends a run's events to <folder>/events.jsonl, one line each (under torchrun, rank 0 alone)."""

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
    """The whole lines of events.jsonl from byte `offset` on, and the offset after them."""
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
