"""Dataset layouts and splits: which photos train, which choose (validation) and which report (test).

A dataset folder comes in one of the layouts people already have (LAYOUTS). Where it has no validation
folder, a share of each class can be held out of the training photos: each photo's place is decided by a
hash of the seed and its path inside the class folder, so the split never depends on the order the file
system lists photos in, and adding photos to a class never moves the ones already placed. (One exception:
a class so small that every hash falls on one side lends its lowest or highest one to the other side, and a
new photo may take over that role.)
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_val_fraction
from ..errors import FtcoreError
from .folders import IMAGE_EXTENSIONS, class_files, inside, real_root_of, subfolders

ROLES = ("train", "val", "test")  # what each split is for: learning, choosing, reporting once at the end
# The folder names each role is recognised by, as the common layouts spell them.
ROLE_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
# Layout name -> the roles that come from folders, and how the explorer describes it.
LAYOUTS = {
    "train/test": "the book's",
    "train/val": "as PyTorch's tutorial, ImageNet and most Kaggle sets",
    "train/val/test": "as Ultralytics",
    "train": "train/ alone; validation held out of it",
    "class folders": "one folder per class; validation held out of them",
}
BOOK_LAYOUT = "train/test"
HOLDOUT_LAYOUTS = ("train", "class folders")  # no split to measure on: validation is held out of train
# The share of each class held out for validation where a layout has no split to validate on.
DEFAULT_VAL_FRACTION = 0.2
HASH_SPACE = 2**64  # a photo's hash, as a number in [0, 1): its first 16 hex digits over this


@dataclass
class DatasetSplits:
    """The photos of each role of one dataset folder, with how they were found and split."""

    root: str  # the dataset folder, links resolved
    layout: str  # one of LAYOUTS
    classes: list[str]  # sorted class folder names, shared by every split
    samples: dict[str, list[tuple[str, int]]]  # role -> (path, class index), class by class, in ImageFolder's order
    folders: dict[str, str]  # role -> the folder it comes from, relative to root ("" for the root itself)
    val_fraction: float = 0.0  # share of each class held out of `folders["train"]` for validation (0: none)
    split_seed: int = 0  # seeds the held-out split
    edits: dict = field(default_factory=dict)  # the photo edits applied (edits.Edits.summary()); {}: the folder as is

    @property
    def roles(self) -> list[str]:
        """The roles this dataset has, in ROLES order."""
        return [role for role in ROLES if role in self.samples]

    @property
    def heldout(self) -> str:
        """The split every per-epoch figure and every choice uses: val where there is one, else test (the book)."""
        return "val" if "val" in self.samples else "test"

    @property
    def final_test(self) -> str | None:
        """The split evaluated once, at the end, when a run chooses on val: test, where there is one."""
        return "test" if "val" in self.samples and "test" in self.samples else None

    @property
    def held_out_of_train(self) -> bool:
        """True when the validation photos were carved out of the training folder."""
        return self.val_fraction > 0

    def counts(self, role: str) -> dict[str, int]:
        """Class -> number of photos in one role."""
        counts = dict.fromkeys(self.classes, 0)
        for _, index in self.samples[role]:
            counts[self.classes[index]] += 1
        return counts

    def describe(self) -> str:
        """One line: the layout, and where validation comes from."""
        text = f"layout: {self.layout} ({LAYOUTS[self.layout]})"
        if self.held_out_of_train:
            where = f"{self.folders['train']}/" if self.folders["train"] else "the class folders"
            text += (f"; val: about {self.val_fraction:.0%} of each class held out of {where} "
                     f"(split seed {self.split_seed})")
        return text

    def record(self) -> dict:
        """Plain data for metrics.json and checkpoints: enough to rebuild and check the same split."""
        root = Path(self.root)
        return {"layout": self.layout, "folders": dict(self.folders), "val_fraction": self.val_fraction,
                "split_seed": self.split_seed, "classes": list(self.classes),
                "counts": {role: self.counts(role) for role in self.roles},
                "val_photos": ([str(Path(path).relative_to(root)) for path, _ in self.samples["val"]]
                               if self.held_out_of_train else [])}


def split_hash(seed: int, class_name: str, relative_path: str) -> float:
    """Where a photo falls in [0, 1) for a seed: below the held-out fraction means validation."""
    digest = hashlib.sha1(f"{seed}/{class_name}/{relative_path}".encode()).hexdigest()
    return int(digest[:16], 16) / HASH_SPACE


def hold_out(photos: list[str], class_dir: Path, class_name: str, fraction: float, seed: int) -> set[str]:
    """The photos of one class held out for validation: those hashing below `fraction`, with at least one photo
    on each side (the lowest hash joins validation, or the highest returns to training, when one side is empty)."""
    if len(photos) < 2:
        raise FtcoreError(f"class folder {class_dir} has {len(photos)} photo, too few to hold any out for "
                          "validation; add photos (at least 2 per class) or give the data its own val/ folder")
    keys = {p: split_hash(seed, class_name, Path(p).relative_to(class_dir).as_posix()) for p in photos}
    ranked = sorted(photos, key=keys.__getitem__)
    held = {p for p in photos if keys[p] < fraction}
    if not held:
        held = {ranked[0]}
    elif len(held) == len(photos):
        held.discard(ranked[-1])
    return held


def _role_folders(real_root: Path, shown: Path) -> dict[str, str]:
    """Role -> folder name for the split folders present at the root (Train/ and VAL/ count too); an ambiguous
    pair is refused."""
    present = {name.lower(): name for name in subfolders(real_root, real_root)}
    found = {}
    for role, names in ROLE_FOLDERS.items():
        matches = [present[name] for name in names if name in present]
        if len(matches) > 1:
            raise FtcoreError(f"data folder {shown} holds both {matches[0]}/ and {matches[1]}/; keep one "
                              "validation folder")
        if matches:
            found[role] = matches[0]
    return found


def layout_of(role_folders: dict[str, str]) -> str:
    """The layout name for the roles that come from folders ("class folders" when none do)."""
    if not role_folders:
        return "class folders"
    return "/".join(role for role in ROLES if role in role_folders)


def resolve_splits(root: str | Path, val_fraction: float | None = None, split_seed: int = 0) -> DatasetSplits:
    """Find the layout of `root`, check it, and list each role's photos.

    `val_fraction` is the share of each class held out of the training photos for validation: None takes
    DEFAULT_VAL_FRACTION where the layout has nothing to validate on (class folders, train/ alone) and none
    for the book's train/test; 0 holds nothing out; a layout with its own val/ folder takes none."""
    shown = Path(root).expanduser()
    if not shown.exists():
        raise FtcoreError(f"data folder {shown} does not exist; choose a folder of class folders, or one holding "
                          "train/<class>/ with test/ or val/ beside it, or download the hot-dog set")
    if not shown.is_dir():
        raise FtcoreError(f"data path {shown} is a file, not a folder; pass the folder holding the class folders")
    check_val_fraction(val_fraction)
    real_root = real_root_of(shown)
    role_folders = _role_folders(real_root, shown)
    layout = layout_of(role_folders)
    if role_folders and "train" not in role_folders:
        have = ", ".join(f"{name}/" for name in role_folders.values())
        raise FtcoreError(f"data folder {shown} has {have} but no train/ folder; add train/<class>/ beside it, "
                          "or point at a folder of class folders")
    if "val" in role_folders and val_fraction:
        raise FtcoreError(f"data folder {shown} has its own {role_folders['val']}/ split, so nothing is held out "
                          "of train/; drop the validation share")
    if val_fraction is None:
        val_fraction = DEFAULT_VAL_FRACTION if layout in HOLDOUT_LAYOUTS else 0.0
    if layout in HOLDOUT_LAYOUTS and val_fraction == 0:
        raise FtcoreError(f"data folder {shown} has no test/ or val/ split, so some photos must be held out to "
                          "measure the model; give a validation share above 0 (e.g. 0.2)")

    folders = role_folders or {"train": ""}
    classes = {role: subfolders(real_root / folder, real_root) for role, folder in folders.items()}
    for role, names in classes.items():
        where = shown / folders[role]
        if len(names) < 2:
            raise FtcoreError(f"{where} has {len(names)} class folder(s); it needs at least two "
                              "(one subfolder of images per class)")
    train_classes = classes["train"]
    for role in ("val", "test"):
        if role not in classes or classes[role] == train_classes:
            continue
        extra = [name for name in classes[role] if name not in train_classes]
        if extra and set(train_classes) <= set(classes[role]):
            raise FtcoreError(f"{folders[role]}/ in {shown} has class folder {extra[0]!r} that train/ lacks; add "
                              f"it to train/ or remove it from {folders[role]}/")
        raise FtcoreError(f"train/ and {folders[role]}/ in {shown} have different class folders "
                          f"({train_classes} vs {classes[role]}); give both the same ones")

    samples: dict[str, list[tuple[str, int]]] = {}
    for role, folder in folders.items():
        listed = []
        for index, name in enumerate(train_classes):
            class_dir = real_root / folder / name
            photos = class_files(class_dir, real_root)
            if not photos:
                raise FtcoreError(f"class folder {shown / folder / name} holds no images "
                                  f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
            listed.append((index, class_dir, photos))
        if role == "train" and val_fraction:
            held = [(index, class_dir, hold_out(photos, class_dir, train_classes[index], val_fraction, split_seed))
                    for index, class_dir, photos in listed]
            samples["train"] = [(p, i) for (i, _, photos), (_, _, out) in zip(listed, held, strict=True)
                                for p in photos if p not in out]
            samples["val"] = [(p, i) for (i, _, photos), (_, _, out) in zip(listed, held, strict=True)
                              for p in photos if p in out]
        else:
            samples[role] = [(p, i) for i, _, photos in listed for p in photos]
    if "val" in samples and "val" not in folders:
        folders["val"] = folders["train"]
    ordered = {role: samples[role] for role in ROLES if role in samples}
    return DatasetSplits(str(real_root), layout, list(train_classes), ordered,
                         {role: folders[role] for role in ordered}, float(val_fraction), int(split_seed))


def looks_like_dataset(folder: Path) -> bool:
    """True when `folder` has split folders, or at least two visible subfolders holding photos."""
    real = real_root_of(folder)
    if _role_folders(real, folder):
        return True
    names = subfolders(real, real)
    return len(names) >= 2 and all(class_files(real / name, real) for name in names)


def find_dataset_root(folder: str | Path, max_depth: int = 3) -> Path:
    """The folder at or below `folder` (a few levels at most) that holds a dataset in any layout, checked."""
    frontier = [Path(folder)]
    for _ in range(max_depth + 1):
        for candidate in frontier:
            if looks_like_dataset(candidate):
                resolve_splits(candidate)
                return candidate
        frontier = [d for f in frontier for d in sorted(f.iterdir()) if d.is_dir() and not d.name.startswith(".")
                    and d.name != "__MACOSX" and inside(d, real_root_of(folder))]
    raise FtcoreError(f"no dataset found in {Path(folder).name}; zip a folder of <class>/ folders, or one holding "
                      "train/<class>/ with test/ or val/ beside it")


def class_key(name: str) -> str:
    """A class name as matched across datasets: Unicode NFC, lower case, without spaces, '-' or '_'
    (not_hotdog = Not-Hotdog)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", name).lower() if ch not in " -_")


def match_classes(model_classes: list[str], data_classes: list[str], root: str | Path) -> tuple[list[int], str]:
    """For each class of the data, the index of the model's class it is: equal names, else names equal up to case,
    spaces, '-' and '_'. Returns the mapping and a sentence naming the names matched that way ("" when all equal).
    Data whose classes are not the model's, by either rule, is refused."""
    if list(data_classes) == list(model_classes):
        return list(range(len(model_classes))), ""
    by_key = {class_key(name): i for i, name in enumerate(model_classes)}
    keys = [class_key(name) for name in data_classes]
    if (len(by_key) != len(model_classes) or len(data_classes) != len(model_classes)
            or sorted(keys) != sorted(by_key)):
        raise FtcoreError(f"data folder {root} has classes {', '.join(data_classes)} but the model was trained on "
                          f"{', '.join(model_classes)}; choose the data it was trained on")
    mapping = [by_key[key] for key in keys]
    renamed = [f"{name} is taken as {model_classes[i]}" for name, i in zip(data_classes, mapping, strict=True)
               if name != model_classes[i]]
    return mapping, "classes matched by name: " + ", ".join(renamed)
