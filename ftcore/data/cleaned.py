"""A dataset as edited: its splits with the relabels and exclusions of its edit log applied, the check of an edit
before it is written, and the cleaned copy written as a new folder (hard links where the file system allows).
The photo folder itself is only ever read."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

from ..errors import FtcoreError
from .edits import Edits
from .splits import ROLES, DatasetSplits


def relative_path(splits: DatasetSplits, path: str) -> str:
    """A photo's path inside its dataset folder, with '/': how the log and the check name it."""
    return Path(path).relative_to(splits.root).as_posix()


def photo_classes(splits: DatasetSplits) -> dict[str, str]:
    """Every photo of the dataset (relative path) -> the class it is filed under."""
    return {relative_path(splits, p): splits.classes[c] for role in splits.roles for p, c in splits.samples[role]}


def check_edit(splits: DatasetSplits, path: str, to: str = "") -> str:
    """`path` as the log names it, once it is a photo of the dataset and `to` (for a relabel) one of its classes
    other than the photo's own; an FtcoreError naming what is wrong otherwise."""
    filed = photo_classes(splits)
    name = PurePosixPath(path.replace(os.sep, "/")).as_posix()
    if name not in filed:
        raise FtcoreError(f"photo {path} is not in data folder {splits.root}; give its path inside that folder, as "
                          "the check lists it (e.g. train/cat/001.jpg)")
    if to and to not in splits.classes:
        raise FtcoreError(f"class {to!r} is not one of the classes of {splits.root} ({', '.join(splits.classes)}); "
                          "relabel the photo as one of those")
    if to and filed[name] == to:
        raise FtcoreError(f"photo {name} is already filed under {to}; mark it as looking right instead")
    return name


def apply_edits(splits: DatasetSplits, edits: Edits) -> DatasetSplits:
    """The same splits with each relabeled photo in its new class and the excluded photos left out (edits of photos
    no longer in the folder are passed over). An FtcoreError where a relabel names a class the dataset lacks, or where
    a class would keep no training photo."""
    index = {name: i for i, name in enumerate(splits.classes)}
    for path, to in edits.relabeled.items():
        if to not in index:
            raise FtcoreError(f"the edits relabel {path} as {to!r}, which is not a class of {splits.root} any more; "
                              "undo that edit or train on the folder as it is")
    samples = {}
    for role in splits.roles:
        kept = []
        for path, label in splits.samples[role]:
            name = relative_path(splits, path)
            if name not in edits.excluded:
                kept.append((path, index[edits.relabeled[name]] if name in edits.relabeled else label))
        samples[role] = sorted(kept, key=lambda pair: pair[1])  # class by class, as ImageFolder orders them
    empty = [name for i, name in enumerate(splits.classes) if all(label != i for _, label in samples["train"])]
    if empty:
        raise FtcoreError(f"after the edits, class {empty[0]} of {splits.root} has no training photo left; undo some "
                          "of its exclusions or relabels")
    return replace(splits, samples=samples, edits=edits.summary())


def export_cleaned(splits: DatasetSplits, edits: Edits, out: str | Path) -> tuple[Path, int, bool]:
    """Write the dataset as edited into the new folder `out`, in the same layout: each photo in the folder of its
    class after the edits, the excluded ones left out. Returns the folder, the photos written and whether all were
    hard links (else copies, across file systems)."""
    out = Path(out).expanduser()
    root = Path(splits.root)
    if out.resolve() == root or root in out.resolve().parents:
        raise FtcoreError(f"{out} is inside the data folder {root}; choose a folder outside it, which is left as it is")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FtcoreError(f"{out} already exists and is not an empty folder; choose a new folder for the cleaned copy")
    filed = {relative_path(splits, p): (p, splits.classes[c], len(PurePosixPath(splits.folders[role]).parts))
             for role in ROLES if role in splits.samples for p, c in splits.samples[role]}
    written, linked = 0, True
    for name, (source, given, class_at) in sorted(filed.items()):  # class_at: the class folder's place in the path
        if name in edits.excluded:
            continue
        parts = list(PurePosixPath(name).parts)
        parts[class_at] = edits.relabeled.get(name, given)
        target = out.joinpath(*parts)
        while target.exists():  # a relabeled photo meets one of the same name in its new class
            target = target.with_name(f"{target.stem}-relabeled{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
            linked = False
        written += 1
    return out, written, linked
