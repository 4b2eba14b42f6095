"""Weights read, downloaded and loaded: state dicts from files (weights_only), torchvision's download, and the one
check that a state fits a model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..archs import get_arch
from ..errors import FtcoreError
from .weights import WeightsSource, torch_cache_path


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
    """Load every weight but the output layer's (and those of blocks the model leaves out) into `net`; refuse a file
    that does not fit `arch`."""
    spec = get_arch(arch)
    head = spec.head + "."
    state = {k: v for k, v in state.items() if not k.startswith(spec.unused_weights)} if spec.unused_weights else state
    problem = state_mismatch(net, state, ignore=head)
    if problem is not None:
        raise FtcoreError(f"{origin} does not fit {arch} ({problem}); pass weights saved from torchvision's {arch}")
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)}, strict=False)
