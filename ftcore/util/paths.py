"""Where ftcore keeps its files on this machine."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# The repository root: ftcore/ lives directly inside it (this file is ftcore/util/paths.py).
REPO_ROOT = Path(__file__).resolve().parents[2]


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `extra`, with the repository first on PYTHONPATH: what a child Python
    process of the lab (a run, the fork server) starts with, installed or not."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


def cache_dir() -> Path:
    """Folder for downloads, extracted datasets and saved runs: $FTCORE_CACHE, else ~/.cache/ftcore."""
    if os.environ.get("FTCORE_CACHE"):
        return Path(os.environ["FTCORE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ftcore"


RUNS_DIR_ENV = "FTCORE_RUNS_DIR"  # where the app's runs live: a shared mount when runs train on other machines


def runs_dir() -> Path:
    """Where the app's runs are written, one folder each, and listed from after a restart: $FTCORE_RUNS_DIR, else
    <cache>/runs."""
    chosen = os.environ.get(RUNS_DIR_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else cache_dir() / "runs"


def shared_dir() -> Path | None:
    """The read-only `shared/` folder beside the checkout (development data and weights), if present."""
    candidate = REPO_ROOT.parent / "shared"
    return candidate if candidate.is_dir() else None


FILE_MODE = 0o644  # what open() gives a new file under the common umask 022


@contextlib.contextmanager
def atomic_write(dest: Path) -> Iterator[BinaryIO]:
    """Write `dest` through a temporary file of its own beside it, renamed into place only on success.

    Readers never see half a file, and two writers of the same file (two tabs) never share a temporary one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.chmod(tmp, FILE_MODE)  # mkstemp makes owner-only files; a result file gets the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_bytes(data: bytes, folder: str, suffix: str) -> Path:
    """Save bytes under <cache>/<folder>/<sha1><suffix> (content-addressed, written once) and return the path."""
    path = cache_dir() / folder / f"{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
    if not path.exists():
        with atomic_write(path) as out:
            out.write(data)
    return path
