"""Steering a run while it trains: the learning rate of the copied layers, the output layer's factor, freezing the
copied layers, changed between two batches and kept in the run's record.

A change is asked for as the rates wanted from now on (`Rates`); `wanted_rates` turns what a person asks (a new
rate, 10x on or off, freeze or unfreeze) into them, one rule for the command line and the page. The loop asks its
`SteeringSource` once before every batch (the run's folder, or a replay of another run's record) and, where the
rates wanted differ from those in force, applies them (`set_rates`) and sends a `Steered` event with where it
happened. SGD without momentum keeps no state, so a change takes effect exactly at the next step.

Without torch: the pages describe a run's changes and work out what a button asks before torch has loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..config import MAX_STEER_LR, TrainConfig, lr_words
from ..errors import FtcoreError
from ..records import SteerRecord
from .groups import ParamGroup

if TYPE_CHECKING:
    import torch

SAME_POINT = 1e-9  # two fractional epochs this close are the same point between two batches


@dataclass(frozen=True)
class Rates:
    """The learning rates a run trains at: the copied layers' (0 while frozen) and the output layer's."""

    lr: float
    head_lr: float

    @classmethod
    def of(cls, record: SteerRecord) -> Rates:
        """The rates a change set."""
        return cls(lr=record.lr, head_lr=record.head_lr)


class SteeringSource(Protocol):
    """Where a run's changes come from, asked once before every batch of its full epochs."""

    def poll(self, position: float, now: Rates) -> Rates | None:
        """The rates wanted from the batch that starts at `position` (in epochs) on, where they differ from those in
        force `now`; None: nothing new."""
        ...

    def applied(self, record: SteerRecord) -> None:
        """The run applied a wish: where, and the rates from there on."""
        ...


def describe(record: SteerRecord) -> str:
    """"at epoch 1.44: lr 2e-3, output layer 2e-2", as the command line and the captions say it."""
    return f"at epoch {record.epoch:.2f}: {rates_text(Rates.of(record))}"


def changes_text(records: Sequence[SteerRecord]) -> str:
    """"at epoch 1.44: lr 2e-3, output layer 2e-2; at epoch 2.10: ...", every change of a run in order."""
    return "; ".join(describe(record) for record in records)


def rates_text(rates: Rates) -> str:
    """"lr 2e-3, output layer 2e-2", or "copied layers frozen, output layer 2e-2"."""
    copied = f"lr {lr_words(rates.lr)}" if rates.lr > 0 else "copied layers frozen"
    return f"{copied}, output layer {lr_words(rates.head_lr)}"


def starting_rates(config: TrainConfig) -> Rates:
    """The rates a run of `config` starts at (the copied layers at 0 where the book's exercise freezes them)."""
    return Rates(lr=0.0 if config.freeze_body else config.lr, head_lr=config.head_lr)


def refusal(config: TrainConfig, rates: Rates) -> str | None:
    """Why a run of `config` cannot train at `rates` from its next batch, in words (None when it can): a rate that
    is not a finite number, below 0 (the copied layers' 0 is frozen; the output layer's must be above it), above
    MAX_STEER_LR, or copied layers that the run froze from its start set learning again. The run itself checks
    every ask with it, whoever wrote it."""
    for name, rate, least in (("copied layers'", rates.lr, 0.0), ("output layer's", rates.head_lr, None)):
        if not math.isfinite(rate):
            return f"the {name} learning rate {rate} is not a finite number"
        if rate < 0 or (least is None and rate == 0):
            return f"the {name} learning rate {rate:g} is not above 0"
        if rate > MAX_STEER_LR:
            return f"the {name} learning rate {rate:g} is above {MAX_STEER_LR:g}, the most a run takes"
    if config.freeze_body and rates.lr > 0:
        return "this run froze its copied layers from its start (the book's exercise), so their rate stays 0"
    return None


def wanted_rates(config: TrainConfig, now: Rates, unfrozen_lr: float, lr: float | None = None,
                 head_factor: float | None = None, freeze: bool | None = None) -> Rates:
    """The rates a person's ask comes to, from the rates in force `now`: a new rate for the copied layers, the output
    layer at `head_factor` times it (1: one rate for every layer), the copied layers frozen (rate 0) or unfrozen
    (back to `unfrozen_lr`, their rate before). What is not asked stays; FtcoreError for what cannot be."""
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise FtcoreError(f"the learning rate must be a number above 0 (got {lr}); e.g. 2e-3")
    if head_factor is not None and not (math.isfinite(head_factor) and head_factor > 0):
        raise FtcoreError(f"the output layer's factor must be a number above 0 (got {head_factor}); e.g. 10, or 1 "
                          "for one rate for every layer")
    if config.freeze_body and (freeze is False or lr is not None):
        raise FtcoreError("this run froze its copied layers from its start (the book's exercise), so their rate "
                          "stays 0; change the output layer's factor instead")
    if not config.epochs:
        raise FtcoreError("this run trains the output layer alone on cached features, in seconds, so there is "
                          "nothing to steer; steer a run with epochs of every layer")
    frozen = now.lr == 0 if freeze is None else freeze
    base = copied_rate(now, unfrozen_lr, lr)
    factor = head_factor if head_factor is not None else now.head_lr / (now.lr if now.lr > 0 else unfrozen_lr)
    wanted = Rates(lr=0.0 if frozen else base, head_lr=written(base * factor))
    problem = refusal(config, wanted)
    if problem:
        raise FtcoreError(f"{problem}; ask for a rate from 0 to {MAX_STEER_LR:g}, e.g. 2e-3")
    return wanted


def copied_rate(now: Rates, unfrozen_lr: float, lr: float | None = None) -> float:
    """The copied layers' rate after an ask, frozen or not: `lr` where one is asked for, else their rate now (the
    rate before they were frozen, while they are); what unfreezing goes back to."""
    return written(lr) if lr is not None else (unfrozen_lr if now.lr == 0 else now.lr)


def written(rate: float) -> float:
    """A rate without the float noise of a product (1.5e-4, not 1.5000000000000001e-4): as a person writes it, so
    that asking again for the rates in force is seen as no change."""
    return float(f"{rate:.12g}")


def current_rates(optimizer: torch.optim.Optimizer) -> Rates:
    """The rates the optimiser's groups train at (the copied layers at 0 where they have no group: frozen)."""
    groups = {group.get("name"): group for group in optimizer.param_groups}
    if ParamGroup.ALL in groups:
        return Rates(lr=groups[ParamGroup.ALL]["lr"], head_lr=groups[ParamGroup.ALL]["lr"])
    copied = groups[ParamGroup.COPIED]["lr"] if ParamGroup.COPIED in groups else 0.0
    return Rates(lr=copied, head_lr=groups[ParamGroup.OUTPUT]["lr"])


def split_groups(optimizer: torch.optim.Optimizer, output_parameters: Iterable[torch.nn.Parameter]) -> None:
    """One group for every layer (the book without parameter groups) made two, copied layers then output layer, as
    the book's groups are, both at its rate; nothing to do where they are two already."""
    whole = next((group for group in optimizer.param_groups if group.get("name") == ParamGroup.ALL), None)
    if whole is None:
        return
    output = {id(p) for p in output_parameters}
    head = [p for p in whole["params"] if id(p) in output]
    whole["params"] = [p for p in whole["params"] if id(p) not in output]
    whole["name"] = ParamGroup.COPIED.value
    optimizer.add_param_group({"name": ParamGroup.OUTPUT.value, "params": head, "lr": whole["lr"]})


def set_rates(optimizer: torch.optim.Optimizer, output_parameters: Iterable[torch.nn.Parameter],
              rates: Rates) -> None:
    """Train the copied layers at `rates.lr` and the output layer at `rates.head_lr` from the next step on: one group
    for every layer is split in two the first time they differ (and stays two); where the copied layers have no
    group (frozen from the start), only the output layer's rate changes."""
    if rates.lr != rates.head_lr:
        split_groups(optimizer, output_parameters)
    groups = {group.get("name"): group for group in optimizer.param_groups}
    if ParamGroup.ALL in groups:
        groups[ParamGroup.ALL]["lr"] = rates.lr
        return
    if ParamGroup.COPIED in groups:
        groups[ParamGroup.COPIED]["lr"] = rates.lr
    groups[ParamGroup.OUTPUT]["lr"] = rates.head_lr


class Replay:
    """Another run's changes, applied at the same points: the record of a steered run, replayed."""

    def __init__(self, records: Sequence[SteerRecord]) -> None:
        self.records = sorted(records, key=lambda r: r.epoch)

    def poll(self, position: float, now: Rates) -> Rates | None:
        """The rates of the record made at `position`, if one was."""
        due = [r for r in self.records if abs(r.epoch - position) < SAME_POINT]
        return Rates.of(due[-1]) if due else None

    def missed(self, history: Sequence[SteerRecord], trained_to: float) -> list[SteerRecord]:
        """The records before `trained_to` (in epochs) that the run's `history` of changes lacks: made where no batch
        of this run starts (on another batch size, photos or recipe), they cannot be replayed here."""
        return [r for r in self.records if r.epoch < trained_to
                and not any(abs(r.epoch - h.epoch) < SAME_POINT for h in history)]

    def applied(self, record: SteerRecord) -> None:
        """Nothing to acknowledge: the record is the replay's own."""


def read_steering(path: str | Path) -> list[SteerRecord]:
    """The changes of a steered run: from its metrics.json (`history.steering`), or a JSON list of records with
    `epoch`, `lr` and `head_lr`; FtcoreError naming the file for anything else."""
    path = Path(path).expanduser()
    try:
        data: Any = json.loads(path.read_text())
    except OSError as e:
        raise FtcoreError(f"steering file {path} cannot be read ({e.strerror or e}); give a run's metrics.json or "
                          "a JSON list of changes") from None
    except ValueError:
        raise FtcoreError(f"steering file {path} is not JSON; give a run's metrics.json or a JSON list of changes") \
            from None
    records = data.get("history", {}).get("steering") if isinstance(data, dict) else data
    try:
        changes = [SteerRecord(epoch=float(r["epoch"]), lr=float(r["lr"]), head_lr=float(r["head_lr"]))
                   for r in records]
    except (TypeError, KeyError, ValueError):
        raise FtcoreError(f"steering file {path} holds no list of changes (each with epoch, lr and head_lr); give "
                          "a run's metrics.json") from None
    for change in changes:
        if not (all(math.isfinite(x) for x in (change.epoch, change.lr, change.head_lr)) and change.epoch >= 0
                and change.lr >= 0 and change.head_lr > 0):
            raise FtcoreError(f"steering file {path} holds a change that cannot be ({describe(change)}): an epoch "
                              "from 0, a rate of the copied layers from 0 (frozen) and of the output layer above 0")
    return changes
