"""One split of a dataset folder, served as torchvision's ImageFolder serves it: its photos through the one safe
decoder, cut to a number per class where asked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..errors import FtcoreError
from .images import jpeg_thumbnail, open_image
from .photo_check import BROKEN_PHOTO_ADVICE
from .splits import ROLES, DatasetSplits, resolve_splits

SPLITS = ROLES  # train, val, test: every split a dataset folder may have


def load_rgb(path: str) -> Image.Image:
    """ImageFolder's loader, through the same decoder as uploads; a broken file raises an error naming it."""
    return open_image(path, advice=BROKEN_PHOTO_ADVICE)


class PhotoSplit:
    """The photos of one role (train, val or test) as ImageFolder serves them: (transform(photo), class index),
    with `classes`, `samples` and `targets` as ImageFolder has them, decoded by load_rgb. A map-style dataset
    (`__len__` and `__getitem__`, all a DataLoader needs), so that listing a dataset imports no torch."""

    def __init__(self, splits: DatasetSplits, role: str, transform: Callable | None = None):
        if role not in splits.samples:
            raise FtcoreError(f"data folder {splits.root} has no {role} split (layout {splits.layout}); choose "
                              f"one of {', '.join(splits.roles)}")
        self.root, self.role, self.transform, self.loader = splits.root, role, transform, load_rgb
        self.classes = list(splits.classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = list(splits.samples[role])
        self.imgs = self.samples
        self.targets = [target for _, target in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple:
        path, target = self.samples[index]
        image = self.loader(path)
        return (self.transform(image) if self.transform is not None else image), target


def check_image_folder(root: str | Path, val_fraction: float | None = None, split_seed: int = 0) -> list[str]:
    """Check that `root` is a dataset in one of the layouts (splits.LAYOUTS) with usable splits; return its classes."""
    return resolve_splits(root, val_fraction, split_seed).classes


def is_image_folder(root: str | Path) -> bool:
    """True when `root` is a dataset in any layout that passes `check_image_folder`."""
    try:
        check_image_folder(root)
    except FtcoreError:
        return False
    return True


def limit_per_class(dataset, limit: int | None):
    """Keep the first `limit` images of each class (in ImageFolder's sorted order), in place."""
    if limit is None:
        return dataset
    if limit < 1:
        raise FtcoreError(f"--limit must be at least 1 (got {limit})")
    seen: Counter = Counter()
    kept = []
    for path, target in dataset.samples:
        if seen[target] < limit:
            kept.append((path, target))
            seen[target] += 1
    dataset.samples = dataset.imgs = kept
    dataset.targets = [t for _, t in kept]
    return dataset


def split_photos(splits: DatasetSplits, role: str, transform: Callable | None = None,
                 limit: int | None = None) -> PhotoSplit:
    """The photos of one role of resolved splits, optionally cut to `limit` per class."""
    return limit_per_class(PhotoSplit(splits, role, transform), limit)


def open_split(root: str | Path, split: str, transform: Callable | None = None, limit: int | None = None,
               val_fraction: float | None = None, split_seed: int = 0) -> PhotoSplit:
    """The photos of one split (`train`, `val` or `test`) of a dataset folder, optionally cut to `limit` per class."""
    return split_photos(resolve_splits(root, val_fraction, split_seed), split, transform, limit)


def thumbnail_bytes(path: str | Path, size: int = 160) -> bytes:
    """A JPEG thumbnail (longest side `size`) of one dataset photo."""
    return jpeg_thumbnail(load_rgb(str(path)), size)
