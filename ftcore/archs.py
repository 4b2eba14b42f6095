"""Architectures: the networks' facts, one registry entry each.

Facts only, without torch: the pages list architectures and their rates before torch has loaded, and the config
takes each one's default rates from here. Four networks are built in, with rates and memory measured here; every
other classification network torchvision lists is taken by name from the catalog (torchvision_catalog.json, written
by `python -m ftcore.models.catalog`), with the book's rates carried over. Building a model and finding its ImageNet
weights is `ftcore.models`.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FtcoreError

if TYPE_CHECKING:
    import torch

IMAGENET_CLASSES = 1000  # outputs of an ImageNet classifier: the output layer fine-tuning replaces
# The per-channel statistics of ImageNet that the book normalises with (and most torchvision weights expect).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOOK_RESIZE_RATIO = 256 / 224  # the book's test resize for its 224 crop
CATALOG_FILE = Path(__file__).parent / "torchvision_catalog.json"


@dataclass(frozen=True)
class ArchSpec:
    """One torchvision architecture: how to build it, where its output layer sits, how it sees a photo, its default
    rates."""

    name: str
    builder: str  # the torchvision.models builder, by name
    weights_url: str  # the ImageNet weights its fine-tuning starts from (the file a download puts in the hub cache)
    head: str  # dotted name of the output layer that fine-tuning replaces
    feature_dim: int  # what that layer receives: in_features (Linear) or in_channels (a 1x1 Conv2d)
    cam_layer: str | None  # the last block whose output is a feature map, which Grad-CAM weighs (None: no such map)
    finetune_lr: float  # default lr of the copied layers with the summed loss
    scratch_lr: float  # default lr from random init with the summed loss
    lr_source: str  # where those defaults come from, shown in --help and the UI
    parameters: int  # of the ImageNet model (torchvision's num_params): its weights and gradients in GPU memory
    # Whether precision "auto" trains it in bf16 on hardware with native bf16: ResNets train much faster there
    # with gradients close to fp32's; MobileNetV2's pretrained BatchNorm gradients drift far in bf16 for little
    # speed, so it trains (and is evaluated) in fp32 (docs/benchmarks.md, Speed). Networks not measured here train
    # in fp32. The cached features of the quick and best presets use bf16 for every architecture.
    bf16_training: bool = True
    feature_node: str = "flatten"  # the traced graph's node whose output the output layer receives (fx name)
    logits_node: str = "fc"  # the traced graph's last node, the logits (the output layer but in SqueezeNet)
    head_kind: str = "linear"  # "linear", or "conv": a 1x1 convolution before the pooling (SqueezeNet)
    build_kwargs: tuple[tuple[str, object], ...] = ()  # builder arguments that make training return plain logits
    unused_weights: tuple[str, ...] = ()  # prefixes of ImageNet tensors the built model leaves out (aux classifiers)
    # How a test photo is prepared: the book's square resize and bilinear interpolation for the built-in four,
    # each of torchvision's weights' own for the rest (its transforms(): shorter side, ratio, interpolation, stats).
    resize: str = "square"
    resize_ratio: float = BOOK_RESIZE_RATIO  # test resize / crop
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fixed_size: int | None = None  # the only image size it takes (a vision transformer's patch grid), else None
    min_size: int = 32  # the smallest image size a forward pass goes through
    values_per_photo: int = 0  # values one photo's forward pass produces at `values_at` px (the memory rule's input)
    values_at: int = 224
    measured: bool = True  # rates and memory measured here (the built-in four), else carried over and estimated

    def build(self, weights: object = None) -> torch.nn.Module:
        """The torchvision model (torchvision is imported here, not with the registry: importing it takes seconds,
        and pages that only list architectures draw without it)."""
        import torchvision.models  # seconds to import: only once a model is built

        return torchvision.models.get_model(self.builder, weights=weights, **dict(self.build_kwargs))

    @property
    def fixed_size_rule(self) -> str:
        """"vit_b_16 takes 224 x 224 photos only" ("" for a network that takes any size)."""
        return f"{self.name} takes {self.fixed_size} x {self.fixed_size} photos only" if self.fixed_size else ""

    def sizes_among(self, sizes: Sequence[int]) -> list[int]:
        """The sizes of `sizes` this network takes (all of them, but for a fixed or a smallest size)."""
        return [size for size in sizes if self.size_problem(size) is None]

    def size_problem(self, image_size: int) -> str | None:
        """Why this network cannot take `image_size` px photos, as one sentence; None when it can."""
        if self.fixed_size is not None and image_size != self.fixed_size:
            return f"{self.fixed_size_rule} (got {image_size}); set the image size to {self.fixed_size}"
        if image_size < self.min_size:
            return (f"{self.name} needs photos of at least {self.min_size} px (got {image_size}); set a larger "
                    "image size")
        return None


@functools.cache
def catalog() -> dict[str, dict]:
    """The catalog's entries by name: every classification network torchvision lists, with its facts."""
    return json.loads(CATALOG_FILE.read_text())["networks"]


def catalog_spec(name: str, **measured: object) -> ArchSpec:
    """The spec of a catalog network: its facts from the catalog, the book's rates carried over; `measured`
    replaces what the lab measured itself."""
    e = catalog()[name]
    spec = ArchSpec(
        name=name, builder=name, weights_url=e["weights_url"], head=e["head"], feature_dim=e["feature_dim"],
        cam_layer=e["cam_layer"], finetune_lr=5e-5, scratch_lr=5e-4,
        lr_source=f"the book's resnet18 rates, carried over (not checked for {name})", parameters=e["parameters"],
        bf16_training=False, feature_node=e["feature_node"], logits_node=e["logits_node"], head_kind=e["head_kind"],
        build_kwargs=tuple(sorted(e["build_kwargs"].items())), unused_weights=tuple(e["unused_weights"]),
        resize="shorter",
        resize_ratio=e["resize_size"] / e["crop_size"], interpolation=e["interpolation"], mean=tuple(e["mean"]),
        std=tuple(e["std"]), fixed_size=e["fixed_size"], min_size=e["min_size"],
        values_per_photo=e["values_per_photo"], values_at=e["values_at"], measured=False)
    return replace(spec, **measured)


# The built-in four keep what was measured here, over their catalog facts: ImageNet's V1 weights (the shared
# MobileNetV2 file is V1's), the book's preprocessing, rates and bf16. resnet18's rates are the book's. The other
# ResNets share its blocks and its lr scale; their rates are the book's carried over (untested here: no offline
# ImageNet weights for them). mobilenet_v2's were checked on the hot-dog set with its shared ImageNet weights
# (docs/benchmarks.md, "Choosing mobilenet_v2's learning rates").
BOOK = {"resize": "square", "resize_ratio": BOOK_RESIZE_RATIO, "interpolation": "bilinear", "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD, "feature_node": "flatten", "measured": True}
ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        catalog_spec("resnet18", weights_url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
                     lr_source="the book's (d2l 13.2)", bf16_training=True, **BOOK),
        catalog_spec("resnet34", weights_url="https://download.pytorch.org/models/resnet34-b627a593.pth",
                     lr_source="the book's resnet18 rates, carried over", bf16_training=True, **BOOK),
        catalog_spec("resnet50", weights_url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
                     lr_source="the book's resnet18 rates, carried over", bf16_training=True, **BOOK),
        catalog_spec("mobilenet_v2", weights_url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                     lr_source="the book's rates, checked on hot-dog for mobilenet_v2", bf16_training=False, **BOOK),
    )
}


def arch_names() -> list[str]:
    """Every architecture a run can name: the built-in four, then the rest of the catalog in its order."""
    return [*ARCHITECTURES, *(name for name in catalog() if name not in ARCHITECTURES)]


def get_arch(name: str) -> ArchSpec:
    """The spec of a built-in or catalog architecture, or a clear error naming the closest known names."""
    name = str(name).strip()
    if name.lower() in ARCHITECTURES:  # torchvision's names are lower case; "ResNet18" is meant as resnet18
        return ARCHITECTURES[name.lower()]
    if name.lower() in catalog():
        return catalog_spec(name.lower())
    close = difflib.get_close_matches(str(name).lower(), arch_names(), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"choose one of {', '.join(ARCHITECTURES)}"
    raise FtcoreError(f"unknown architecture {name!r}: torchvision has no classification network of that name; "
                      f"{hint}")


def describe_output_layers(arch: str, num_classes: int) -> tuple[str, str]:
    """The source model's output layer and the target model's, as PyTorch prints them."""
    spec = get_arch(arch)
    if spec.head_kind == "conv":
        layer = "Conv2d({d}, {n}, kernel_size=(1, 1), stride=(1, 1))"
    else:
        layer = "Linear(in_features={d}, out_features={n}, bias=True)"
    return (layer.format(d=spec.feature_dim, n=IMAGENET_CLASSES), layer.format(d=spec.feature_dim, n=num_classes))
