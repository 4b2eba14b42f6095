"""Experiments: the book's comparisons as series of configs, fine-tune vs scratch and the learning-rate sweep, and
the lessons' side by side. `ftcore.runs.series` trains a series in the background."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..config import TrainConfig, recipe
from ..errors import FtcoreError
from .lesson import LESSONS

KINDS = {"sweep": "learning-rate sweep", "compare": "fine-tune vs scratch",
         "lesson": "the lesson in a minute: fine-tune vs scratch", "lesson-lr": "the lesson in a minute: three rates",
         "lesson-groups": "the lesson in a minute: the output layer's 10x on and off"}
# The kinds whose runs train side by side (started together), not one after another: the lessons.
SIDE_BY_SIDE = tuple(LESSONS)
# The lrs the app offers for a sweep: the book's 5e-5 and a decade each side of it, up to where it breaks.
DEFAULT_SWEEP_LRS = (1e-5, 5e-5, 5e-4, 5e-3)


def parse_lrs(text: str) -> list[float]:
    """`1e-5,5e-5,5e-4` as positive floats, in the order given; one clear error for anything else."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise FtcoreError(f"learning rate {part!r} is not a number; give a comma-separated list such as "
                              "1e-5,5e-5,5e-4") from None
        if not value > 0:
            raise FtcoreError(f"learning rate {part} must be positive; give a list such as 1e-5,5e-5,5e-4")
        values.append(value)
    if not values:
        raise FtcoreError("no learning rates given; give a list such as 1e-5,5e-5,5e-4")
    return values


def lr_sweep_configs(base: TrainConfig, lrs: Sequence[float]) -> list[TrainConfig]:
    """`base` once per learning rate, every other setting (seed included) the same."""
    if not lrs:
        raise FtcoreError("an lr sweep needs at least one learning rate")
    configs = [dataclasses.replace(base, lr=float(lr)) for lr in lrs]
    for config in configs:
        config.validate()
    return configs


def finetune_vs_scratch_configs(base: TrainConfig) -> list[TrainConfig]:
    """The book's two recipes (each with its own lr and parameter groups) sharing `base`'s other settings.

    The exercises (frozen body, ImageNet head init) apply to the fine-tune run only: scratch has no copied layers."""
    shared = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)
              if f.name not in ("mode", "lr", "param_groups", "freeze_body", "head_init")}
    configs = [recipe("finetune", freeze_body=base.freeze_body, head_init=base.head_init, **shared),
               recipe("scratch", **shared)]
    for config in configs:
        config.validate()
    return configs
