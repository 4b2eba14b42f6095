"""ImageNet's 1000 class names, in output-row order, and the row of a class named like one of them.

Kept beside this module as torchvision lists them, so that naming a class needs no torchvision.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..data.splits import class_key

IMAGENET_CATEGORIES_FILE = Path(__file__).with_name("imagenet_categories.txt")  # torchvision's list, row order


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in output-row order (row 934 is "hotdog"), as torchvision's weights list
    them (kept beside this module, so that naming a class needs no torchvision)."""
    return IMAGENET_CATEGORIES_FILE.read_text(encoding="utf-8").splitlines()


def imagenet_row(name: str) -> int | None:
    """The ImageNet output row of a class named like an ImageNet category, matched as class names are across
    datasets (splits.class_key: case, spaces, '-' and '_' aside; "Hot-Dog" is row 934), else None."""
    return _imagenet_rows().get(class_key(name))


@functools.cache
def _imagenet_rows() -> dict[str, int]:
    return {class_key(category): row for row, category in enumerate(imagenet_categories())}
