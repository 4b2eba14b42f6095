"""The book's transforms: train_augs and test_augs as small preset classes, their 224/256 sizes scaled by the
image size, and one photo through both for the explorer.

torchvision is imported where a transform is built, not with this module: the pages import it before torch has
loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..archs import BOOK_RESIZE_RATIO, IMAGENET_MEAN, IMAGENET_STD, get_arch
from .dataset import load_rgb

if TYPE_CHECKING:
    import torch

def resize_size_for(image_size: int, ratio: float = BOOK_RESIZE_RATIO) -> int:
    """The test-time resize that goes with a crop of `image_size` (the book's 256 for 224; a network's weights may
    keep another ratio)."""
    return round(image_size * ratio)


# How a test photo is brought to the crop's neighbourhood: the book's Resize([r, r]) (a square, the aspect ratio not
# kept), or torchvision's weights' Resize(r) (the shorter side to r, the aspect ratio kept).
RESIZE_MODES = ("square", "shorter")
INTERPOLATIONS = ("bilinear", "bicubic")  # the book's, and what some of torchvision's weights were trained with


class TrainPreset:
    """The book's train_augs: RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize."""

    def __init__(self, image_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation: str = "bilinear"):
        from torchvision import transforms  # torch, only once a transform is built: the pages list data first

        self.mean, self.std, self.interpolation = tuple(mean), tuple(std), interpolation
        self.transforms = transforms.Compose([
            transforms.RandomResizedCrop(image_size, interpolation=transforms.InterpolationMode(interpolation)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(image)


class EvalPreset:
    """The book's test_augs: Resize([256, 256]) (aspect ratio not kept), CenterCrop(224), ToTensor, Normalize; or,
    with resize "shorter", torchvision's weights' Resize(256) that keeps the aspect ratio."""

    def __init__(self, image_size: int = 224, resize_size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation: str = "bilinear", resize: str = "square"):
        from torchvision import transforms  # torch, only once a transform is built: the pages list data first

        self.image_size = image_size
        self.resize_size = resize_size or resize_size_for(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.interpolation, self.resize = interpolation, resize
        self.transforms = transforms.Compose([
            transforms.Resize([self.resize_size, self.resize_size] if resize == "square" else self.resize_size,
                              interpolation=transforms.InterpolationMode(interpolation)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(self.mean, self.std),
        ])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(image)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of a width x height photo after the resize, before the centre crop (torchvision's
        rounding: the longer side rounded down)."""
        r = self.resize_size
        if self.resize == "square":
            return r, r
        return (r, int(r * height / width)) if width <= height else (int(r * width / height), r)

    def to_dict(self) -> dict:
        """Plain description, stored in checkpoints so prediction preprocesses exactly as evaluation did."""
        return {"image_size": self.image_size, "resize_size": self.resize_size, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation, "resize": self.resize}

    @classmethod
    def from_dict(cls, d: dict) -> EvalPreset:
        """Rebuild the preset that `to_dict` described (a checkpoint from before interpolation and resize were kept
        used the book's)."""
        return cls(int(d["image_size"]), int(d["resize_size"]), d["mean"], d["std"],
                   d.get("interpolation", "bilinear"), d.get("resize", "square"))


def train_preset(arch: str, image_size: int) -> TrainPreset:
    """The training transform of `arch`: the book's augmentations with the network's interpolation and statistics."""
    spec = get_arch(arch)
    return TrainPreset(image_size, spec.mean, spec.std, spec.interpolation)


def eval_preset(arch: str, image_size: int) -> EvalPreset:
    """The test transform of `arch`: the book's for the built-in four, the weights' own (resize ratio, shorter side,
    interpolation, statistics) for the rest of torchvision's networks."""
    spec = get_arch(arch)
    return EvalPreset(image_size, resize_size_for(image_size, spec.resize_ratio), spec.mean, spec.std,
                      spec.interpolation, spec.resize)


def to_uint8_image(tensor: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Undo Normalize and ToTensor: a CxHxW float tensor back to an HxWxC uint8 array for display."""
    import torch  # only once a photo is shown through a transform: the pages list data first

    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return (tensor * std_t + mean_t).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def augmentation_preview(path: str | Path, image_size: int = 224, n: int = 6,
                         arch: str = "resnet18") -> tuple[list[np.ndarray], np.ndarray]:
    """One photo through `arch`'s train transform `n` times (each a new random crop/flip) and its test transform
    once (the book's, by default)."""
    image = load_rgb(str(path))
    train, test = train_preset(arch, image_size), eval_preset(arch, image_size)
    return ([to_uint8_image(train(image), train.mean, train.std) for _ in range(n)],
            to_uint8_image(test(image), test.mean, test.std))
