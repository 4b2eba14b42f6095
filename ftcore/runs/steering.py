"""Steering a running run through its folder, alike for a child process, a Ray job and `ftcore train --out`: the
only module that writes or reads the ask log (steer.jsonl) and the run's answers (steered.json).

Whoever asks appends a line to the log under a lock (its line number is its sequence number), built on any ask the
run has not read yet. Before each batch the run reads the new lines (a failed read is tried at the next batch),
checks each itself, applies the last one it can and answers each (`Outcome`). A resumed run applies again the
changes it goes back before, and the asks it had not read where it stopped. No torch: pages ask before it loads.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..records import EventKind, History, SteerRecord
from ..train.steering import SAME_POINT, Rates, copied_rate, rates_text, refusal, starting_rates, wanted_rates
from ..util.paths import atomic_write
from .folder import REQUEST_FILE, STEER_FILE, STEERED_FILE, read_events, read_owner

WAIT_POLL_SECONDS = 0.2  # how often the one who asked looks for the run's answer


class Outcome(StrEnum):
    """What came of an ask; written to steered.json as its plain value."""

    APPLIED = "applied"  # the run trains at the rates asked from the batch at `epoch`
    UNCHANGED = "unchanged"  # the run trained at those rates already
    REPLACED = "replaced"  # a later ask came before the run's next batch, and that one was applied
    REFUSED = "refused"  # the run cannot train at those rates (`reason` says why)
    NOT_APPLIED = "not applied"  # the run finished before its next batch


@dataclass(frozen=True)
class Ask:
    """One line of the ask log: the rates wanted from the run's next batch, or why the line is no ask."""

    seq: int  # its line in the log, from 1
    rates: Rates
    unfrozen_lr: float  # the copied layers' rate to go back to when unfrozen (their rate, unless frozen)
    problem: str | None = None  # a line written by hand that holds no rates

    def to_line(self) -> bytes:
        """The log's line for it."""
        return json.dumps({"seq": self.seq, **asdict(self.rates), "unfrozen_lr": self.unfrozen_lr}).encode() + b"\n"

    @classmethod
    def from_line(cls, seq: int, line: bytes) -> Ask:
        """The ask on line `seq` of the log, whatever was written there."""
        try:
            d = json.loads(line)
            rates = Rates(lr=float(d["lr"]), head_lr=float(d["head_lr"]))
            return cls(seq, rates, float(d.get("unfrozen_lr", rates.lr)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(seq, Rates(lr=0.0, head_lr=0.0), 0.0, "the line holds no learning rates")


@dataclass
class Answer:
    """What the run said of one ask."""

    seq: int
    outcome: Outcome
    epoch: float | None = None  # where it applied, in epochs (applied, unchanged)
    reason: str = ""  # why it was refused, or which ask replaced it

    def text(self) -> str:
        """"applied at epoch 1.44", "replaced by ask 4", "refused: the output layer's ..."."""
        if self.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            return f"{self.outcome} at epoch {self.epoch:.2f}"
        return f"{self.outcome}: {self.reason}" if self.reason else str(self.outcome)


@dataclass
class SteerState:
    """What steered.json says: whether and where the run still runs, its settings, its rates and its answers."""

    running: bool  # the run has not ended (it says so when it ends; a run killed cannot)
    pid: int  # its process, on `host`
    host: str
    config: dict  # its TrainConfig, as a dict
    rates: Rates  # the learning rates it trains at now
    unfrozen_lr: float  # the copied layers' rate before they were frozen (their rate now, when they are not)
    seen: int = 0  # the asks it has read: the log's first `seen` lines
    offset: int = 0  # the bytes of those lines
    position: float = 0.0  # where it last looked for asks, in epochs: where a resumed run takes what came after
    answers: list[Answer] = field(default_factory=list)  # one per ask it has answered, in order

    def answer(self, seq: int) -> Answer | None:
        """Its answer to ask `seq` (None while it has not read it)."""
        return next((a for a in reversed(self.answers) if a.seq == seq), None)

    def to_dict(self) -> dict:
        """Plain dict for steered.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SteerState:
        """Rebuild what `to_dict` wrote."""
        answers = [Answer(**{**a, "outcome": Outcome(a["outcome"])}) for a in d.get("answers", [])]
        return cls(**{**d, "rates": Rates(**d["rates"]), "answers": answers})


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


def read_asks(folder: Path, offset: int = 0, seq: int = 0) -> tuple[list[Ask], int]:
    """The asks on the log's whole lines from byte `offset` (after line `seq`), and the offset after them."""
    try:
        with open(Path(folder) / STEER_FILE, "rb") as log:
            log.seek(offset)
            chunk = log.read()
    except FileNotFoundError:
        return [], offset
    whole = chunk[:chunk.rfind(b"\n") + 1]
    return [Ask.from_line(seq + i, line) for i, line in enumerate(whole.splitlines(), start=1)], offset + len(whole)


class FolderSteering:
    """A run's own folder as its steering source: the ask log's new lines, and its answers in steered.json."""

    def __init__(self, folder: str | Path, config: TrainConfig, history: History | None = None) -> None:
        self.folder, self.config = Path(folder), config
        changes = (history or History()).steering  # a resumed run starts at its last change's rates
        rates = Rates.of(changes[-1]) if changes else starting_rates(config)
        unfrozen = next((r.lr for r in reversed(changes) if r.lr > 0), config.lr)  # where unfreezing goes back to
        prior = read_state(self.folder) if history is not None else None  # a resumed run's answers so far
        self.state = SteerState(running=True, pid=os.getpid(), host=socket.gethostname(), config=config.to_dict(),
                                rates=rates, unfrozen_lr=unfrozen, answers=prior.answers if prior else [])
        asks, end = read_asks(self.folder)
        # a new run leaves the asks made of an earlier one in this folder; a resumed run reads on where it stopped
        self.state.seen, self.state.offset = (prior.seen, prior.offset) if prior is not None else (len(asks), end)
        self.pending: Ask | None = None  # the ask being applied, until the run says it has
        self.replay: list[tuple[float, Ask]] = []  # changes a resumed run goes back before, applied again there
        self.stopped_at: float | None = None  # a resumed run: where it stopped, after which it reads new asks
        if prior is not None and history is not None:
            back_to = history.epochs[-1].epoch if history.epochs else 0.0
            by_seq = {ask.seq: ask for ask in asks}
            self.replay = [(a.epoch, by_seq[a.seq]) for a in prior.answers
                           if a.outcome == Outcome.APPLIED and a.epoch > back_to - SAME_POINT and a.seq in by_seq]
            self.stopped_at = prior.position
        write_state(self.folder, self.state)

    def poll(self, position: float, now: Rates) -> Rates | None:
        """The rates from the batch at `position` where they differ from `now`: a replayed change, or the last ask."""
        self.state.position = position
        due = [ask for at, ask in self.replay if at <= position + SAME_POINT]
        if due:
            self.replay = [(at, ask) for at, ask in self.replay if at > position + SAME_POINT]
            return self._take(due[-1], position, now)
        if self.stopped_at is not None and position < self.stopped_at + SAME_POINT:
            return None  # a resumed run reads later asks from the batch after the one it stopped after
        try:
            if os.stat(self.folder / STEER_FILE).st_size <= self.state.offset:
                return None
            asks, self.state.offset = read_asks(self.folder, self.state.offset, self.state.seen)
        except OSError:  # unreadable for now: the same lines are read again at the next batch
            return None
        if not asks:
            return None
        self.state.seen = asks[-1].seq
        usable = []
        for ask in asks:
            problem = ask.problem or refusal(self.config, ask.rates)
            if problem:
                self._answer(Answer(ask.seq, Outcome.REFUSED, reason=problem))
            else:
                usable.append(ask)
        for ask in usable[:-1]:
            self._answer(Answer(ask.seq, Outcome.REPLACED, reason=f"ask {usable[-1].seq} came before the next batch"))
        if not usable:
            write_state(self.folder, self.state)
            return None
        return self._take(usable[-1], position, now)

    def _take(self, ask: Ask, position: float, now: Rates) -> Rates | None:
        """Apply `ask` from the batch at `position` (its rates), or answer it as unchanged (None)."""
        self.pending = ask
        if ask.rates == now:
            self.applied(SteerRecord(epoch=position, lr=now.lr, head_lr=now.head_lr), Outcome.UNCHANGED)
            return None
        return ask.rates

    def applied(self, record: SteerRecord, outcome: Outcome = Outcome.APPLIED) -> None:
        """The run applied the ask it was given before the batch at `record.epoch`."""
        asked = self.pending
        rates = Rates.of(record)
        self.state.unfrozen_lr = asked.unfrozen_lr if asked is not None else rates.lr or self.state.unfrozen_lr
        self.state.rates = rates
        if asked is not None:
            self._answer(Answer(asked.seq, outcome, epoch=record.epoch))
        self.pending = None
        write_state(self.folder, self.state)

    def _answer(self, answer: Answer) -> None:
        self.state.answers = [a for a in self.state.answers if a.seq != answer.seq] + [answer]

    def close(self, finished: bool = False) -> None:
        """The run has ended: when it finished, it answers the asks it never reached; stopped, it keeps them."""
        self.state.running = False
        if finished:
            try:
                asks, self.state.offset = read_asks(self.folder, self.state.offset, self.state.seen)
            except OSError:
                asks = []
            for ask in [*(ask for _, ask in self.replay), *asks]:
                self._answer(Answer(ask.seq, Outcome.NOT_APPLIED, reason="the run finished before its next batch"))
            self.state.seen = asks[-1].seq if asks else self.state.seen
        write_state(self.folder, self.state)


def ended_sentence(folder: Path) -> str | None:
    """Why the run in `folder` cannot be steered (it has ended, or never ran here); None while it trains."""
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


def rates_to_come(folder: Path, state: SteerState, asks: list[Ask] | None = None) -> tuple[Rates, float]:
    """The rates the run will train at once it takes its unread asks, and its copied layers' rate to unfreeze to."""
    config = TrainConfig.from_dict(state.config)
    unread = [ask for ask in (read_asks(folder)[0] if asks is None else asks)
              if ask.seq > state.seen and not ask.problem and not refusal(config, ask.rates)]
    return (unread[-1].rates, unread[-1].unfrozen_lr) if unread else (state.rates, state.unfrozen_lr)


def ask(folder: str | Path, lr: float | None = None, head_factor: float | None = None, freeze: bool | None = None,
        owner: str | None = None) -> tuple[Ask | None, Rates, SteerState]:
    """Ask the run in `folder` for other rates from its next batch: the ask (None: no change), the rates, its state."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FtcoreError(f"{folder} is not a folder; give a run's folder, or the folder a training writes its "
                          "checkpoint to")
    if owner is not None and read_owner(folder) != owner:
        raise FtcoreError(f"the run in {folder} is not this tab's; only the tab that started a run steers it")
    problem = ended_sentence(folder)
    if problem:
        raise FtcoreError(problem)
    with open(folder / STEER_FILE, "a+b") as log:  # locked until closed: no other ask comes in between
        fcntl.flock(log, fcntl.LOCK_EX)
        state = read_state(folder)
        asks = read_asks(folder)[0]
        now, unfrozen_lr = rates_to_come(folder, state, asks)
        wanted = wanted_rates(TrainConfig.from_dict(state.config), now, unfrozen_lr, lr, head_factor, freeze)
        copied = copied_rate(now, unfrozen_lr, lr)
        if wanted == now and copied == unfrozen_lr:
            return None, wanted, state
        asked = Ask(seq=len(asks) + 1, rates=wanted, unfrozen_lr=copied)
        log.write(asked.to_line())
    return asked, wanted, state


def wait_for_answer(folder: str | Path, seq: int, timeout: float) -> Answer | None:
    """The run's answer to ask `seq`; None when it has not read it within `timeout` s; FtcoreError when it ended."""
    folder = Path(folder).expanduser()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(folder)
        answer = state.answer(seq) if state is not None else None
        if answer is not None:
            return answer
        problem = ended_sentence(folder)
        if problem:
            raise FtcoreError(problem.replace("; steer a run while it trains", " before it took the change"))
        time.sleep(WAIT_POLL_SECONDS)
    return None


def ask_text(ask: Ask, state: SteerState | None, running: bool) -> str:
    """"Ask 3, lr 2e-3, output layer 2e-2: applied at epoch 1.44", or what became of it so far."""
    answer = state.answer(ask.seq) if state is not None else None
    if answer is not None:
        said = answer.text()
    elif running:
        said = "waiting for the run's next batch"
    else:
        said = "not applied yet: the run stopped before its next batch, and Resume applies it"
    return f"Ask {ask.seq}, {rates_text(ask.rates)}: {said}"
