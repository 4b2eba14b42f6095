"""The optimiser's parameter groups, by name: the book's two (copied layers, output layer) or one for every layer.
`optim` builds them and `steering` changes their rates; without torch, so that the pages can name them."""

from __future__ import annotations

from enum import StrEnum


class ParamGroup(StrEnum):
    """The name an SGD parameter group carries."""

    COPIED = "copied layers"  # every layer but the new output layer (the pretrained ones when fine-tuning)
    OUTPUT = "output layer"  # the new output layer, at a multiple of the copied layers' rate
    ALL = "all layers"  # one group for every layer: the book without parameter groups
