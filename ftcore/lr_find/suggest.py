"""Suggestion rules: which learning rate a range test's smoothed curve points at, and why.

fastai's four rules (its `SuggestionMethod`) and one more, each a pure function of the curve:

- valley: the longest stretch over which the loss keeps falling, and a point a little past its middle
  (fastai's default since its PR #3377, after ESRI's suggester);
- steep: the point where the loss falls fastest per decade of lr;
- minimum: a tenth of the lr at the lowest loss (Smith's advice; this lab's rule before issue 21);
- slide: walking down from the end of the curve, the first lr where the loss's slope stops changing (Novetta's
  interval slide rule);
- edge: the largest lr before the loss climbs from its lowest, which is where Smith's range test puts the upper
  bound of a usable rate.

Every rule gets the same guards. A curve that rose from its first steps, one that neither fell nor diverged,
or one with too few steps gives no suggestion, and the caller keeps its default rate. A curve that diverged
without first falling clearly gives the four fall-reading rules nothing, but still has an edge. A rule whose
pick lies where the curve had barely begun to fall is raised to where the fall begins, because the curve itself
shows a smaller rate to be slow.

A range test reads how large one step may be, not how far a whole run must go, so `for_the_run` raises the pick
for the run it is for. A run of few optimiser steps (a small dataset, or few epochs) trains best above it: by
sqrt(LONG_RUN_STEPS / steps), at most half a decade, and never past the rates the test tried. The output layer
trained alone on cached features is softmax regression: its loss climbs from over-confident answers well before
its accuracy falls, so its curve's edge sits about half a decade below the rates that train it best, and its pick
is raised by OUTPUT_LAYER_LIFT as well, bounded by the run's length alone (the test's last rate is where the
loss, not the accuracy, gave out).

Which rule the lab uses (`DEFAULT_RULE`) and both lifts were chosen by training at the suggestions, and checked
on fresh seeds (docs/benchmarks.md, "The learning-rate finder").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Rule(StrEnum):
    """A suggestion rule: fastai's four by their names, and the edge."""

    VALLEY = "valley"
    STEEP = "steep"
    MINIMUM = "minimum"
    SLIDE = "slide"
    EDGE = "edge"


MINIMUM_FRACTION = 0.1  # the minimum rule: this fraction of the lr at the lowest smoothed loss
CLEAR_FALL = 0.1  # a curve gives an answer only if its smoothed loss falls by this share of where it started
SLOW_FALL = 0.1  # below the lr where the loss has made this share of its fall, the curve shows training is slow
EDGE_MARGIN = 0.1  # the edge rule: the loss has climbed once it is this share above its lowest
SLIDE_SPAN = 15  # the slide rule compares slopes this many steps apart (fastai's lr_diff)
SLIDE_THRESHOLD = 0.005  # ...and stops where they differ by no more than this, in loss per step (fastai's thresh)
LONG_RUN_STEPS = 300  # a run of fewer optimiser steps than this trains best above the curve's pick (for_the_run)
MAX_LIFT = 10 ** 0.5  # ...raised by sqrt(LONG_RUN_STEPS / steps), at most half a decade
OUTPUT_LAYER_LIFT = 10 ** 0.5  # an output layer trained alone: its pick raised by this too (half a decade)


@dataclass(frozen=True)
class Pick:
    """Where a rule points on the curve."""

    lr: float
    why: str  # what the rule found on this curve, as a clause ("the loss was lowest at 2.1e-04")


def valley(lrs: np.ndarray, losses: np.ndarray) -> Pick:
    """The longest run of ever lower losses (a decreasing subsequence), and the point half-way along it."""
    n = len(losses)
    longest = np.ones(n, dtype=int)  # longest decreasing subsequence ending at each point
    for i in range(1, n):
        earlier = longest[:i][losses[:i] > losses[i]]
        if len(earlier):
            longest[i] = earlier.max() + 1
    end = int(np.argmax(longest))
    start = max(0, end - int(longest[end]))
    third = (end - start) / 3
    index = min(n - 1, start + int(third) + int(third / 2))
    return Pick(float(lrs[index]), f"the loss kept falling from {lrs[start]:.1e} to {lrs[end]:.1e}")


def steep(lrs: np.ndarray, losses: np.ndarray) -> Pick:
    """The point where the loss falls fastest per decade of lr."""
    slopes = np.diff(losses) / np.diff(np.log10(lrs))
    index = int(np.argmin(slopes))
    return Pick(float(lrs[index]), f"{-slopes[index]:.2f} per decade of lr at {lrs[index]:.1e}")


def minimum(lrs: np.ndarray, losses: np.ndarray) -> Pick:
    """A tenth of the lr at the lowest loss: one decade back from the edge of divergence."""
    index = int(np.argmin(losses))
    return Pick(float(lrs[index]) * MINIMUM_FRACTION, f"the loss was lowest at {lrs[index]:.1e}")


def edge(lrs: np.ndarray, losses: np.ndarray) -> Pick:
    """The largest lr at which the loss is still within EDGE_MARGIN of its lowest: the edge past which steps are
    too large, read where the climb begins for good rather than at the noisiest point of a flat bottom (a bump
    that falls back does not end it)."""
    near_lowest = np.nonzero(losses <= (1 + EDGE_MARGIN) * losses.min())[0]
    index = int(near_lowest[-1])
    return Pick(float(lrs[index]), f"the loss is still within {EDGE_MARGIN:.0%} of its lowest at {lrs[index]:.1e} "
                "and climbs for good after it")


def slide(lrs: np.ndarray, losses: np.ndarray) -> Pick:
    """From the end, slide a window of SLIDE_SPAN steps left until the slopes at its two ends agree."""
    slopes = np.gradient(losses)
    right = len(losses) - 1
    left = right - SLIDE_SPAN
    chosen = max(left, 0)
    while left >= 0 and abs(slopes[right] - slopes[left]) > SLIDE_THRESHOLD:
        chosen = left
        right, left = right - 1, left - 1
    return Pick(float(lrs[chosen]), f"the slopes {SLIDE_SPAN} steps apart agree from {lrs[chosen]:.1e} down")


@dataclass(frozen=True)
class RuleInfo:
    """One rule: how it picks, and what it does in a few words."""

    pick: Callable[[np.ndarray, np.ndarray], Pick]
    describes: str
    reads_fall: bool = True  # it reads where the loss falls, so a curve that never clearly fell gives it nothing


RULES: dict[Rule, RuleInfo] = {
    Rule.VALLEY: RuleInfo(valley, "half-way along the longest fall of the loss (fastai's default)"),
    Rule.STEEP: RuleInfo(steep, "where the loss falls fastest"),
    Rule.MINIMUM: RuleInfo(minimum, "a tenth of the lr at the lowest loss"),
    Rule.SLIDE: RuleInfo(slide, "where the loss's slope settles, sliding down from the end (fastai's slide)"),
    Rule.EDGE: RuleInfo(edge, "the largest lr before the loss climbs from its lowest (Smith's upper bound)",
                        reads_fall=False),
}
DEFAULT_RULE = Rule.EDGE  # chosen by training at each rule's suggestions (docs/benchmarks.md)
CHOSEN_BECAUSE = ("its suggestions trained best of the five rules on three datasets and three recipes "
                  "(docs/benchmarks.md)")


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer on one curve: the rate, or None and why the curve gives no clear answer."""

    rule: Rule
    lr: float | None  # None: the curve gives no clear answer; keep the default rate
    reason: str  # what the rule found on this curve, or why there is no suggestion
    minimum_lr: float | None = None  # the lr at the lowest smoothed loss


def fall_of(smoothed: Sequence[float]) -> float:
    """How far the smoothed loss fell from its first value to its lowest, as a share of the first."""
    return 1 - min(smoothed) / smoothed[0]


def unclear(lrs: Sequence[float], smoothed: Sequence[float], half_window: int, start_lr: float, diverged: bool,
            rule: Rule = DEFAULT_RULE) -> str:
    """Why the curve gives `rule` no clear answer (empty when it does)."""
    start_lower = f"start the finder lower than {start_lr:.0e}"
    if len(smoothed) <= 2 * half_window + 1:
        return (f"the loss rose from the first steps, so every rate tried was too large; {start_lower}" if diverged
                else "too few steps ran to read the curve; give it more steps")
    lowest = int(np.argmin(smoothed))
    fell = fall_of(smoothed)
    if lowest <= half_window and (diverged or fell < CLEAR_FALL) and smoothed[-1] > smoothed[lowest]:
        return (f"the loss rose from the first steps, so every rate tried was too large; {start_lower}" if diverged
                else f"the loss never fell and only rose, so the curve gives no clear answer; {start_lower}")
    if fell < CLEAR_FALL and not diverged:
        return (f"the loss never clearly fell (by {max(fell, 0):.0%} at most, under {CLEAR_FALL:.0%}) nor diverged, "
                "so the curve gives no clear answer; try more steps or a wider range")
    if fell < CLEAR_FALL and RULES[rule].reads_fall:
        return (f"the loss never clearly fell (by {max(fell, 0):.0%} at most, under {CLEAR_FALL:.0%}) before it "
                f"diverged, and the {rule.value} rule reads the fall, so it gives no clear answer")
    return ""


def falling_from(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The lr at which the smoothed loss has made SLOW_FALL of its fall from the start to its lowest point: below
    it, the curve shows training barely moving."""
    values = np.asarray(smoothed)
    lowest = int(np.argmin(values))
    threshold = values[0] - SLOW_FALL * (values[0] - values[lowest])
    index = int(np.argmax(values[: lowest + 1] <= threshold))
    return float(lrs[index])


def suggest(lrs: Sequence[float], smoothed: Sequence[float], half_window: int, start_lr: float,
            diverged: bool = False, rule: Rule = DEFAULT_RULE) -> Suggestion:
    """`rule`'s suggestion on a smoothed range-test curve, with the guards every rule shares."""
    rule = Rule(rule)
    problem = unclear(lrs, smoothed, half_window, start_lr, diverged, rule)
    minimum_lr = float(lrs[int(np.argmin(smoothed))]) if len(smoothed) else None
    if problem:
        return Suggestion(rule, None, problem, minimum_lr)
    # the first half-window averages fewer steps than the rest: fastai skips its curve's first points too
    curve_lrs, curve = np.asarray(lrs[half_window:], dtype=float), np.asarray(smoothed[half_window:], dtype=float)
    pick = RULES[rule].pick(curve_lrs, curve)
    lr, why = pick.lr, pick.why
    slow = falling_from(lrs, smoothed)
    if lr < slow and fall_of(smoothed) >= CLEAR_FALL:
        lr, why = slow, f"{why}; raised to {slow:.1e}, since below it the loss had barely begun to fall"
    return Suggestion(rule, lr, why, minimum_lr)


@dataclass(frozen=True)
class Lift:
    """How a suggestion was raised for its run: by `factor` (1: not raised), and why."""

    lr: float
    factor: float
    why: str  # empty when not raised


def for_the_run(lr: float, run_steps: int, lrs: Sequence[float], output_layer_only: bool = False) -> Lift:
    """`lr` raised for the run it is for: by OUTPUT_LAYER_LIFT for an output layer trained alone, and for a run of
    fewer than LONG_RUN_STEPS optimiser steps by sqrt(LONG_RUN_STEPS / run_steps), at most MAX_LIFT; a whole
    network's pick never past the largest rate the test tried. 0 steps: the length is unknown."""
    factor, reasons = 1.0, []
    if output_layer_only:
        factor *= OUTPUT_LAYER_LIFT
        reasons.append("the output layer alone trains best above where its loss turns (over-confident answers "
                       "raise the loss before they cost accuracy)")
    if 0 < run_steps < LONG_RUN_STEPS:
        factor *= min(MAX_LIFT, (LONG_RUN_STEPS / run_steps) ** 0.5)
        reasons.append(f"this run takes only {run_steps} optimiser steps (fewer than {LONG_RUN_STEPS}) and short "
                       "runs train best above it")
    if not output_layer_only:  # the climb is every earlier step's instability added up: the last rate is the bound
        factor = min(factor, lrs[-1] / lr)
    if factor <= 1.0:
        return Lift(lr, 1.0, "")
    return Lift(lr * factor, factor, f"raised {factor:.1f}x to {lr * factor:.1e}, since {' and '.join(reasons)}")


def suggest_all(lrs: Sequence[float], smoothed: Sequence[float], half_window: int, start_lr: float,
                diverged: bool = False) -> dict[str, float | None]:
    """Every rule's suggestion on the same curve, by rule name (None where the curve gives no clear answer)."""
    return {rule.value: suggest(lrs, smoothed, half_window, start_lr, diverged, rule).lr for rule in Rule}
