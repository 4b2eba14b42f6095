"""Photo folders on disk: what counts as a photo, a class folder, and inside the tree.

Every part of ftcore that lists photos (layout detection, splits, training, the explorer) asks these
functions, so the counts a user sees are the photos a run trains on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# torchvision's ImageFolder extensions (torchvision.datasets.folder.IMG_EXTENSIONS; a test keeps them equal):
# what counts as an image in a class folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Folders that are never classes nor photo folders: hidden ones (.ipynb_checkpoints, .git) and macOS zip debris.
SKIPPED_FOLDERS = ("__MACOSX",)


def is_photo_path(path: str) -> bool:
    """True for a file name with an image extension that is not hidden."""
    return path.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(path).startswith(".")


def skipped(name: str) -> bool:
    """True for a folder that is never a class or split: hidden, or zip debris."""
    return name.startswith(".") or name in SKIPPED_FOLDERS


def inside(path: str | Path, real_root: Path) -> bool:
    """True when `path`, with every link resolved, lies within `real_root` (itself resolved)."""
    return Path(os.path.realpath(path)).is_relative_to(real_root)


def real_root_of(root: str | Path) -> Path:
    """The tree's root with links and `~` resolved: what "inside the tree" is measured against."""
    return Path(root).expanduser().resolve()


def subfolders(folder: str | Path, real_root: Path) -> list[str]:
    """Sorted names of the real, visible subfolders of `folder` that stay inside the tree."""
    folder = Path(folder)
    if not folder.is_dir() or not inside(folder, real_root):
        return []
    return sorted(d.name for d in folder.iterdir() if not skipped(d.name) and d.is_dir() and inside(d, real_root))


def class_folders(root: str | Path, split: str) -> list[str]:
    """Sorted class folder names of one split folder (`split` "" for the root itself)."""
    real_root = real_root_of(root)
    return subfolders(real_root / split if split else real_root, real_root)


def class_files(class_dir: str | Path, real_root: Path, ignored: list[str] | None = None) -> list[str]:
    """Photos of one class folder and its subfolders, in ImageFolder's order (sorted folder, then name).

    Hidden files and folders are skipped; links to folders are not entered; a link to a file counts only
    when it points inside the tree; FIFOs and devices are never opened. Other files are added to `ignored`."""
    found = []
    for folder, dirs, names in os.walk(class_dir):  # top-down; links to folders are listed, not entered
        dirs[:] = [d for d in dirs if not skipped(d)]
        found.append((folder, sorted(n for n in names if not n.startswith("."))))
    photos = []
    for folder, names in sorted(found):
        for name in names:
            path = os.path.join(folder, name)
            if is_photo_path(path) and regular_file_inside(path, real_root):
                photos.append(path)
            elif ignored is not None:
                ignored.append(path)
    return photos


def regular_file_inside(path: str, real_root: Path) -> bool:
    """True for a regular file, or a link to one inside the tree. Only links are resolved: the walk enters no
    linked folder, so a plain file it found lies inside the tree already (and resolving every photo's path
    would take most of a listing's time)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISLNK(mode):
        return os.path.isfile(path) and inside(path, real_root)
    return stat.S_ISREG(mode)


def dataset_key(root: str | Path) -> str:
    """A dataset folder's name in the lab's own files (its photo check, edit logs, check reports): a digest of its
    resolved path."""
    return hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
