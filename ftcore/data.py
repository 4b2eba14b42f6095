"""Data: the book's transforms, ImageFolder trees, the hot-dog download, and dataset summaries."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import statistics
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms

from .errors import FtcoreError
from .images import image_size, jpeg_thumbnail, open_image
from .paths import atomic_write, cache_dir, shared_dir

# The per-channel statistics of ImageNet that the book normalises with (and every torchvision model expects).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# d2l's data hub entry for the hot-dog set: 1000+1000 train, 400+400 test photos.
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"

SPLITS = ("train", "test")
# torchvision's ImageFolder extensions: what counts as an image in a class folder.
IMAGE_EXTENSIONS = datasets.folder.IMG_EXTENSIONS
# An uploaded or downloaded archive may not unpack to more than this, nor hold more entries (zip bombs).
MAX_EXTRACTED_BYTES = 4 * 1024**3
MAX_EXTRACTED_FILES = 100_000
# Folders that are never classes nor photo folders: hidden ones (.ipynb_checkpoints, .git) and macOS zip debris.
SKIPPED_FOLDERS = ("__MACOSX",)
BROKEN_PHOTO_ADVICE = "remove or replace that file"


# --------------------------------------------------------------------------------------------------
# Transforms: the book's train_augs and test_augs, with the 224/256 sizes scaled by image_size.


def resize_size_for(image_size: int) -> int:
    """The test-time resize that goes with a crop of `image_size` (the book's 256 for 224)."""
    return round(image_size * 256 / 224)


class TrainPreset:
    """The book's train_augs: RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize."""

    def __init__(self, image_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.transforms = transforms.Compose([
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(image)


class EvalPreset:
    """The book's test_augs: Resize([256, 256]) (aspect ratio not kept), CenterCrop(224), ToTensor, Normalize."""

    def __init__(self, image_size: int = 224, resize_size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.image_size = image_size
        self.resize_size = resize_size or resize_size_for(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.transforms = transforms.Compose([
            transforms.Resize([self.resize_size, self.resize_size]),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(self.mean, self.std),
        ])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(image)

    def to_dict(self) -> dict:
        """Plain description, stored in checkpoints so prediction preprocesses exactly as evaluation did."""
        return {"image_size": self.image_size, "resize_size": self.resize_size,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> EvalPreset:
        """Rebuild the preset that `to_dict` described."""
        return cls(int(d["image_size"]), int(d["resize_size"]), d["mean"], d["std"])


def to_uint8_image(tensor: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Undo Normalize and ToTensor: a CxHxW float tensor back to an HxWxC uint8 array for display."""
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return (tensor * std_t + mean_t).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def augmentation_preview(path: str | Path, image_size: int = 224, n: int = 6) -> tuple[list[np.ndarray], np.ndarray]:
    """One photo through the train transform `n` times (each a new random crop/flip) and the test transform once."""
    image = load_rgb(str(path))
    train = TrainPreset(image_size)
    return [to_uint8_image(train(image)) for _ in range(n)], to_uint8_image(EvalPreset(image_size)(image))


# --------------------------------------------------------------------------------------------------
# ImageFolder trees: ROOT/train/<class>/*, ROOT/test/<class>/*.


def load_rgb(path: str) -> Image.Image:
    """ImageFolder's loader, through the same decoder as uploads; a broken file raises an error naming it."""
    return open_image(path, advice=BROKEN_PHOTO_ADVICE)


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS) and not Path(path).name.startswith(".")


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_FOLDERS


def _inside(path: str | Path, real_root: Path) -> bool:
    """True when `path`, with every link resolved, lies within `real_root` (itself resolved)."""
    return Path(os.path.realpath(path)).is_relative_to(real_root)


def real_root_of(root: str | Path) -> Path:
    """The tree's root with links and `~` resolved: what "inside the tree" is measured against."""
    return Path(root).expanduser().resolve()


def class_folders(root: str | Path, split: str) -> list[str]:
    """Sorted class folder names of one split: real folders inside the tree, not hidden, no links leading out."""
    real_root = real_root_of(root)
    split_dir = real_root / split
    if not split_dir.is_dir() or not _inside(split_dir, real_root):
        return []
    return sorted(d.name for d in split_dir.iterdir()
                  if not _skipped(d.name) and d.is_dir() and _inside(d, real_root))


def class_files(class_dir: str | Path, real_root: Path, ignored: list[str] | None = None) -> list[str]:
    """Photos of one class folder and its subfolders, in ImageFolder's order (sorted folder, then name).

    Hidden files and folders are skipped; links to folders are not entered; a link to a file counts only
    when it points inside the tree; FIFOs and devices are never opened. Other files are added to `ignored`."""
    found = []
    for folder, dirs, names in os.walk(class_dir):  # top-down; links to folders are listed, not entered
        dirs[:] = [d for d in dirs if not _skipped(d)]
        found.append((folder, sorted(n for n in names if not n.startswith("."))))
    photos = []
    for folder, names in sorted(found):
        for name in names:
            path = os.path.join(folder, name)
            if _is_image(path) and os.path.isfile(path) and _inside(path, real_root):
                photos.append(path)
            elif ignored is not None:
                ignored.append(path)
    return photos


class TreeSplit(datasets.ImageFolder):
    """ImageFolder over one split with ftcore's rules: the classes `class_folders` finds and the photos
    `class_files` lists (so the checks, the explorer's counts and training agree), decoded by load_rgb."""

    def __init__(self, root: str | Path, split: str, transform=None):
        self.real_root = real_root_of(root)
        super().__init__(str(self.real_root / split), transform=transform, loader=load_rgb, is_valid_file=_is_image)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """The split's class folders (hidden ones and links leading out of the tree skipped)."""
        names = class_folders(self.real_root, Path(directory).name)
        if not names:
            raise FtcoreError(f"{directory} has no class folders; lay it out as <class>/*.jpg")
        return names, {name: i for i, name in enumerate(names)}

    def make_dataset(self, directory: str, class_to_idx: dict[str, int], extensions=None, is_valid_file=None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        """(path, class index) for every photo `class_files` lists."""
        return [(path, index) for name, index in sorted(class_to_idx.items())
                for path in class_files(Path(directory) / name, self.real_root)]


def check_image_folder(root: str | Path) -> list[str]:
    """Check that `root` is an ImageFolder tree with the same classes in train/ and test/; return them."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FtcoreError(f"data folder {root} does not exist; choose a folder holding train/<class>/ and "
                          "test/<class>/, or download the hot-dog set")
    if not root.is_dir():
        raise FtcoreError(f"data path {root} is a file, not a folder; pass a folder holding train/ and test/")
    real_root = real_root_of(root)
    missing = [s for s in SPLITS if not ((real_root / s).is_dir() and _inside(real_root / s, real_root))]
    if missing:
        raise FtcoreError(f"data folder {root} is not an ImageFolder tree: it has no {' or '.join(missing)}/ "
                          "subfolder; lay it out as train/<class>/*.jpg and test/<class>/*.jpg")
    classes = {s: class_folders(real_root, s) for s in SPLITS}
    for split, names in classes.items():
        if len(names) < 2:
            raise FtcoreError(f"{root / split} has {len(names)} class folder(s); it needs at least two "
                              "(one subfolder of images per class)")
    if classes["train"] != classes["test"]:
        raise FtcoreError(f"train/ and test/ in {root} have different class folders "
                          f"({classes['train']} vs {classes['test']}); give both the same ones")
    for split in SPLITS:
        for name in classes[split]:
            if not class_files(real_root / split / name, real_root):
                raise FtcoreError(f"class folder {root / split / name} holds no images "
                                  f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
    return classes["train"]


def limit_per_class(dataset: datasets.ImageFolder, limit: int | None) -> datasets.ImageFolder:
    """Keep the first `limit` images of each class (in ImageFolder's sorted order), in place."""
    if limit is None:
        return dataset
    if limit < 1:
        raise FtcoreError(f"--limit must be at least 1 (got {limit})")
    seen: Counter = Counter()
    kept = []
    for path, target in dataset.samples:
        if seen[target] < limit:
            kept.append((path, target))
            seen[target] += 1
    dataset.samples = dataset.imgs = kept
    dataset.targets = [t for _, t in kept]
    return dataset


def open_split(root: str | Path, split: str, transform=None, limit: int | None = None) -> TreeSplit:
    """The ImageFolder of one split (`train` or `test`), optionally cut to `limit` images per class."""
    return limit_per_class(TreeSplit(root, split, transform), limit)


# --------------------------------------------------------------------------------------------------
# Summary for the explorer page and `python -m ftcore data`.


@dataclass
class ImageRecord:
    """One photo of the tree: where it is, and its size in pixels."""

    split: str
    label: str
    path: str
    width: int
    height: int


@dataclass
class DatasetSummary:
    """Classes, counts per split and class, and every image's size."""

    root: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> number of images
    images: list[ImageRecord] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # photos the decoder refuses: training would stop at them
    reasons: dict[str, str] = field(default_factory=dict)  # unreadable path -> the decoder's sentence
    ignored: list[str] = field(default_factory=list)  # other files beside the photos (notes, links leading out)

    def total(self, split: str) -> int:
        """Number of images in one split."""
        return sum(self.counts[split].values())

    def unreadable_message(self) -> str | None:
        """One sentence counting the broken photos and naming one with its problem; None when there are none."""
        if not self.unreadable:
            return None
        first = self.unreadable[0]
        return (f"{len(self.unreadable)} photo(s) cannot be read and would stop training, e.g. "
                f"{self.reasons.get(first, first)}")

    def book_grid(self, n: int = 8) -> list[ImageRecord]:
        """The book's preview: train_imgs[i] for the first n (first class), then train_imgs[-i - 1] (last class)."""
        train = [r for r in self.images if r.split == "train"]  # ImageFolder's order: class, then file name
        return train[:n] + [train[-i - 1] for i in range(min(n, len(train)))]

    def size_stats(self) -> dict[str, float]:
        """Min / median / max of width, height and aspect ratio (width / height) over all images."""
        if not self.images:
            return {}
        widths = [r.width for r in self.images]
        heights = [r.height for r in self.images]
        ratios = [r.width / r.height for r in self.images]
        stats = {}
        for name, values in (("width", widths), ("height", heights), ("aspect", ratios)):
            stats[f"{name}_min"] = min(values)
            stats[f"{name}_median"] = statistics.median(values)
            stats[f"{name}_max"] = max(values)
        return stats


def summarize(root: str | Path) -> DatasetSummary:
    """Scan an ImageFolder tree: classes, counts, each photo's size, and every photo training would stop at.

    Every photo is decoded (JPEGs at 1/8 scale, cheap) by the decoder training uses, so a broken one is
    found here, named, before a run meets it."""
    classes = check_image_folder(root)
    root = real_root_of(root)
    counts: dict[str, dict[str, int]] = {}
    images, unreadable, reasons, ignored = [], [], {}, []
    for split in SPLITS:
        counts[split] = {}
        for name in classes:
            files = class_files(root / split / name, root, ignored)
            counts[split][name] = len(files)
            for f in files:
                try:
                    width, height = image_size(f, advice=BROKEN_PHOTO_ADVICE)
                except FtcoreError as e:
                    unreadable.append(f)
                    reasons[f] = str(e)
                    continue
                images.append(ImageRecord(split, name, f, width, height))
    return DatasetSummary(str(root), classes, counts, images, unreadable, reasons, ignored)


def format_summary(summary: DatasetSummary) -> str:
    """Plain-text summary, as `python -m ftcore data` prints it."""
    lines = [f"data: {summary.root}", f"classes: {', '.join(summary.classes)}"]
    for split in SPLITS:
        per_class = ", ".join(f"{c} {n}" for c, n in summary.counts[split].items())
        lines.append(f"{split}: {summary.total(split)} images ({per_class})")
    s = summary.size_stats()
    if s:
        lines.append(f"width: {s['width_min']}-{s['width_max']} px (median {s['width_median']:g}); "
                     f"height: {s['height_min']}-{s['height_max']} px (median {s['height_median']:g}); "
                     f"aspect ratio {s['aspect_min']:.2f}-{s['aspect_max']:.2f}")
    if summary.ignored:
        lines.append(f"ignored: {len(summary.ignored)} file(s) that are not photos, e.g. {summary.ignored[0]}")
    if summary.unreadable:
        lines.append(f"unreadable: {summary.unreadable_message()}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Finding and fetching data.


def default_hotdog_dir() -> Path:
    """Where `download_hotdog` puts the set: <cache>/data/hotdog."""
    return cache_dir() / "data" / "hotdog"


def is_image_folder(root: str | Path) -> bool:
    """True when `root` passes `check_image_folder`."""
    try:
        check_image_folder(root)
    except FtcoreError:
        return False
    return True


def data_candidates() -> list[tuple[str, Path]]:
    """Places the hot-dog data may already be, in the order they are tried, with a label each."""
    candidates = []
    if os.environ.get("FTCORE_DATA"):
        candidates.append(("$FTCORE_DATA", Path(os.environ["FTCORE_DATA"]).expanduser()))
    candidates.append(("download cache", default_hotdog_dir()))
    shared = shared_dir()
    if shared is not None:
        candidates.append(("shared folder beside the checkout", shared / "data" / "hotdog"))
    return candidates


def find_data() -> Path | None:
    """The first candidate folder that is a usable ImageFolder tree, or None."""
    for _, path in data_candidates():
        if is_image_folder(path):
            return path
    return None


def sha1_of(path: str | Path) -> str:
    """Hex sha1 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: Path, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 30.0) -> Path:
    """Download `url` to `dest` (atomically), calling progress(bytes_done, bytes_total)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if total is not None and done != total:
                raise OSError(f"connection closed after {done} of {total} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FtcoreError(f"could not download {url} ({reason}); check the internet connection, or fetch "
                          "the file by hand and use its unpacked folder as the data") from None
    return dest


def binary_size(n: int) -> str:
    """A byte count as people read it: 3.0 MiB, 4.0 GiB."""
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def safe_extract(archive: str | Path | io.BytesIO, dest: str | Path, name: str | None = None) -> Path:
    """Unpack a zip into `dest`, refusing absolute paths, `..`, links, too many entries and archives that
    unpack too large; when unpacking fails half-way, whatever it wrote into a new `dest` is removed."""
    dest = Path(dest)
    name = name or Path(str(archive)).name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FtcoreError(f"{name} is not a readable zip archive ({e}); upload or download it again") from None
    with zf:
        entries = zf.infolist()
        if len(entries) > MAX_EXTRACTED_FILES:
            raise FtcoreError(f"{name} holds {len(entries)} entries, more than the {MAX_EXTRACTED_FILES} allowed; "
                              "use a local folder instead")
        total = 0
        for info in entries:
            entry = PurePosixPath(info.filename.replace("\\", "/"))
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if entry.is_absolute() or ".." in entry.parts or ":" in info.filename or is_link:
                raise FtcoreError(f"the archive holds an unsafe entry {info.filename!r} (absolute path, '..' "
                                  "or link); nothing was extracted, so rebuild the zip from the folder itself")
            total += info.file_size  # zipfile stops each entry at its declared size, so the sum is a real cap
        if total > MAX_EXTRACTED_BYTES:
            raise FtcoreError(f"the archive would unpack to {binary_size(total)}, more than the "
                              f"{binary_size(MAX_EXTRACTED_BYTES)} allowed; use a local folder instead")
        created = not dest.exists()
        try:
            dest.mkdir(parents=True, exist_ok=True)
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError,
                zlib.error) as e:  # damaged entries, encryption, unknown compression, a full disk
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            raise FtcoreError(f"{name} could not be unpacked ({type(e).__name__}: {str(e)[:100]}); nothing was "
                              "kept, so check the archive (and the free disk space) and try again") from None
    return dest


def find_image_folder_root(folder: str | Path, max_depth: int = 3) -> Path:
    """The folder at or below `folder` (a few levels at most) that holds train/ and test/."""
    folder = Path(folder)
    frontier = [folder]
    for _ in range(max_depth + 1):
        for candidate in frontier:
            if all((candidate / s).is_dir() for s in SPLITS):
                check_image_folder(candidate)
                return candidate
        frontier = [d for f in frontier for d in sorted(f.iterdir())
                    if d.is_dir() and not d.name.startswith((".", "__MACOSX"))]
    raise FtcoreError(f"no folder with train/ and test/ subfolders found in {folder.name}; "
                      "zip a folder laid out as train/<class>/*.jpg and test/<class>/*.jpg")


def extract_image_folder_zip(archive: str | Path, dest: str | Path) -> Path:
    """Safely unpack a zipped ImageFolder tree into `dest` and return the folder holding train/ and test/."""
    return find_image_folder_root(safe_extract(archive, dest))


def unpack_uploaded_zip(data: bytes) -> Path:
    """Unpack an uploaded zip of an ImageFolder tree under the cache (once per content) and return its root.

    The archive is read from memory; only its checked contents reach the disk, through a temporary folder
    that becomes <cache>/uploads/<sha1> once complete, so a refused or broken upload leaves nothing behind."""
    uploads = cache_dir() / "uploads"
    dest = uploads / hashlib.sha1(data).hexdigest()[:20]
    if not dest.exists():
        uploads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=uploads, prefix=".extract-") as tmp:
            safe_extract(io.BytesIO(data), Path(tmp) / "tree", name="the uploaded zip")
            try:
                (Path(tmp) / "tree").rename(dest)
            except OSError:
                if not dest.is_dir():  # not another tab that unpacked the same upload first
                    raise FtcoreError(f"could not store the unpacked upload in {uploads}; check that it is "
                                      "writable") from None
    try:
        return find_image_folder_root(dest)
    except FtcoreError:
        shutil.rmtree(dest, ignore_errors=True)  # not a dataset: keep no copy of it
        raise


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


def thumbnail_bytes(path: str | Path, size: int = 160) -> bytes:
    """A JPEG thumbnail (longest side `size`) of one dataset photo."""
    return jpeg_thumbnail(load_rgb(str(path)), size)


def download_hotdog(root: str | Path | None = None, url: str = HOTDOG_URL, sha1: str = HOTDOG_SHA1,
                    progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch d2l's hotdog.zip (sha1-checked), unpack it safely into `root`, and return `root`."""
    root = Path(root).expanduser() if root else default_hotdog_dir()
    if is_image_folder(root):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):  # never overwrite what the user has
        raise FtcoreError(f"{root} already exists and is not an ImageFolder tree; download into a new or "
                          "empty folder")
    archive = cache_dir() / "downloads" / "hotdog.zip"
    if not archive.exists() or sha1_of(archive) != sha1:
        fetch(url, archive, progress)
        actual = sha1_of(archive)
        if actual != sha1:
            archive.unlink(missing_ok=True)
            raise FtcoreError(f"downloaded hotdog.zip has sha1 {actual}, expected {sha1}; "
                              "the download was damaged, so run it again")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".extract-") as tmp:
        found = extract_image_folder_zip(archive, tmp)
        try:
            if root.is_dir():
                root.rmdir()  # empty, checked above
            found.rename(root)
        except OSError:
            if not is_image_folder(root):  # not another download that finished first
                raise FtcoreError(f"could not move the unpacked photos into {root}; check that it is "
                                  "writable") from None
    return root
