"""Paths a user types: anywhere on their own machine, and only inside one folder on a server that others reach."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import FtcoreError


def resolve_user_path(text: str, allowed_root: Path | None = None) -> Path:
    """The file or folder a user typed; with `allowed_root` (a server's data root) only paths inside it.

    Relative paths are taken from `allowed_root`; `..`, `~` and any path that (links resolved) leads
    outside it are refused with a sentence naming it."""
    text = text.strip()
    if allowed_root is None:
        return Path(text).expanduser()
    root = Path(allowed_root).expanduser().resolve()
    given = PurePosixPath(text.replace("\\", "/"))
    if ".." in given.parts or text.startswith("~"):
        raise FtcoreError(f"{text} uses '..' or '~'; give a path inside {root}, the folder this server reads from")
    path = (root / given).resolve()
    if not path.is_relative_to(root):
        raise FtcoreError(f"{text} is outside {root}, the only folder this server reads from; give a path "
                          "inside it")
    return path
