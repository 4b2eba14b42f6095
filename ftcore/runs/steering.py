"""Steering a running run through its folder, the same for a child process, a forked one, a Ray job and
`ftcore train --out`: whoever asks writes the rates wanted to steer.json; the run reads that file once per batch
when it has changed, applies the rates before its next batch and says so in steered.json, where it also keeps
whether it still runs and the rates it trains at. This module is the only one that writes or reads those two files.

Without torch: the pages and the `steer` command ask, and read the answer, before torch has loaded.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..records import EventKind, History, SteerRecord
from ..train.steering import Rates, copied_rate, starting_rates, wanted_rates
from ..util.paths import atomic_write
from .folder import REQUEST_FILE, STEER_FILE, STEERED_FILE, read_events

WAIT_POLL_SECONDS = 0.2  # how often the one who asked looks for the run's answer


@dataclass
class SteerState:
    """What steered.json says: whether the run still runs, where, on which settings, and the rates it trains at."""

    running: bool  # the run has not ended (it says so when it ends; a run killed cannot)
    pid: int  # its process, on `host`
    host: str
    config: dict  # its TrainConfig, as a dict
    rates: Rates  # the learning rates it trains at now
    unfrozen_lr: float  # the copied layers' rate before they were frozen (their rate now, when they are not)
    asked: str | None = None  # the last ask it took
    epoch: float | None = None  # where that ask applied, in epochs
    changed: bool = False  # whether that ask changed the rates (else they were those in force already)

    def to_dict(self) -> dict:
        """Plain dict for steered.json."""
        return {**asdict(self), "rates": asdict(self.rates)}

    @classmethod
    def from_dict(cls, d: dict) -> SteerState:
        """Rebuild what `to_dict` wrote."""
        return cls(**{**d, "rates": Rates(**d["rates"])})


def write_state(folder: Path, state: SteerState) -> None:
    """Write steered.json atomically."""
    with atomic_write(Path(folder) / STEERED_FILE) as out:
        out.write(json.dumps(state.to_dict()).encode())


def read_state(folder: Path) -> SteerState | None:
    """What steered.json says, or None where the folder has none (or it cannot be read)."""
    try:
        return SteerState.from_dict(json.loads((Path(folder) / STEERED_FILE).read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class Ask:
    """What steer.json says: the last ask, by id, for the rates wanted from the run's next batch."""

    id: str
    rates: Rates
    unfrozen_lr: float  # the copied layers' rate to go back to when unfrozen (their rate, unless frozen)


def read_ask(folder: Path) -> Ask | None:
    """The last ask written to steer.json; None where there is none."""
    try:
        d = json.loads((Path(folder) / STEER_FILE).read_text())
        return Ask(id=str(d["id"]), rates=Rates(lr=float(d["lr"]), head_lr=float(d["head_lr"])),
                   unfrozen_lr=float(d["unfrozen_lr"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_ask(folder: Path, ask: Ask) -> None:
    """Write steer.json atomically: the run never reads half an ask."""
    with atomic_write(folder / STEER_FILE) as out:
        out.write(json.dumps({"id": ask.id, **asdict(ask.rates), "unfrozen_lr": ask.unfrozen_lr}).encode())


def resumed_rates(config: TrainConfig, history: History) -> tuple[Rates, float]:
    """The rates a run trains at after what its history records (its starting ones where it was never steered), and
    its copied layers' last rate above 0 (the rate they go back to when unfrozen)."""
    last = history.steering[-1] if history.steering else None
    rates = Rates.of(last) if last is not None else starting_rates(config)
    unfrozen = [r.lr for r in history.steering if r.lr > 0]
    return rates, unfrozen[-1] if unfrozen else config.lr


class FolderSteering:
    """A run's own folder as its steering source (`train.steering.SteeringSource`): the last ask in steer.json, read
    when the file has changed (one stat a batch), and the run's answer in steered.json."""

    def __init__(self, folder: str | Path, config: TrainConfig, history: History | None = None) -> None:
        self.folder = Path(folder)
        rates, unfrozen = resumed_rates(config, history or History())
        self.state = SteerState(running=True, pid=os.getpid(), host=socket.gethostname(), config=config.to_dict(),
                                rates=rates, unfrozen_lr=unfrozen)
        self.seen: tuple[int, int, int] | None = None  # steer.json's (inode, mtime, size) when last read
        old = read_ask(self.folder)
        self.state.asked = old.id if old is not None else None  # an ask from before this process is its history's
        self.pending: Ask | None = None  # the ask read, until the run applies it
        write_state(self.folder, self.state)

    def poll(self, position: float, now: Rates) -> Rates | None:
        """The rates of a new ask in steer.json where they differ from those in force `now`; an ask for the rates in
        force is answered at once, as unchanged."""
        try:
            stat = os.stat(self.folder / STEER_FILE)
        except OSError:
            return None
        if (stat.st_ino, stat.st_mtime_ns, stat.st_size) == self.seen:
            return None
        self.seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # each ask is a new file, renamed into place
        ask = read_ask(self.folder)
        if ask is None or ask.id == self.state.asked:
            return None
        self.state.asked, self.pending = ask.id, ask
        if ask.rates == now:
            self._answer(position, now, changed=False)
            return None
        return ask.rates

    def applied(self, record: SteerRecord) -> None:
        """The run applied the last ask before the batch at `record.epoch`."""
        self._answer(record.epoch, Rates.of(record), changed=True)

    def _answer(self, position: float, rates: Rates, changed: bool) -> None:
        asked = self.pending if self.pending is not None and self.pending.rates == rates else None
        self.state.unfrozen_lr = asked.unfrozen_lr if asked is not None else rates.lr or self.state.unfrozen_lr
        self.state.rates, self.state.epoch, self.state.changed = rates, position, changed
        self.pending = None
        write_state(self.folder, self.state)

    def close(self) -> None:
        """The run has ended: nothing can steer it any more."""
        self.state.running = False
        write_state(self.folder, self.state)


def ended_sentence(folder: Path) -> str | None:
    """Why the run in `folder` cannot be steered (it has ended, or never ran here), in one sentence; None while it
    trains."""
    state = read_state(folder)
    if (folder / REQUEST_FILE).is_file():  # a run of the app (of this machine or a cluster's): its events say
        ended = None
        for event in read_events(folder)[0]:
            kind = event.get("type")
            ended = event["status"] if kind == EventKind.END else None if kind == EventKind.RESUMED else ended
        if ended:
            return f"the run in {folder} has ended ({ended}); steer a run while it trains"
        if state is None:
            return f"the run in {folder} has not started yet; steer it once it trains"
    if state is None:
        return (f"{folder} holds no run; give a run's folder (one in the runs folder), or the folder a training "
                "writes its checkpoint to")
    if not state.running or not alive(state):
        return f"the run in {folder} has ended; steer a run while it trains"
    return None


def alive(state: SteerState) -> bool:
    """False where the run's process is known to be gone (on this machine); True elsewhere (a cluster's node)."""
    if state.host != socket.gethostname():
        return True
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def rates_to_come(folder: Path, state: SteerState) -> tuple[Rates, float]:
    """The rates the run in `folder` trains at once it has taken what was asked of it (an ask not taken yet, during
    a long batch, counts), and its copied layers' rate before they were frozen: what the next ask builds on."""
    pending = read_ask(folder)
    if pending is None or pending.id == state.asked:
        return state.rates, state.unfrozen_lr
    return pending.rates, pending.unfrozen_lr


def ask(folder: str | Path, lr: float | None = None, head_factor: float | None = None,
        freeze: bool | None = None) -> tuple[str | None, Rates, SteerState]:
    """Ask the run training in `folder` for other rates from its next batch: a new rate for the copied layers, the
    output layer at `head_factor` times it, the copied layers frozen or unfrozen. Returns the ask's id (None when
    the run trains at those rates already), the rates wanted, and what the run said last; FtcoreError where the
    folder holds no run, the run has ended, or the ask cannot be."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FtcoreError(f"{folder} is not a folder; give a run's folder, or the folder a training writes its "
                          "checkpoint to")
    problem = ended_sentence(folder)
    if problem:
        raise FtcoreError(problem)
    state = read_state(folder)
    now, unfrozen_lr = rates_to_come(folder, state)
    wanted = wanted_rates(TrainConfig.from_dict(state.config), now, unfrozen_lr, lr, head_factor, freeze)
    copied = copied_rate(now, unfrozen_lr, lr)
    if wanted == now and copied == unfrozen_lr:
        return None, wanted, state
    asked = Ask(id=uuid.uuid4().hex, rates=wanted, unfrozen_lr=copied)
    write_ask(folder, asked)
    return asked.id, wanted, state


def wait_for_answer(folder: str | Path, asked: str, timeout: float) -> SteerState | None:
    """What the run said once it took the ask `asked`; None when it did not within `timeout` seconds; FtcoreError
    when it ended first."""
    folder = Path(folder).expanduser()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(folder)
        if state is not None and state.asked == asked:
            return state
        latest = read_ask(folder)
        if latest is not None and latest.id != asked:
            raise FtcoreError(f"another ask replaced this one before the run in {folder} took it; the run takes the "
                              "latest ask at its next batch")
        problem = ended_sentence(folder)
        if problem:
            raise FtcoreError(problem.replace("; steer a run while it trains", " before it took the change"))
        time.sleep(WAIT_POLL_SECONDS)
    return None
