"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's `lr_find`) on a run's own recipe.

The learning rate rises exponentially, one optimiser step at a time, from `start_lr` to `end_lr` over `steps`
steps of the run's training photos, with everything else as the run would train: architecture and mode, parameter
groups (the output layer keeps its multiple), loss reduction, batch, micro-batches, precision and device. The
loss of each step is recorded per photo (with the summed loss that is the sum over the batch divided by its
size, so sum and mean plot on one scale), then smoothed. The test ends early once the smoothed loss clearly
diverges.

The suggestion comes from one of five rules (`lr_rules`: fastai's four and the edge, the lab's default, chosen by
measurement), read off the smoothed curve, then raised for the run it is for (`lr_rules.for_the_run`: a short
run, or the output layer alone); it is in the run's own units: the lr of every layer but the output layer, for the
run's loss reduction. The finding keeps every rule's answer beside it.

The test ends early by a stop rule (`StopRule`): fastai's ends once the averaged loss passes 4x its lowest value;
this lab's default also waits until it is back above where it started, since a fine-tuning curve can fall so low
that 4x its lowest is still below where it began (on every curve measured so far both ended at the same step).

Recipes that train the output layer alone (the quick and best presets) get the same test over that layer on the
features the frozen copied layers compute once per photo, as their training does: it takes seconds.

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
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .devices import resolve_devices, resolve_precision
from .errors import FtcoreError
from .features import extract_features, feature_batch_size
from .lr_rules import CHOSEN_BECAUSE, DEFAULT_RULE, RULES, Rule, for_the_run, suggest, suggest_all
from .models import output_layer
from .records import LrStep
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

DIVERGE_FACTOR = 4.0  # the test ends once the averaged loss exceeds this multiple of its lowest value so far
CURVE_FORMATS = (".csv", ".json")


class StopRule(StrEnum):
    """When the range test ends early, besides a NaN or infinite loss."""

    LOWEST = "lowest"  # fastai's: the averaged loss passes DIVERGE_FACTOR x its lowest so far
    START = "start"  # that, and the averaged loss back above its first value


STOP_RULE_TEXT = {StopRule.LOWEST: f"the averaged loss passed {DIVERGE_FACTOR:g}x its lowest",
                  StopRule.START: f"the averaged loss passed {DIVERGE_FACTOR:g}x its lowest and where it started"}


@dataclass
class FinderSettings:
    """How the range test sweeps; the run's recipe comes from its TrainConfig."""

    steps: int = 100  # optimiser steps; the lr rises exponentially over them (fewer if the loss diverges first)
    start_lr: float = 1e-7  # lr of the first step (of every layer but the output layer, as TrainConfig.lr)
    end_lr: float = 1.0  # lr the last step would reach
    smoothing: int = 0  # half-width in steps of the moving average over the loss; 0 = steps // 25, at least 1
    rule: str = DEFAULT_RULE.value  # how the suggestion is read off the curve (lr_rules.Rule)
    stop_rule: str = StopRule.START.value  # when the test ends early (StopRule)

    def validate(self) -> None:
        """Raise FtcoreError naming the first setting that cannot work."""
        if self.rule not in list(Rule):
            raise FtcoreError(f"unknown suggestion rule {self.rule!r}; choose one of {', '.join(Rule)}")
        if self.stop_rule not in list(StopRule):
            raise FtcoreError(f"unknown stop rule {self.stop_rule!r}; choose one of {', '.join(StopRule)}")
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
class LrFinding:
    """The range test's curve and its suggestion."""

    lrs: list[float] = field(default_factory=list)  # lr of every step taken (of all but the output layer)
    losses: list[float] = field(default_factory=list)  # loss per photo at each step
    smoothed: list[float] = field(default_factory=list)  # the losses' centred moving average
    suggestion: float | None = None  # the rule's pick on the smoothed curve; None where it gives no clear answer
    minimum_lr: float | None = None  # the lr at the smoothed loss's minimum
    note: str = ""  # why there is no suggestion, or what to know about it
    rule: str = DEFAULT_RULE.value  # the rule that chose the suggestion (lr_rules.Rule)
    reason: str = ""  # how the rule chose on this curve, one clause
    suggestions: dict[str, float | None] = field(default_factory=dict)  # every rule's answer on the same curve
    run_steps: int = 0  # optimiser steps of the run the finding is for (0: unknown, the suggestion is not lifted)
    lift: float = 1.0  # how much the rule's pick was raised for its run (lr_rules.for_the_run)
    stop_rule: str = StopRule.START.value
    output_layer_only: bool = False  # the test stepped the output layer alone, on cached features
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
        """Three rates for an lr sweep around the suggestion: half a decade below it, it, and half a decade above
        (two significant digits); none without a suggestion."""
        if self.suggestion is None:
            return []
        return [two_digits(self.suggestion * 10 ** k) for k in (-0.5, 0, 0.5)]

    def summary(self) -> str:
        """One line: the suggestion (or why there is none) and how the test went."""
        ran = f"{len(self.lrs)} of {self.steps} steps, {self.seconds:.0f} s"
        if self.suggestion is None:
            return f"no suggestion ({ran}): {self.note}"
        return f"suggested lr: {self.suggestion:.2g} ({ran}; lowest loss at lr {self.minimum_lr:.2g})" + \
            (f"; {self.note}" if self.note else "")

    def why(self) -> str:
        """One line: which rule chose the suggestion, how, and why that rule."""
        because = f"; the lab uses it because {CHOSEN_BECAUSE}" if self.rule == DEFAULT_RULE else ""
        return f"Chosen by the {self.rule} rule, {RULES[Rule(self.rule)].describes}: {self.reason}{because}."

    def others(self) -> str:
        """The other rules' answers on the same curve, as "steep 2.1e-04, minimum 3.5e-06"."""
        return ", ".join(f"{rule} {lr:.1e}" if lr else f"{rule} none" for rule, lr in self.suggestions.items()
                         if rule != self.rule)


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


def read_curve(finding: LrFinding, settings: FinderSettings) -> LrFinding:
    """Smooth `finding`'s losses and fill in its suggestion under `settings.rule`, and every rule's answer."""
    half = settings.half_window
    finding.smoothed = smooth(finding.losses, half)
    args = (finding.lrs, finding.smoothed, half, settings.start_lr, finding.diverged)
    chosen = suggest(*args, rule=Rule(settings.rule))
    finding.rule, finding.stop_rule = chosen.rule.value, settings.stop_rule
    finding.suggestion, finding.minimum_lr, finding.lift = chosen.lr, chosen.minimum_lr, 1.0
    finding.reason = chosen.reason if chosen.lr is not None else ""
    if chosen.lr is not None:
        lift = for_the_run(chosen.lr, finding.run_steps, finding.lrs, finding.output_layer_only)
        finding.suggestion, finding.lift = lift.lr, lift.factor
        finding.reason += f"; {lift.why}" if lift.why else ""
    finding.note = "" if chosen.lr is not None else chosen.reason
    finding.suggestions = suggest_all(*args)
    if chosen.lr is not None and finding.lrs.index(chosen.minimum_lr) >= len(finding.lrs) - 1 - half:
        finding.note = "the loss was still falling at the last step; a wider range (higher end lr) may find more"
    return finding


class DivergenceWatch:
    """Fed each step's loss, says when the test should end: a loss that is not finite, or the average of the
    last few losses past `StopRule`'s bound."""

    def __init__(self, rule: StopRule | str, half_window: int) -> None:
        self.rule, self.half = StopRule(rule), half_window
        self.losses: list[float] = []
        self.tail = math.nan  # the average of the last half_window + 1 losses
        self.lowest = math.inf
        self.first = math.nan

    def add(self, loss: float) -> bool:
        """Record a step's loss; True when the test should end here."""
        self.losses.append(loss)
        if not math.isfinite(loss):
            return True
        # the newest point's average over the steps before it: the centred one needs steps not yet taken
        self.tail = float(np.mean(self.losses[-(self.half + 1):]))
        self.lowest = min(self.lowest, self.tail)
        if len(self.losses) == self.half + 1:
            self.first = self.tail
        if len(self.losses) <= 2 * self.half:
            return False
        bound = DIVERGE_FACTOR * self.lowest
        if self.rule == StopRule.START:
            bound = max(bound, self.first)
        return self.tail > bound


def stop_index(losses: list[float], rule: StopRule | str, half_window: int) -> int | None:
    """The step (0-based) at which `rule` would have ended a test with these losses; None if it runs them all."""
    watch = DivergenceWatch(rule, half_window)
    for step, loss in enumerate(losses):
        if watch.add(loss):
            return step
    return None


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
               base_lr: float | None = None, run_steps: int = 0, output_layer_only: bool = False) -> LrFinding:
    """Step `optimizer` over `batches` (cycled) with the lr rising exponentially; return the curve and its
    suggestion. The swept lr stands for `base_lr` (default: the first group's lr), and every parameter group keeps
    its ratio to it (the output layer's 10x, even when it is the only group left); the suggestion is raised for
    the run it is for: `run_steps` long, training `output_layer_only` or every layer. The model, the optimiser
    and the global random generators end as they began (the batches' own shuffling generator moves on)."""
    settings.validate()
    stop = stop or threading.Event()
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_random = random_states()
    base = base_lr or optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    finding = LrFinding(steps=settings.steps, loss_reduction=reduction, run_steps=run_steps,
                        output_layer_only=output_layer_only)
    watch = DivergenceWatch(settings.stop_rule, settings.half_window)
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
            ends = watch.add(loss)
            if callback is not None:
                callback(LrStep(step + 1, settings.steps, lr, loss, watch.tail))
            if ends:
                finding.diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        restore_random_states(saved_random)
    finding.seconds = time.perf_counter() - start
    finite = [(lr, loss) for lr, loss in zip(finding.lrs, finding.losses, strict=True) if math.isfinite(loss)]
    finding.lrs, finding.losses = [lr for lr, _ in finite], [loss for _, loss in finite]
    finding.passes = len(finding.lrs) / max(1, len(batches))
    return read_curve(finding, settings)


LR_SCALE_FIELDS = ("arch", "mode", "loss_reduction", "batch_size", "param_groups", "freeze_body",  # move the lr
                   "epochs", "head_epochs", "limit")  # ...the last three through the run's length


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


def trains_output_layer_only(config: TrainConfig) -> bool:
    """Whether `config` trains the output layer alone on cached features (the quick and best presets), so the
    finder steps that layer alone too."""
    return config.epochs < 1


class FeatureBatches:
    """Cached features and labels in batches, reshuffled by a generator of their own on every pass."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.features, self.labels, self.batch_size = features, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.labels), generator=self.generator).to(self.labels.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.features[idx], self.labels[idx]


def find_output_layer_lr(config: TrainConfig, settings: FinderSettings, device: torch.device,
                         callback: Callable[[LrStep], None] | None = None,
                         stop: threading.Event | None = None) -> LrFinding:
    """The range test over the output layer alone, on the features the frozen copied layers compute once per
    training photo (through the test transform, as the output-layer epochs see them)."""
    data = make_run_data(dataclasses.replace(config, head_views=0), device, feature_batch_size(device),
                         measured=False)
    model, _ = make_model(config, data.splits.classes, device, 1)
    extracted = extract_features(model, config.arch, data.train_plain, device,
                                 resolve_precision(config.precision, device), stop)
    if extracted is None:
        return LrFinding(steps=settings.steps, stopped=True, loss_reduction=config.loss_reduction,
                         output_layer_only=True, note="stopped before the features were computed")
    layer = output_layer(model, config.arch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=config.head_lr, weight_decay=config.weight_decay)
    batches = FeatureBatches(*extracted, config.batch_size, config.seed)
    # as training counts an output-layer epoch: every photo and each of its augmented views
    run_steps = config.head_epochs * math.ceil(len(batches.labels) * (1 + config.head_views) / config.batch_size)
    finding = range_test(layer, optimizer, batches, device, settings, config.loss_reduction, 0, "fp32", callback,
                         stop, base_lr=config.lr, run_steps=run_steps, output_layer_only=True)
    return finding


def find_lr(config: TrainConfig, settings: FinderSettings | None = None,
            callback: Callable[[LrStep], None] | None = None, stop: threading.Event | None = None) -> LrFinding:
    """The range test on `config`'s recipe and training photos, with a model of its own (the random state is left
    as it was): over every trainable layer, or over the output layer alone on cached features where the recipe
    trains only that layer."""
    settings = settings or FinderSettings()
    check_request(config, settings)
    saved_random = random_states()
    try:
        torch.manual_seed(config.seed)
        device = resolve_devices(config.device)[0]
        if trains_output_layer_only(config):
            finding = find_output_layer_lr(config, settings, device, callback, stop)
        else:
            precision = training_precision(config, device)
            micro = micro_batch_size(config, device, precision)
            # the full epochs' training batches only: no held-out photos, no cached-feature views
            data = make_run_data(dataclasses.replace(config, head_epochs=0, head_views=0), device,
                                 config.batch_size, measured=False)
            model, _ = make_model(config, data.splits.classes, device, math.ceil(config.batch_size / micro))
            optimizer = make_optimizer(model, config)
            finding = range_test(model, optimizer, data.train, device, settings, config.loss_reduction, micro,
                                 precision, callback, stop, base_lr=config.lr,
                                 run_steps=config.epochs * len(data.train))
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
