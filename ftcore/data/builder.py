"""Builder: datasets made in the browser from uploaded and webcam photos, saved as <cache>/datasets/<name>/<class>/."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import FtcoreError
from ..util.paths import atomic_write, cache_dir, make_folder
from .images import UPLOAD_ADVICE, open_image
from .splits import class_key

BUILT_DATASETS_FOLDER = "datasets"  # under cache_dir()
# The formats kept byte for byte: every browser shows them and every trainer here decodes them.
PHOTO_SUFFIXES: dict[str, str] = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
MIN_CLASSES = 2
MAX_NAME_LENGTH = 64

# Some phones' photos open as MPO (a JPEG with extra frames after the first); their bytes are a JPEG to everyone.
_SUFFIX_BY_FORMAT = {**PHOTO_SUFFIXES, "MPO": ".jpg"}
_COUNTED_SUFFIXES = {*PHOTO_SUFFIXES.values(), ".jpeg"}
# Characters no folder name may hold on Linux, macOS or Windows, so a zipped dataset unpacks anywhere.
_FORBIDDEN_CHARACTERS = '/\\:<>"|?*'
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_NAME_ADVICE = "use letters, digits, spaces, '-' or '_'"


def datasets_dir() -> Path:
    """<cache>/datasets: where built datasets live."""
    return cache_dir() / BUILT_DATASETS_FOLDER


def check_name(name: str, what: str = "class name") -> str:
    """The name stripped, or an FtcoreError naming what makes it unusable as a folder name."""
    name = name.strip()
    if not name:
        raise FtcoreError(f"{what} is empty; {_NAME_ADVICE}")
    bad = next((c for c in name if c in _FORBIDDEN_CHARACTERS or unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        held = f"'{bad}'" if bad in _FORBIDDEN_CHARACTERS else f"the control character U+{ord(bad):04X}"
        raise FtcoreError(f"{what} {name!r} cannot be a folder name (it holds {held}); {_NAME_ADVICE}")
    if name.startswith("."):  # also '.' and '..'; hidden folders are skipped when datasets are read
        raise FtcoreError(f"{what} {name!r} cannot start with '.' (such folders are hidden); {_NAME_ADVICE}")
    if name.endswith("."):  # Windows drops a trailing '.', so the folder would come back under another name
        raise FtcoreError(f"{what} {name!r} cannot end with '.'; {_NAME_ADVICE}")
    if len(name) > MAX_NAME_LENGTH:
        raise FtcoreError(f"{what} {name!r} is {len(name)} characters long, more than the {MAX_NAME_LENGTH} "
                          "allowed; shorten it")
    if name.split(".")[0].strip().upper() in _WINDOWS_RESERVED:  # 'nul.x' is the NUL device there too
        raise FtcoreError(f"{what} {name!r} is a reserved device name on Windows; pick another name")
    return name


def _check_distinct(names: list[str]) -> list[str]:
    """The names, or an FtcoreError naming the first two that would be matched as one class."""
    seen: dict[str, str] = {}
    for name in names:
        if (other := seen.get(class_key(name))) is not None:
            raise FtcoreError(f"class names {other!r} and {name!r} would be one class (case, spaces, '-' and '_' "
                              "are ignored when matching); rename one of them")
        seen[class_key(name)] = name
    return names


def check_new_class(name: str, existing: list[str]) -> str:
    """A class name to add beside `existing` ones: usable as a folder name and not matched as one of them."""
    name = check_name(name)
    _check_distinct([*existing, name])
    return name


def check_class_names(names: list[str]) -> list[str]:
    """Stripped names: at least MIN_CLASSES, each a usable folder name, no two matched as one class."""
    if len(names) < MIN_CLASSES:
        raise FtcoreError(f"a dataset needs at least {MIN_CLASSES} classes, and this one has {len(names)}; "
                          "add another class")
    return _check_distinct([check_name(name) for name in names])


def _format_of(data: bytes) -> str | None:
    """PIL's name for the format of the bytes (read from the header only), or None when PIL knows none."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # PIL raises many types on hostile bytes (OSError, SyntaxError, struct.error, ...)
        return None


def _other_format(label: str, fmt: str) -> str:
    """The sentence refusing a photo of a format other than JPEG, PNG or WebP."""
    return f"{label} is {'an' if fmt[0] in 'AEIOU' else 'a'} {fmt}; {UPLOAD_ADVICE}"


def _photo_file_name(data: bytes, label: str) -> str:
    """photo_file_name, with `label` naming the photo in the FtcoreError for an unusable format."""
    fmt = _format_of(data)
    if fmt is None:
        raise FtcoreError(f"{label} is not a photo; {UPLOAD_ADVICE}")
    if fmt not in _SUFFIX_BY_FORMAT:
        raise FtcoreError(_other_format(label, fmt))
    return hashlib.sha1(data).hexdigest()[:20] + _SUFFIX_BY_FORMAT[fmt]


def photo_file_name(data: bytes) -> str:
    """<first 20 hex of sha1(data)><suffix of its format>: content-addressed, so a photo added twice is stored once."""
    return _photo_file_name(data, "the data")


@dataclass
class PhotoCheck:
    """One checked upload: `data` is the bytes to keep, or None with the one-sentence `error` saying why not."""

    name: str
    data: bytes | None
    error: str | None


def check_photos(files: list[tuple[str, bytes]]) -> list[PhotoCheck]:
    """Each (name, bytes) kept unchanged if it decodes as a JPEG, PNG or WebP, else refused with a sentence."""
    checks = []
    for name, data in files:
        try:
            fmt = _format_of(data)  # a known other format is named; unknown bytes get open_image's own sentence
            if fmt is not None and fmt not in _SUFFIX_BY_FORMAT:
                raise FtcoreError(_other_format(name or "the upload", fmt))
            open_image(data, name)  # decodes every byte: a truncated photo is refused now, not at training
            checks.append(PhotoCheck(name, data, None))
        except FtcoreError as e:
            checks.append(PhotoCheck(name, None, str(e)))
    return checks


@dataclass
class BuiltDataset:
    """A built dataset on disk and its photos per class (sorted by class name)."""

    name: str
    path: Path
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Photos in all classes together."""
        return sum(self.counts.values())


def _visible_folders(path: Path) -> list[Path]:
    """The visible subfolders (classes of a dataset, or datasets), sorted by name."""
    return sorted((p for p in path.iterdir() if not p.name.startswith(".") and p.is_dir()), key=lambda p: p.name)


def _count_photos(folder: Path) -> int:
    """Visible photo files in one class folder (a half-written `.name-*.part` file is hidden)."""
    return sum(1 for f in folder.iterdir()
               if not f.name.startswith(".") and f.suffix.lower() in _COUNTED_SUFFIXES and f.is_file())


def _built(path: Path) -> BuiltDataset:
    """The dataset in one folder, as it is on disk now."""
    return BuiltDataset(path.name, path, {c.name: _count_photos(c) for c in _visible_folders(path)})


def dataset_path(name: str) -> Path:
    """Where the built dataset of that (checked) name lives."""
    return datasets_dir() / check_name(name, "dataset name")


def list_built() -> list[BuiltDataset]:
    """Every built dataset, sorted by name; temporary `.building-*` folders are skipped."""
    root = datasets_dir()
    return [_built(p) for p in _visible_folders(root)] if root.is_dir() else []


def _plan(photos: dict[str, list[bytes]], classes: list[str], new: set[str]) -> dict[str, dict[str, bytes]]:
    """Class -> {file name: bytes}, refusing a new class with no photos and any photo of an unusable format."""
    plan = {}
    for cls, datas in zip(classes, photos.values(), strict=True):
        if not datas and cls in new:
            raise FtcoreError(f"class {cls!r} has no photos yet; add at least one, or remove the class")
        plan[cls] = {_photo_file_name(d, f"photo {i} of class {cls!r}"): d for i, d in enumerate(datas, 1)}
    return plan


def _write_photo(dest: Path, data: bytes) -> None:
    """Write one photo file; its class folder is made on the way."""
    with atomic_write(dest) as out:
        out.write(data)


def save_dataset(name: str, photos: dict[str, list[bytes]]) -> BuiltDataset:
    """Create a new dataset from class -> photo bytes, all at once: a refused or failed save leaves nothing."""
    path = dataset_path(name)
    classes = check_class_names(list(photos))
    plan = _plan(photos, classes, new=set(classes))
    exists = FtcoreError(f"a dataset named {path.name!r} already exists; pick another name, or add photos to it")
    if path.exists() or path.is_symlink():
        raise exists
    path.parent.mkdir(parents=True, exist_ok=True)
    building = make_folder(path.parent, ".building-")  # same file system: rename is atomic
    try:
        for cls, files in plan.items():
            for file_name, data in files.items():
                _write_photo(building / cls / file_name, data)
        try:
            os.rename(building, path)
        except OSError:
            if path.exists() or path.is_symlink():  # another tab saved the same name meanwhile
                raise exists from None
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return _built(path)


def add_to_dataset(name: str, photos: dict[str, list[bytes]]) -> BuiltDataset:
    """Add class -> photo bytes to a built dataset (new classes allowed); photos already there are skipped."""
    path = dataset_path(name)
    if not path.is_dir():
        raise FtcoreError(f"no built dataset named {path.name!r}; save it first")
    existing = {class_key(c.name): c.name for c in _visible_folders(path)}
    classes = _check_distinct([check_name(c) for c in photos])
    for cls in classes:
        folder = existing.get(class_key(cls), cls)
        if folder != cls:  # a second folder would split one class in two wherever names are matched
            raise FtcoreError(f"class name {cls!r} clashes with the existing class {folder!r}; use {folder!r} to "
                              "add photos to it, or pick another name")
    plan = _plan(photos, classes, new={c for c in classes if class_key(c) not in existing})
    for cls, files in plan.items():
        for file_name, data in files.items():
            if not (path / cls / file_name).exists():
                _write_photo(path / cls / file_name, data)
    return _built(path)


@dataclass
class PendingPhotos:
    """Photos gathered in the browser, class by class, until they are saved as a dataset."""

    classes: dict[str, dict[str, bytes]] = field(default_factory=dict)  # class -> {content file name: bytes}
    seen: set[str] = field(default_factory=set)  # ids of the uploads and webcam shots already taken in
    refused: list[str] = field(default_factory=list)  # one sentence per file that is not a usable photo

    def add_class(self, name: str) -> None:
        """A new, empty class (its name checked against the others)."""
        self.classes[check_new_class(name, list(self.classes))] = {}

    def take(self, name: str, files: list[tuple[str, str, bytes]]) -> None:
        """Add (id, file name, bytes) files to class `name`, each upload once and each photo once; a file that is
        not a photo is refused with its sentence and the others are kept."""
        new = [f for f in files if f[0] not in self.seen]
        for (upload_id, _, _), checked in zip(new, check_photos([(n, d) for _, n, d in new]), strict=True):
            self.seen.add(upload_id)
            if checked.error:
                self.refused.append(checked.error)
            else:
                self.classes[name][photo_file_name(checked.data)] = checked.data

    @property
    def waiting(self) -> int:
        """Photos not saved yet."""
        return sum(len(photos) for photos in self.classes.values())

    def ready(self, saved: dict[str, int]) -> bool:
        """True when the dataset would have MIN_CLASSES classes, each with a photo (`saved`: counts on disk)."""
        return len(self.classes) >= MIN_CLASSES and all(self.classes[n] or saved.get(n) for n in self.classes)

    def save(self, dataset: str, new: bool) -> BuiltDataset:
        """Write the photos: a new dataset of that name, or into the built one; the photos are then cleared."""
        photos = {name: list(found.values()) for name, found in self.classes.items()}
        built = save_dataset(dataset, photos) if new else add_to_dataset(dataset, photos)
        self.classes, self.refused = {}, []
        return built
