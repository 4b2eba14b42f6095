"""Architectures: the supported networks' facts and where their ImageNet weights are on disk.

Facts only, without torch: the pages list architectures, their rates and their weights' status before torch
has loaded. Building and loading a model is `ftcore.models`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FtcoreError
from .paths import shared_dir
from .splits import class_key

if TYPE_CHECKING:
    import torch

IMAGENET_CATEGORIES_FILE = Path(__file__).with_name("imagenet_categories.txt")  # torchvision's list, row order
IMAGENET_CLASSES = 1000


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
        import torchvision.models

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


# --------------------------------------------------------------------------------------------------
# Where the ImageNet weights come from, in order: an explicit file (argument, then $FTCORE_WEIGHTS),
# torchvision's own hub cache ($TORCH_HOME), a development copy in shared/weights beside the checkout,
# and last torchvision's download (which fills that same hub cache).


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's starting weights came from."""

    kind: str  # "file", "torch cache", "shared", "download" or "random"
    path: str | None = None  # the file the weights were read from
    url: str | None = None  # where torchvision downloads them ("torch cache" and "download")
    sha256: str | None = None  # of the file, as it was when the run read it

    def to_dict(self) -> dict:
        """Plain dict, as checkpoints and metrics.json store it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WeightsSource:
        """Rebuild a stored source, ignoring keys this version does not know."""
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})

    def with_checksum(self) -> WeightsSource:
        """This source with the sha256 of its file (random weights have none)."""
        if self.path is None:
            return self
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return replace(self, sha256=digest.hexdigest())

    def describe(self) -> str:
        """One phrase for logs and the UI."""
        if self.kind == "random":
            return "random initialisation"
        return f"ImageNet weights from {self.kind}: {self.path}"


def torch_hub_dir() -> Path:
    """torch.hub.get_dir(): torch's own answer once torch is loaded (a program may have moved it with set_dir),
    else hub_dir_from_environment()."""
    hub = sys.modules.get("torch.hub")
    return Path(hub.get_dir()) if hub is not None else hub_dir_from_environment()


def hub_dir_from_environment() -> Path:
    """torch's hub folder as its environment sets it: $TORCH_HOME/hub, $TORCH_HOME defaulting to
    $XDG_CACHE_HOME/torch and that to ~/.cache/torch."""
    cache = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    return Path(os.path.expanduser(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def torch_cache_path(arch: str) -> Path:
    """The file torchvision's download writes and reads: $TORCH_HOME/hub/checkpoints/<name>."""
    return torch_hub_dir() / "checkpoints" / os.path.basename(get_arch(arch).weights_url)


def shared_weights_files(arch: str) -> list[Path]:
    """Development copies of ImageNet weights for `arch` in shared/weights beside the checkout."""
    shared = shared_dir()
    if shared is None or not (shared / "weights").is_dir():
        return []
    return sorted(p for p in (shared / "weights").iterdir()
                  if p.suffix in (".pth", ".pt") and p.name.startswith((f"{arch}_", f"{arch}-")))


def locate_weights(arch: str, weights_file: str | None = None) -> WeightsSource | None:
    """The first weights on disk for `arch` (explicit file, $FTCORE_WEIGHTS, hub cache, shared), or None."""
    explicit = weights_file or os.environ.get("FTCORE_WEIGHTS")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            origin = "weights file" if weights_file else "$FTCORE_WEIGHTS file"
            raise FtcoreError(f"{origin} {path} does not exist; pass an existing .pth file or leave it unset "
                              "to use torchvision's cache and download")
        return WeightsSource("file", str(path))
    cached = torch_cache_path(arch)
    if cached.is_file():
        return WeightsSource("torch cache", str(cached), get_arch(arch).weights_url)
    shared = shared_weights_files(arch)
    if shared:
        return WeightsSource("shared", str(shared[0]))
    return None


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in output-row order (row 934 is "hotdog"), as torchvision's weights list
    them (kept beside this module, so that naming a class needs no torchvision)."""
    return IMAGENET_CATEGORIES_FILE.read_text(encoding="utf-8").splitlines()


def imagenet_row(name: str) -> int | None:
    """The ImageNet output row of a class named like an ImageNet category, matched as class names are across
    datasets (splits.class_key: case, spaces, '-' and '_' aside; "Hot-Dog" is row 934), else None."""
    return _imagenet_rows().get(class_key(name))


@functools.cache
def _imagenet_rows() -> dict[str, int]:
    return {class_key(category): row for row, category in enumerate(imagenet_categories())}


def weights_status(arch: str) -> tuple[str, str]:
    """(state, sentence) for the home page: state is "found", "downloadable" or "error"."""
    try:
        source = locate_weights(arch)
    except FtcoreError as e:
        return "error", str(e)
    if source is not None:
        return "found", source.describe()
    target = torch_cache_path(arch)
    return "downloadable", (f"not on disk; torchvision downloads {target.name} into {target.parent}/ on first "
                            "use (needs internet; offline, put the file there or pass a weights file)")
