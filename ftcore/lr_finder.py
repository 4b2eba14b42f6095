"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's `lr_find`) on a run's own recipe.

The learning rate rises exponentially, one optimiser step at a time, from `start_lr` to `end_lr` over `steps`
steps of the run's training photos, with everything else as the run would train: architecture and mode, parameter
groups (the output layer keeps its multiple), loss reduction, batch, micro-batches, precision and device. The
loss of each step is recorded per photo (with the summed loss that is the sum over the batch divided by its
size, so sum and mean plot on one scale), then smoothed. The test ends early once the smoothed loss clearly
diverges.

The suggestion is one rule: a tenth of the learning rate at which the smoothed loss is lowest. The minimum is
the largest rate that still lowered the loss within a few steps; a whole run at that rate trains on the edge of
divergence, so the rule steps one decade back (Smith's advice, fastai's `lr_min`). It is in the run's own units:
the lr of every layer but the output layer, for the run's loss reduction.

Nothing is left changed: `range_test` restores the model's and the optimiser's state and every random number
generator it touched, and `find_lr` builds a model of its own, so a run trained afterwards is the run trained
without it.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .devices import resolve_devices
from .errors import FtcoreError
from .resume import restore_torch_generators, torch_generators
from .run_data import make_run_data
from .training import (
    TrainConfig,
    make_model,
    make_optimizer,
    micro_batch_size,
    to_device,
    train_step,
    training_precision,
)

DIVERGE_FACTOR = 4.0  # the test ends once the smoothed loss exceeds this multiple of its lowest value so far
SUGGESTION_FRACTION = 0.1  # the suggestion: this fraction of the lr at the smoothed loss's minimum
CURVE_FORMATS = (".csv", ".json")


@dataclass
class FinderSettings:
    """How the range test sweeps; the run's recipe comes from its TrainConfig."""

    steps: int = 100  # optimiser steps; the lr rises exponentially over them (fewer if the loss diverges first)
    start_lr: float = 1e-7  # lr of the first step (of every layer but the output layer, as TrainConfig.lr)
    end_lr: float = 1.0  # lr the last step would reach
    smoothing: int = 0  # half-width in steps of the moving average over the loss; 0 = steps // 25, at least 1

    def validate(self) -> None:
        """Raise FtcoreError naming the first setting that cannot work."""
        if self.steps < 5:
            raise FtcoreError(f"the learning-rate finder needs at least 5 steps (got {self.steps})")
        if not 0 < self.start_lr < self.end_lr:
            raise FtcoreError(f"the finder's start lr must be positive and below its end lr (got {self.start_lr:g} "
                              f"and {self.end_lr:g})")
        if self.smoothing < 0:
            raise FtcoreError(f"the finder's smoothing must be 0 (auto) or more steps (got {self.smoothing})")

    @property
    def half_window(self) -> int:
        """Steps on each side of a point that its smoothed loss averages over."""
        return self.smoothing or max(1, self.steps // 25)

    def lr_at(self, step: int) -> float:
        """The lr of step `step` (0-based): start_lr * (end_lr / start_lr) ** (step / (steps - 1))."""
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / (self.steps - 1))


@dataclass
class LrStep:
    """One step of the range test, as it happens (for progress bars and live charts)."""

    step: int  # 1-based
    steps: int  # planned
    lr: float
    loss: float  # per photo
    smoothed: float


@dataclass
class LrFinding:
    """The range test's curve and its suggestion."""

    lrs: list[float] = field(default_factory=list)  # lr of every step taken (of all but the output layer)
    losses: list[float] = field(default_factory=list)  # loss per photo at each step
    smoothed: list[float] = field(default_factory=list)  # the losses' centred moving average
    suggestion: float | None = None  # SUGGESTION_FRACTION x the lr at the smoothed minimum; None if none found
    minimum_lr: float | None = None  # the lr at the smoothed loss's minimum
    note: str = ""  # why there is no suggestion, or what to know about it
    steps: int = 0  # planned steps
    diverged: bool = False  # ended early because the loss diverged (or became NaN/inf)
    stopped: bool = False  # ended early because it was asked to
    passes: float = 0.0  # passes over the training photos (above 1: a small dataset was cycled)
    seconds: float = 0.0
    loss_reduction: str = "sum"
    batch_size: int = 128
    config: dict = field(default_factory=dict)  # the run's TrainConfig

    def to_dict(self) -> dict:
        """Plain dict (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LrFinding:
        """Rebuild a finding, ignoring keys this version does not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def sweep_lrs(self) -> list[float]:
        """Three rates for an lr sweep from the finder's range: a decade below the suggestion, the suggestion, and
        the lr at the minimum (two significant digits); none without a suggestion."""
        if self.suggestion is None or self.minimum_lr is None:
            return []
        return sorted({two_digits(lr) for lr in (self.suggestion / 10, self.suggestion, self.minimum_lr)})

    def summary(self) -> str:
        """One line: the suggestion (or why there is none) and how the test went."""
        ran = f"{len(self.lrs)} of {self.steps} steps, {self.seconds:.0f} s"
        if self.suggestion is None:
            return f"no suggestion ({ran}): {self.note}"
        return f"suggested lr: {self.suggestion:.2g} ({ran}; lowest loss at lr {self.minimum_lr:.2g})" + \
            (f"; {self.note}" if self.note else "")


def two_digits(lr: float) -> float:
    """A rate rounded to two significant digits, as the finder offers it (1.2e-04)."""
    return float(f"{lr:.1e}")


# --------------------------------------------------------------------------------------------------
# The curve and its suggestion: pure functions of the recorded losses.


def smooth(losses: list[float], half_window: int) -> list[float]:
    """Centred moving average: each point is the mean of the losses up to `half_window` steps either side (fewer
    at the ends), so the curve does not lag behind the lr as an exponential average would."""
    values = np.asarray(losses, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half_window), min(len(values), i + half_window + 1)
        out.append(float((sums[hi] - sums[lo]) / (hi - lo)))
    return out


def suggest(lrs: list[float], smoothed: list[float], half_window: int, start_lr: float,
            diverged: bool = False) -> tuple[float | None, float | None, str]:
    """(suggestion, lr at the minimum, note) from a smoothed curve: SUGGESTION_FRACTION x the lr at its minimum,
    unless the minimum sits within the first smoothing window (the loss rose from the start: no suggestion)."""
    rose_at_once = (f"the loss rose from the first steps, so every rate tried was too large; start the finder "
                    f"lower than {start_lr:.0e}")
    if len(smoothed) <= 2 * half_window + 1:
        return None, None, rose_at_once if diverged else "too few steps ran to find a minimum; give it more steps"
    lowest = int(np.argmin(smoothed))
    if lowest <= half_window:
        return None, lrs[lowest], rose_at_once
    if smoothed[lowest] >= smoothed[0]:
        return None, lrs[lowest], "the loss never fell below where it started; try more steps or a wider range"
    note = ("the loss was still falling at the last step; a wider range (higher end lr) may find a larger rate"
            if lowest >= len(smoothed) - 1 - half_window else "")
    return lrs[lowest] * SUGGESTION_FRACTION, lrs[lowest], note


def diverging(latest: float, lowest: float) -> bool:
    """True once the averaged loss has grown past DIVERGE_FACTOR times its lowest value (or is NaN/inf)."""
    return not math.isfinite(latest) or latest > DIVERGE_FACTOR * lowest


# --------------------------------------------------------------------------------------------------
# The test itself.


def cycle(batches: Iterable) -> Iterator:
    """The batches again and again (a new pass, and shuffle, each time); FtcoreError when there are none."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise FtcoreError("the training split has too few photos for one batch; add photos or lower the batch size")


def random_states() -> dict:
    """Every global random number generator a training step can draw from: PyTorch's (as resume saves them),
    Python's and NumPy's."""
    return {**torch_generators(), "python": random.getstate(), "numpy": np.random.get_state()}


def restore_random_states(states: dict) -> None:
    """Put back what random_states() took."""
    restore_torch_generators(states)
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, device: torch.device,
               settings: FinderSettings, reduction: str = "sum", micro_batch: int = 0, precision: str = "fp32",
               callback: Callable[[LrStep], None] | None = None, stop: threading.Event | None = None,
               base_lr: float | None = None) -> LrFinding:
    """Step `optimizer` over `batches` (cycled) with the lr rising exponentially; return the curve and its
    suggestion. The swept lr stands for `base_lr` (default: the first group's lr), and every parameter group keeps
    its ratio to it (the output layer's 10x, even when it is the only group left). The model, the optimiser and
    the global random generators end as they began (the batches' own shuffling generator moves on)."""
    settings.validate()
    stop = stop or threading.Event()
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_random = random_states()
    base = base_lr or optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    half = settings.half_window
    finding = LrFinding(steps=settings.steps, loss_reduction=reduction)
    lowest = math.inf
    start = time.perf_counter()
    try:
        stream = cycle(batches)
        for step in range(settings.steps):
            if stop.is_set():
                finding.stopped = True
                break
            lr = settings.lr_at(step)
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            X, y = next(stream)
            loss_sum, _ = train_step(model, optimizer, to_device(X, device), y.to(device), reduction, micro_batch,
                                     precision)
            loss = loss_sum / len(y)
            finding.lrs.append(lr)
            finding.losses.append(loss)
            # the newest point's average over the steps before it: the centred one needs steps not yet taken
            tail = float(np.mean(finding.losses[-(half + 1):]))
            lowest = min(lowest, tail)
            if callback is not None:
                callback(LrStep(step + 1, settings.steps, lr, loss, tail))
            if not math.isfinite(loss) or step >= 2 * half and diverging(tail, lowest):
                finding.diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        restore_random_states(saved_random)
    finding.seconds = time.perf_counter() - start
    finite = [(lr, loss) for lr, loss in zip(finding.lrs, finding.losses, strict=True) if math.isfinite(loss)]
    finding.lrs, finding.losses = [lr for lr, _ in finite], [loss for _, loss in finite]
    finding.smoothed = smooth(finding.losses, half)
    finding.suggestion, finding.minimum_lr, finding.note = suggest(finding.lrs, finding.smoothed, half,
                                                                   settings.start_lr, finding.diverged)
    finding.passes = len(finding.lrs) / max(1, len(batches))
    return finding


LR_SCALE_FIELDS = ("arch", "mode", "loss_reduction", "batch_size", "param_groups", "freeze_body")  # move the lr


def recipe_differences(found_on: TrainConfig, other: TrainConfig,
                       names: tuple[str, ...] = LR_SCALE_FIELDS) -> list[str]:
    """The settings, among those that move the right learning rate, in which `other` differs from the recipe a
    finder ran on, as "name found -> other"."""
    return [f"{name.replace('_', ' ')} {getattr(found_on, name)} -> {getattr(other, name)}" for name in names
            if getattr(found_on, name) != getattr(other, name)]


def check_request(config: TrainConfig, settings: FinderSettings) -> None:
    """Raise FtcoreError, naming what to change, when the finder cannot run on `config` with `settings`."""
    config.validate()
    settings.validate()
    if config.epochs < 1:
        raise FtcoreError("the learning-rate finder steps every layer, and this recipe trains the output layer "
                          "alone (epochs 0); set epochs to 1 or more, or use the book preset")


def find_lr(config: TrainConfig, settings: FinderSettings | None = None,
            callback: Callable[[LrStep], None] | None = None, stop: threading.Event | None = None) -> LrFinding:
    """The range test on `config`'s recipe and training photos, with a model of its own (the random state is left
    as it was). The recipe must train every layer (epochs > 0): the test steps the whole network."""
    settings = settings or FinderSettings()
    check_request(config, settings)
    saved_random = random_states()
    try:
        torch.manual_seed(config.seed)
        device = resolve_devices(config.device)[0]
        precision = training_precision(config, device)
        micro = micro_batch_size(config, device, precision)
        # the full epochs' training batches only: no held-out photos, no cached-feature views
        data = make_run_data(dataclasses.replace(config, head_epochs=0, head_views=0), device, config.batch_size,
                             measured=False)
        model, _ = make_model(config, data.splits.classes, device, math.ceil(config.batch_size / micro))
        optimizer = make_optimizer(model, config)
        finding = range_test(model, optimizer, data.train, device, settings, config.loss_reduction, micro,
                             precision, callback, stop, base_lr=config.lr)
    finally:
        restore_random_states(saved_random)
    finding.batch_size = config.batch_size
    finding.config = config.to_dict()
    return finding


def check_curve_path(path: str | Path) -> Path:
    """The curve file's path; FtcoreError unless it ends in .csv or .json."""
    path = Path(path).expanduser()
    if path.suffix not in CURVE_FORMATS:
        raise FtcoreError(f"the curve file must end in .csv or .json (got {path.name})")
    return path


def write_curve(finding: LrFinding, path: str | Path) -> Path:
    """The curve as CSV (lr, loss, smoothed per row) or, for a .json path, the whole finding; returns the path."""
    path = check_curve_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(finding.to_dict(), indent=2))
        return path
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["lr", "loss", "smoothed"])
        writer.writerows(zip(finding.lrs, finding.losses, finding.smoothed, strict=True))
    return path
