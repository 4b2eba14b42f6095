"""A trained model and what it was trained with: what training returns, a checkpoint holds and prediction takes.

Without torch at import (the model's type is only named): the pages and the runs they list hold these before torch
has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import TrainConfig
from ..data.transforms import EvalPreset
from ..records import History
from .weights import WeightsSource

if TYPE_CHECKING:
    from torch import nn


@dataclass
class TrainedModel:
    """A trained model and what it was trained with: what `fit` returns, a checkpoint holds and prediction takes
    (evaluation, Grad-CAM and export take its parts)."""

    model: nn.Module  # the target model (never the DataParallel wrapper), in eval mode; never changed after
    config: TrainConfig  # the run's settings, which rebuild the architecture and re-run it
    classes: list[str]  # output i is classes[i]
    history: History  # everything measured while it trained
    weights: WeightsSource  # where its starting weights came from
    eval_transform: EvalPreset  # the test transform it was measured with, which every prediction repeats

    @property
    def arch(self) -> str:
        """The architecture's registry name (archs.ARCHITECTURES)."""
        return self.config.arch
