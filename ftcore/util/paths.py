"""Where ftcore keeps its files on this machine."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
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


NEW_FILE_MODE, NEW_FOLDER_MODE = 0o666, 0o777  # before the umask: files and folders the lab makes follow it
PRIVATE_UMASK = 0o077  # what a server others reach uses: its files and folders readable by its own account only


def current_umask() -> int:
    """This process's umask: read from /proc where Linux has it (without changing it even for a moment, which
    another thread's new file would catch), else set and put back."""
    try:
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(PRIVATE_UMASK)
        os.umask(mask)
        return mask


def unique_name(folder: Path, prefix: str, suffix: str = "") -> Path:
    """A name in `folder` that nothing has yet, for a temporary file or folder of our own."""
    return folder / f"{prefix}{secrets.token_hex(8)}{suffix}"


def make_folder(folder: Path, prefix: str) -> Path:
    """A new empty folder in `folder` with the umask's permissions (tempfile.mkdtemp's are owner-only, whatever the
    umask): a dataset being built, a run being saved."""
    while True:
        path = unique_name(folder, prefix)
        try:
            os.mkdir(path, NEW_FOLDER_MODE)
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(dest: Path) -> Iterator[BinaryIO]:
    """Write `dest` through a temporary file of its own beside it, renamed into place only on success.

    Readers never see half a file, two writers of the same file (two tabs) never share a temporary one, and the file
    gets the permissions the umask gives (private where the server keeps its files private)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = unique_name(dest.parent, f".{dest.name}-", ".part")
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def store_bytes(data: bytes, folder: str, suffix: str) -> Path:
    """Save bytes under <cache>/<folder>/<sha1><suffix> (content-addressed, written once) and return the path."""
    path = cache_dir() / folder / f"{hashlib.sha1(data).hexdigest()[:20]}{suffix}"
    if not path.exists():
        with atomic_write(path) as out:
            out.write(data)
    return path
