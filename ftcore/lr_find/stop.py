"""When a range test ends early: a loss that is not finite, or the averaged loss past its stop rule's bound."""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np

DIVERGE_FACTOR = 4.0  # the test ends once the averaged loss exceeds this multiple of its lowest value so far


class StopRule(StrEnum):
    """When the range test ends early, besides a NaN or infinite loss."""

    LOWEST = "lowest"  # fastai's: the averaged loss passes DIVERGE_FACTOR x its lowest so far
    START = "start"  # that, and the averaged loss back above its first value


STOP_RULE_TEXT = {StopRule.LOWEST: f"the averaged loss passed {DIVERGE_FACTOR:g}x its lowest",
                  StopRule.START: f"the averaged loss passed {DIVERGE_FACTOR:g}x its lowest and where it started"}


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
