"""What a learning-rate range test is asked and what it finds, without torch: its settings, the curve with its
suggestion, the settings that move the right rate, and the curve's file (written and read here only). The test
itself runs in `range_test`; the Train page draws a finding from here before torch has loaded."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..errors import FtcoreError
from .stop import StopRule
from .suggest import CHOSEN_BECAUSE, DEFAULT_RULE, RULES, Rule, for_the_run, suggest, suggest_all

CURVE_FORMATS = (".csv", ".json")


@dataclass
class FinderSettings:
    """How the range test sweeps; the run's recipe comes from its TrainConfig."""

    steps: int = 100  # optimiser steps; the lr rises exponentially over them (fewer if the loss diverges first)
    start_lr: float = 1e-7  # lr of the first step (of every layer but the output layer, as TrainConfig.lr)
    end_lr: float = 1.0  # lr the last step would reach
    smoothing: int = 0  # half-width in steps of the moving average over the loss; 0 = steps // 25, at least 1
    rule: str = DEFAULT_RULE.value  # how the suggestion is read off the curve (lr_find.suggest.Rule)
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
    rule: str = DEFAULT_RULE.value  # the rule that chose the suggestion (lr_find.suggest.Rule)
    reason: str = ""  # how the rule chose on this curve, one clause
    suggestions: dict[str, float | None] = field(default_factory=dict)  # every rule's answer on the same curve
    run_steps: int = 0  # optimiser steps of the run the finding is for (0: unknown, the suggestion is not lifted)
    lift: float = 1.0  # how much the rule's pick was raised for its run (suggest.for_the_run)
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
