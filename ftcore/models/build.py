"""A run's network: a supported architecture with its ImageNet weights (or random ones) and a new output layer, and
an inference copy with BatchNorm folded into the convolutions."""

from __future__ import annotations

import torch
import torch.fx.experimental.optimization
from torch import nn

from ..archs import get_arch
from ..config import HEAD_INITS
from ..errors import FtcoreError
from .loading import download_weights, load_backbone, read_state_dict
from .output_layer import init_output_from_imagenet, replace_output_layer
from .weights import WeightsSource, locate_weights, torch_cache_path


def build_model(arch: str, num_classes: int, pretrained: bool, weights_file: str | None = None,
                download: bool = True, head_init: str = "xavier",
                classes: list[str] | None = None) -> tuple[nn.Module, WeightsSource]:
    """The target model: `arch` with ImageNet weights (pretrained) or random ones, and a new output layer.

    As in the book, a fine-tuned model's new layer gets Xavier-uniform weights while the scratch model
    keeps nn.Linear's default init; head_init="imagenet" instead starts it from the ImageNet rows of the
    classes' names (the book's hotdog exercise). Without weights on disk and no way to download them this
    raises; it never falls back to random weights silently.
    """
    if head_init not in HEAD_INITS:
        raise FtcoreError(f"head init must be xavier or imagenet (got {head_init!r})")
    if head_init == "imagenet" and not pretrained:
        raise FtcoreError("the ImageNet head init needs ImageNet weights; use it with fine-tuning, not scratch")
    spec = get_arch(arch)
    if head_init == "imagenet" and spec.head_kind != "linear":
        raise FtcoreError(f"{arch}'s output layer is a convolution, which cannot start from ImageNet rows; use the "
                          "Xavier init")
    net = spec.build(weights=None)
    source = WeightsSource("random")
    state: dict[str, torch.Tensor] = {}
    if pretrained:
        source = locate_weights(arch, weights_file)
        if source is None:
            if not download:
                target = torch_cache_path(arch)
                raise FtcoreError(f"no ImageNet weights for {arch} on this machine; put {target.name} in "
                                  f"{target.parent}/ or give a weights file (--weights)")
            source = download_weights(arch)
        state = read_state_dict(source.path)
        load_backbone(net, arch, state, f"weights file {source.path}")
        source = source.with_checksum()
    layer = replace_output_layer(net, arch, num_classes, xavier=pretrained)
    if head_init == "imagenet":
        init_output_from_imagenet(layer, list(classes or []), state, arch, f"weights file {source.path}")
    return net, source


def fused_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm folded into the convolution before it: the same outputs
    (to float rounding), fewer passes over memory, so CPU inference runs faster (docs/benchmarks.md). A model
    torch.fx cannot trace is returned as it is, in eval mode."""
    model.eval()
    try:
        fused = torch.fx.experimental.optimization.fuse(model)  # traces and works on a deep copy
    except Exception:  # an architecture fx cannot trace: plain eval mode is still correct
        return model
    first = next(model.parameters())
    channels_last = first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last)
    return fused.to(memory_format=torch.channels_last) if channels_last else fused
