"""The catalog of torchvision's classification networks: for every builder `torchvision.models.list_models` names,
the facts the lab needs of it, read from torchvision itself and kept in ftcore/torchvision_catalog.json, which
`ftcore.archs` reads without torch.

    python -m ftcore.models.catalog            # rewrite the catalog from the torchvision installed

Each network is built without weights (on PyTorch's meta device where it can be: no memory, no arithmetic), and
these are read off it: its output layer (the last layer with ImageNet's 1000 outputs), what that layer receives,
the block Grad-CAM weighs (the last one whose output is still a feature map), which image sizes a forward pass
accepts, how many values one photo's forward pass produces (for the memory rule), and from its default ImageNet
weights their file, their test preprocessing and the parameter count. `tests/test_catalog.py` checks the file
against torchvision for a sample of networks.
"""

from __future__ import annotations

import json
import warnings

import torch
import torchvision
from torch import nn
from torchvision import models
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..archs import CATALOG_FILE, IMAGENET_CLASSES

# Sizes probed for what a network accepts: the Train page's sizes, and the smallest that torchvision's weights
# say some networks need.
PROBE_SIZES = (32, 64, 75, 96, 128, 160, 192, 224)
# Builders given the arguments torchvision itself passes them with ImageNet weights: no auxiliary classifiers
# (whose logits training would otherwise return beside the output), their inputs mapped from ImageNet's
# normalisation to the one their weights were trained on, and their random initialisation named.
AS_THEIR_WEIGHTS = {name: {"aux_logits": False, "transform_input": True, "init_weights": True}
                    for name in ("googlenet", "inception_v3")}


def build_without_weights(name: str, **kwargs: object) -> tuple[nn.Module, dict]:
    """`name` built without weights, on the meta device where its constructor allows (else built on the CPU and
    moved there), with the keyword arguments that make it return plain logits, and `kwargs`."""
    kwargs = {**AS_THEIR_WEIGHTS.get(name, {}), **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the catalog's build only reads the network's shape
        try:
            with torch.device("meta"):
                return models.get_model(name, weights=None, **kwargs).eval(), kwargs
        except NotImplementedError:  # a constructor that computes with its tensors (RegNet's widths)
            return models.get_model(name, weights=None, **kwargs).to("meta").eval(), kwargs


def output_layer_name(model: nn.Module) -> str:
    """The dotted name of the last layer with ImageNet's 1000 outputs: the output layer fine-tuning replaces."""
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES
             or isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES]
    if not names:
        raise ValueError("no layer with 1000 outputs")
    return names[-1]


def accepts(model: nn.Module, size: int) -> bool:
    """Whether a forward pass of one size x size photo goes through."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
        return True
    except Exception:  # each network refuses a size in its own way (assertions, shape errors)
        return False


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level blocks in order, a ModuleList's (never called as a whole) by its members."""
    found = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            found += [(f"{name}.{index}", member) for index, member in child.named_children()]
        else:
            found.append((name, child))
    return found


def forward_facts(model: nn.Module, size: int) -> tuple[int, str | None]:
    """One forward pass of a size x size photo: how many values its layers produce (every leaf module's output),
    and the last block (blocks()) whose output is a feature map (N x C x H x W, H and W above 1; poolings left
    out) with no token sequence after it, which Grad-CAM weighs (None for a vision transformer)."""
    produced, outputs = [0], []

    def count(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor):
            produced[0] += output[0].numel()

    def watch(name: str, module: nn.Module):
        pooling = isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d | nn.MaxPool2d)

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                is_map = output.dim() == 4 and output.shape[2] > 1 and output.shape[3] > 1 and not pooling
                outputs.append((name, is_map, output.dim() == 3))
        return hook

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    handles += [m.register_forward_hook(watch(name, m)) for name, m in blocks(model)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    cam = None
    for name, is_map, is_tokens in outputs:
        cam = name if is_map else None if is_tokens else cam
    return produced[0], cam


def logits_node(model: nn.Module, size: int) -> str:
    """The traced graph's last node, whose output is the logits (the output layer itself, except where pooling
    follows it, as in SqueezeNet), checked by its shape."""
    _, nodes = get_graph_node_names(model)
    with torch.no_grad():
        shape = create_feature_extractor(model, {nodes[-1]: "x"})(torch.zeros(1, 3, size, size, device="meta"))["x"]
    if tuple(shape.shape) != (1, IMAGENET_CLASSES):
        raise ValueError(f"node {nodes[-1]} gives {tuple(shape.shape)}, not the logits")
    return nodes[-1]


def feature_node(model: nn.Module, head: str, feature_dim: int, size: int) -> str:
    """The traced graph's node whose output the output layer receives (torchvision's feature-extraction names), for
    the quick and best presets' cached features: the node just before the output layer, checked by its shape."""
    _, nodes = get_graph_node_names(model)
    node = nodes[nodes.index(head) - 1]
    with torch.no_grad():
        shape = create_feature_extractor(model, {node: "x"})(torch.zeros(1, 3, size, size, device="meta"))["x"].shape
    if shape[1] != feature_dim:
        raise ValueError(f"node {node} gives {tuple(shape)}, not {feature_dim} features")
    return node


def derive(name: str) -> dict:
    """The catalog's entry of one torchvision classification network."""
    model, kwargs = build_without_weights(name)
    head = output_layer_name(model)
    layer = model.get_submodule(head)
    feature_dim = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
    weights = models.get_model_weights(name).DEFAULT
    preprocessing = weights.transforms()
    crop = preprocessing.crop_size[0]
    if not accepts(model, crop):  # a transformer whose weights were trained at another size (ViT-H/14 at 518)
        model, kwargs = build_without_weights(name, image_size=crop)
    sizes = sorted({size for size in (*PROBE_SIZES, crop) if accepts(model, size)})
    fixed = sizes == [crop]
    size = crop if fixed else 224
    produced, cam = forward_facts(model, size)
    unused = []  # the weights' tensors of blocks the built model leaves out (auxiliary classifiers), by prefix
    if kwargs.get("aux_logits") is False:
        with torch.device("meta"):
            full = models.get_model(name, weights=None, **{**kwargs, "aux_logits": True}).state_dict()
        unused = sorted({key.split(".")[0] + "." for key in full if key not in model.state_dict()})
    return {
        "head": head, "head_kind": "linear" if isinstance(layer, nn.Linear) else "conv", "feature_dim": feature_dim,
        "cam_layer": cam, "feature_node": feature_node(model, head, feature_dim, size),
        "logits_node": logits_node(model, size),
        "build_kwargs": kwargs, "unused_weights": unused, "parameters": weights.meta["num_params"],
        "weights": weights.name, "weights_url": weights.url,
        "crop_size": crop, "resize_size": preprocessing.resize_size[0],
        "interpolation": preprocessing.interpolation.value, "mean": list(preprocessing.mean),
        "std": list(preprocessing.std), "fixed_size": crop if fixed else None, "min_size": min(sizes),
        "values_per_photo": produced, "values_at": size,
    }


def catalog() -> dict:
    """Every classification network torchvision lists, by name, with its facts."""
    return {"torchvision": torchvision.__version__.split("+")[0],
            "networks": {name: derive(name) for name in models.list_models(module=models)}}


def main() -> None:
    """Rewrite the catalog file from the torchvision installed."""
    CATALOG_FILE.write_text(json.dumps(catalog(), indent=1) + "\n")
    print(f"wrote {CATALOG_FILE}")


if __name__ == "__main__":
    main()
