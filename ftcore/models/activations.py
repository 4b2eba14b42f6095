"""What a model computes inside, read through torch.fx views of it (create_feature_extractor): they share the
model's parameters and never place a hook on it, so sessions that share one cached model cannot mix their
activations."""

from __future__ import annotations

import weakref

from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from ..archs import ARCHITECTURES, ArchSpec, get_arch
from ..errors import FtcoreError


def spec_of_model(net: nn.Module) -> ArchSpec:
    """The registry entry whose output layer and Grad-CAM block a model has by name (for models loaded without
    their architecture's name); FtcoreError when none fits."""
    modules = dict(net.named_modules())
    for spec in ARCHITECTURES.values():  # a catalog network's layers can be named alike (ConvNeXt's classifier.1)
        if spec.cam_layer in modules and isinstance(modules.get(spec.head), nn.Linear):
            return spec
    raise FtcoreError(f"{type(net).__name__} has none of the layers of {', '.join(ARCHITECTURES)}; use a model "
                      "trained here")


def spec_for(model: nn.Module, arch: str | None) -> ArchSpec:
    """The registry entry of `arch`, else the one whose layers the model has."""
    return get_arch(arch) if arch is not None else spec_of_model(model)


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {nodes: its traced view}


def activations(model: nn.Module, nodes: dict[str, str]) -> nn.Module:
    """A view of `model` whose forward returns the outputs of the named graph nodes ({node: key}), traced once
    per model and set of nodes; in the model's train/eval mode."""
    views = _VIEWS.setdefault(model, {})
    key = tuple(sorted(nodes.items()))
    if key not in views:
        try:
            views[key] = create_feature_extractor(model, return_nodes=dict(nodes))
        except Exception as e:  # torch.fx raises many kinds for models it cannot trace
            raise FtcoreError(f"{type(model).__name__} cannot be traced to read its {', '.join(nodes)} "
                              f"({type(e).__name__}); use a model trained here") from None
    return views[key].train(model.training)
