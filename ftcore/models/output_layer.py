"""The new output layer: where it sits, a fresh one in place of ImageNet's (Xavier-initialised, as the book), and
the book's exercise of starting it from the ImageNet rows of the classes' names."""

from __future__ import annotations

import torch
from torch import nn

from ..archs import IMAGENET_CLASSES, get_arch
from ..errors import FtcoreError
from .imagenet import imagenet_categories, imagenet_row
from .loading import read_state_dict
from .weights import locate_weights


def output_layer(net: nn.Module, arch: str) -> nn.Linear | nn.Conv2d:
    """The output layer ("fc" of a ResNet, "classifier.1" of MobileNetV2; a 1x1 convolution in SqueezeNet)."""
    return net.get_submodule(get_arch(arch).head)


def replace_output_layer(net: nn.Module, arch: str, num_classes: int, xavier: bool = True) -> nn.Linear | nn.Conv2d:
    """Put a fresh layer with `num_classes` outputs where the output layer was (a Linear, or a 1x1 Conv2d where the
    network's is one); Xavier-init its weight."""
    parent_name, _, child = get_arch(arch).head.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    old = output_layer(net, arch)
    new = (nn.Conv2d(old.in_channels, num_classes, kernel_size=1) if isinstance(old, nn.Conv2d)
           else nn.Linear(old.in_features, num_classes))
    if xavier:  # the book: nn.init.xavier_uniform_(finetune_net.fc.weight); the bias keeps the layer's own init
        nn.init.xavier_uniform_(new.weight)
    setattr(parent, child, new)  # also right for Sequential, whose children are named "0", "1", ...
    return new


def init_output_from_imagenet(layer: nn.Linear, classes: list[str], state: dict[str, torch.Tensor],
                              arch: str, origin: str) -> list[str]:
    """The book's exercise: start each class whose name is an ImageNet category from that category's row
    of the pretrained output layer; every other class gets the mean of the remaining rows ("anything else").
    Returns the ImageNet categories used, one per class ("" for the mean)."""
    head = get_arch(arch).head
    weight, bias = state.get(f"{head}.weight"), state.get(f"{head}.bias")
    if weight is None or bias is None or weight.shape != (IMAGENET_CLASSES, layer.in_features):
        raise FtcoreError(f"{origin} has no ImageNet output layer for {arch}, so the new layer cannot start "
                          "from it; use the Xavier init or weights that include the output layer")
    rows = [-1 if (row := imagenet_row(c)) is None else row for c in classes]
    if all(r < 0 for r in rows):
        raise FtcoreError(f"none of the classes {', '.join(classes)} is an ImageNet category (e.g. hotdog), "
                          "so the new layer cannot start from ImageNet rows; use the Xavier init")
    rest = torch.ones(IMAGENET_CLASSES, dtype=torch.bool)
    rest[[r for r in rows if r >= 0]] = False
    with torch.no_grad():
        for i, r in enumerate(rows):
            layer.weight[i] = weight[r] if r >= 0 else weight[rest].mean(0)
            layer.bias[i] = bias[r] if r >= 0 else bias[rest].mean()
    categories = imagenet_categories()
    return [categories[r] if r >= 0 else "" for r in rows]


def head_init_status(arch: str, weights_file: str | None, classes: list[str]) -> tuple[bool, str]:
    """Whether the new output layer can start from ImageNet rows here, and one sentence saying why (not)."""
    if get_arch(arch).head_kind != "linear":
        return False, f"{arch}'s output layer is a convolution, which cannot start from ImageNet rows"
    try:
        source = locate_weights(arch, weights_file)
    except FtcoreError as e:
        return False, str(e)
    if source is None:
        return False, (f"no ImageNet weights for {arch} on this machine yet; they carry the ImageNet output "
                       "layer this needs")
    head = get_arch(arch).head
    weight = read_state_dict(source.path).get(f"{head}.weight")
    if weight is None or weight.shape[0] != IMAGENET_CLASSES:
        return False, (f"the {arch} weights here ({source.path}) have no ImageNet output layer to start from")
    matches = [f"{c} = ImageNet row {row}" for c in classes if (row := imagenet_row(c)) is not None]
    if not matches:
        return False, (f"none of the classes ({', '.join(classes) or 'none yet'}) is an ImageNet category "
                       "(e.g. hotdog)")
    return True, f"{'; '.join(matches)}; other classes start from the mean of the remaining rows"
