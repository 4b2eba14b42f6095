"""Models: building a supported architecture with its ImageNet weights and a new output layer, and reading
what it computes inside. The architectures' facts and where their weights are on disk: `ftcore.archs`."""

from __future__ import annotations

import weakref
from pathlib import Path

import torch
import torch.fx.experimental.optimization
from torch import nn

from .archs import (
    ARCHITECTURES,
    IMAGENET_CLASSES,
    ArchSpec,
    WeightsSource,
    get_arch,
    imagenet_categories,
    imagenet_row,
    locate_weights,
    torch_cache_path,
)
from .config import HEAD_INITS
from .errors import FtcoreError


def spec_of_model(net: nn.Module) -> ArchSpec:
    """The registry entry whose output layer and Grad-CAM block a model has by name (for models loaded without
    their architecture's name); FtcoreError when none fits."""
    names = {name for name, _ in net.named_modules()}
    for spec in ARCHITECTURES.values():
        if spec.head in names and spec.cam_layer in names:
            return spec
    raise FtcoreError(f"{type(net).__name__} has none of the layers of {', '.join(ARCHITECTURES)}; use a model "
                      "trained here")


# --------------------------------------------------------------------------------------------------
# What a model computes inside, read through torch.fx views of it (create_feature_extractor): they share the
# model's parameters and never place a hook on it, so sessions that share one cached model cannot mix their
# activations.

_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {nodes: its traced view}


def activations(model: nn.Module, nodes: dict[str, str]) -> nn.Module:
    """A view of `model` whose forward returns the outputs of the named graph nodes ({node: key}), traced once
    per model and set of nodes; in the model's train/eval mode."""
    views = _VIEWS.setdefault(model, {})
    key = tuple(sorted(nodes.items()))
    if key not in views:
        from torchvision.models.feature_extraction import create_feature_extractor

        try:
            views[key] = create_feature_extractor(model, return_nodes=dict(nodes))
        except Exception as e:  # torch.fx raises many kinds for models it cannot trace
            raise FtcoreError(f"{type(model).__name__} cannot be traced to read its {', '.join(nodes)} "
                              f"({type(e).__name__}); use a model trained here") from None
    return views[key].train(model.training)


def spec_for(model: nn.Module, arch: str | None) -> ArchSpec:
    """The registry entry of `arch`, else the one whose layers the model has."""
    return get_arch(arch) if arch is not None else spec_of_model(model)


def output_layer(net: nn.Module, arch: str) -> nn.Linear:
    """The output layer ("fc" of a ResNet, "classifier.1" of MobileNetV2)."""
    return net.get_submodule(get_arch(arch).head)


def replace_output_layer(net: nn.Module, arch: str, num_classes: int, xavier: bool = True) -> nn.Linear:
    """Put a fresh Linear(in_features, num_classes) where the output layer was; Xavier-init its weight."""
    parent_name, _, child = get_arch(arch).head.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    new = nn.Linear(output_layer(net, arch).in_features, num_classes)
    if xavier:  # the book: nn.init.xavier_uniform_(finetune_net.fc.weight); the bias keeps Linear's init
        nn.init.xavier_uniform_(new.weight)
    setattr(parent, child, new)  # also right for Sequential, whose children are named "0", "1", ...
    return new


# --------------------------------------------------------------------------------------------------
# The weights read, downloaded and loaded (archs.locate_weights finds them on disk).


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file or an ftcore checkpoint, loaded with weights_only=True."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip, EOF and runtime errors for files that are not its own
        raise FtcoreError(f"weights file {path} is not a PyTorch state dict ({type(e).__name__}); "
                          "pass a .pth file saved with torch.save(model.state_dict())") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # an ftcore checkpoint, or a trainer's
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FtcoreError(f"weights file {path} holds no state dict of tensors; "
                          "pass a .pth file saved with torch.save(model.state_dict())")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # nn.DataParallel prefixes "module."


def download_weights(arch: str, progress: bool = False) -> WeightsSource:
    """torchvision's own download into its hub cache; an offline machine gets one clear error."""
    url = get_arch(arch).weights_url
    target = torch_cache_path(arch)
    match = torch.hub.HASH_REGEX.search(target.name)  # torchvision names files <arch>-<sha256 prefix>.pth
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), hash_prefix=match.group(1) if match else None,
                                       progress=progress)
    except Exception as e:  # URLError, HTTPError, timeouts, disk errors: all mean "no weights"
        reason = getattr(e, "reason", None) or e
        raise FtcoreError(f"could not download ImageNet weights for {arch} from {url} ({reason}); put "
                          f"{target.name} in {target.parent}/ or give a weights file (--weights)") from None
    return WeightsSource("download", str(target), url)


def state_mismatch(model: nn.Module, state: dict, ignore: str | None = None) -> str | None:
    """The first way `state` does not fit `model`'s own tensors, as a phrase ("3 missing and 0 unexpected tensors,
    e.g. fc.bias" or "fc.weight is (5, 512), the model needs (2, 512)"); None when it fits. Names starting with
    `ignore` (an output layer about to be replaced) are left out on both sides."""
    expected = {k: v for k, v in model.state_dict().items() if ignore is None or not k.startswith(ignore)}
    given = {k: v for k, v in state.items() if ignore is None or not k.startswith(ignore)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        return (f"{len(missing)} missing and {len(unexpected)} unexpected tensors, e.g. "
                f"{(missing or unexpected)[0]}")
    for key, tensor in expected.items():
        value = given[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(tensor.shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"{key} is {shape}, the model needs {tuple(tensor.shape)}"
    return None


def load_backbone(net: nn.Module, arch: str, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load every weight but the output layer's into `net`; refuse a file that does not fit `arch`."""
    head = get_arch(arch).head + "."
    problem = state_mismatch(net, state, ignore=head)
    if problem is not None:
        raise FtcoreError(f"{origin} does not fit {arch} ({problem}); pass weights saved from torchvision's {arch}")
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)}, strict=False)


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


