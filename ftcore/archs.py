"""Architectures: the supported networks' facts, one registry entry each.

Facts only, without torch: the pages list architectures and their rates before torch has loaded, and the config
takes each one's default rates from here. Building a model and finding its ImageNet weights is `ftcore.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import FtcoreError

if TYPE_CHECKING:
    import torch

IMAGENET_CLASSES = 1000  # outputs of an ImageNet classifier: the output layer fine-tuning replaces


@dataclass(frozen=True)
class ArchSpec:
    """One torchvision architecture: how to build it, where its output layer sits, its default rates."""

    name: str
    builder: str  # the torchvision.models constructor, by name, called with weights=None
    weights_url: str  # torchvision's ImageNet weights, IMAGENET1K_V1 (the file its download puts in the hub cache)
    head: str  # dotted name of the output layer that fine-tuning replaces
    feature_dim: int  # in_features of that layer
    cam_layer: str  # dotted name of the last convolutional block, whose feature maps Grad-CAM weighs
    finetune_lr: float  # default lr of the copied layers with the summed loss
    scratch_lr: float  # default lr from random init with the summed loss
    lr_source: str  # where those defaults come from, shown in --help and the UI
    parameters: int  # of the ImageNet model (torchvision's num_params): its weights and gradients in GPU memory
    # Whether precision "auto" trains it in bf16 on hardware with native bf16: ResNets train much faster there
    # with gradients close to fp32's; MobileNetV2's pretrained BatchNorm gradients drift far in bf16 for little
    # speed, so it trains (and is evaluated) in fp32 (docs/benchmarks.md, Speed). The cached features of the
    # quick and best presets use bf16 for every architecture.
    bf16_training: bool = True
    feature_node: str = "flatten"  # the traced graph's node whose output the output layer receives (fx name)

    @property
    def build(self) -> Callable[..., torch.nn.Module]:
        """The torchvision constructor (torchvision is imported here, not with the registry: importing it takes
        seconds, and pages that only list architectures draw without it)."""
        import torchvision.models  # seconds to import: only once a model is built

        return getattr(torchvision.models, self.builder)


# resnet18's rates are the book's. The other ResNets share its blocks and its lr scale; their rates are
# the book's carried over (untested here: no offline ImageNet weights for them). mobilenet_v2's were
# checked on the hot-dog set with its shared ImageNet weights (docs/benchmarks.md, "Choosing mobilenet_v2's
# learning rates").
ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("resnet18", "resnet18", "https://download.pytorch.org/models/resnet18-f37072fd.pth",
                 "fc", 512, "layer4", 5e-5, 5e-4, "the book's (d2l 13.2)", parameters=11_689_512),
        ArchSpec("resnet34", "resnet34", "https://download.pytorch.org/models/resnet34-b627a593.pth",
                 "fc", 512, "layer4", 5e-5, 5e-4, "the book's resnet18 rates, carried over", parameters=21_797_672),
        ArchSpec("resnet50", "resnet50", "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 "fc", 2048, "layer4", 5e-5, 5e-4, "the book's resnet18 rates, carried over", parameters=25_557_032),
        ArchSpec("mobilenet_v2", "mobilenet_v2", "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                 "classifier.1", 1280, "features", 5e-5, 5e-4,
                 "the book's rates, checked on hot-dog for mobilenet_v2", parameters=3_504_872,
                 bf16_training=False),
    )
}


def get_arch(name: str) -> ArchSpec:
    """The spec of a supported architecture, or a clear error listing the supported ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise FtcoreError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def describe_output_layers(arch: str, num_classes: int) -> tuple[str, str]:
    """The source model's output layer and the target model's, as PyTorch prints them."""
    d = get_arch(arch).feature_dim
    return (f"Linear(in_features={d}, out_features={IMAGENET_CLASSES}, bias=True)",
            f"Linear(in_features={d}, out_features={num_classes}, bias=True)")
