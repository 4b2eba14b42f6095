"""Where a model's ImageNet weights are on disk, in order: an explicit file (argument, then $FTCORE_WEIGHTS),
torchvision's own hub cache ($TORCH_HOME), a development copy in shared/weights beside the checkout, and last
torchvision's download (which fills that same hub cache); and where a run's weights came from, as data.

Without torch: the pages say whether each architecture's weights are found before torch has loaded.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..archs import get_arch
from ..errors import FtcoreError
from ..util.paths import shared_dir


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
