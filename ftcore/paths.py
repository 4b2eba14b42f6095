"""Where ftcore keeps its files on this machine."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

# The repository root: ftcore/ lives directly inside it.
REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Folder for downloads, extracted datasets and saved runs: $FTCORE_CACHE, else ~/.cache/ftcore."""
    if os.environ.get("FTCORE_CACHE"):
        return Path(os.environ["FTCORE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ftcore"


def shared_dir() -> Path | None:
    """The read-only `shared/` folder beside the checkout (development data and weights), if present."""
    candidate = REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


def store_bytes(data: bytes, folder: str, suffix: str) -> Path:
    """Save bytes under <cache>/<folder>/<sha1><suffix> (content-addressed, written once) and return the path."""
    path = cache_dir() / folder / f"{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".part")
        with os.fdopen(handle, "wb") as out:  # a file of its own: two tabs may store the same upload at once
            out.write(data)
        os.replace(tmp, path)
    return path
