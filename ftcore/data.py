"""Data: the book's transforms, one split of a dataset as a map-style dataset, summaries, and the hot-dog download.

It imports torch and torchvision only where a transform or a tensor needs them: the pages list and summarise a
dataset before torch has loaded.
"""

from __future__ import annotations

import dataclasses
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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import FtcoreError
from .folders import class_files
from .images import jpeg_thumbnail, open_image
from .paths import atomic_write, cache_dir, shared_dir
from .photo_check import BROKEN_PHOTO_ADVICE, CheckFindings, FactsFile, check_photos, sha1_of
from .splits import BOOK_LAYOUT, ROLES, DatasetSplits, find_dataset_root, resolve_splits

if TYPE_CHECKING:
    import torch

# The per-channel statistics of ImageNet that the book normalises with (and every torchvision model expects).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# d2l's data hub entry for the hot-dog set: 1000+1000 train, 400+400 test photos.
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"

SPLITS = ROLES  # train, val, test: every split a dataset folder may have
# An uploaded or downloaded archive may not unpack to more than this, nor hold more entries (zip bombs).
MAX_EXTRACTED_BYTES = 4 * 1024**3
MAX_EXTRACTED_FILES = 100_000


# --------------------------------------------------------------------------------------------------
# Transforms: the book's train_augs and test_augs, with the 224/256 sizes scaled by image_size.


def resize_size_for(image_size: int) -> int:
    """The test-time resize that goes with a crop of `image_size` (the book's 256 for 224)."""
    return round(image_size * 256 / 224)


class TrainPreset:
    """The book's train_augs: RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize."""

    def __init__(self, image_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        from torchvision import transforms

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
        from torchvision import transforms

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
    import torch

    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return (tensor * std_t + mean_t).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def augmentation_preview(path: str | Path, image_size: int = 224, n: int = 6) -> tuple[list[np.ndarray], np.ndarray]:
    """One photo through the train transform `n` times (each a new random crop/flip) and the test transform once."""
    image = load_rgb(str(path))
    train = TrainPreset(image_size)
    return [to_uint8_image(train(image)) for _ in range(n)], to_uint8_image(EvalPreset(image_size)(image))


# --------------------------------------------------------------------------------------------------
# One split of a dataset folder, served as torchvision's ImageFolder serves it.


def load_rgb(path: str) -> Image.Image:
    """ImageFolder's loader, through the same decoder as uploads; a broken file raises an error naming it."""
    return open_image(path, advice=BROKEN_PHOTO_ADVICE)


class PhotoSplit:
    """The photos of one role (train, val or test) as ImageFolder serves them: (transform(photo), class index),
    with `classes`, `samples` and `targets` as ImageFolder has them, decoded by load_rgb. A map-style dataset
    (`__len__` and `__getitem__`, all a DataLoader needs), so that listing a dataset imports no torch."""

    def __init__(self, splits: DatasetSplits, role: str, transform: Callable | None = None):
        if role not in splits.samples:
            raise FtcoreError(f"data folder {splits.root} has no {role} split (layout {splits.layout}); choose "
                              f"one of {', '.join(splits.roles)}")
        self.root, self.role, self.transform, self.loader = splits.root, role, transform, load_rgb
        self.classes = list(splits.classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = list(splits.samples[role])
        self.imgs = self.samples
        self.targets = [target for _, target in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple:
        path, target = self.samples[index]
        image = self.loader(path)
        return (self.transform(image) if self.transform is not None else image), target


def check_image_folder(root: str | Path, val_fraction: float | None = None, split_seed: int = 0) -> list[str]:
    """Check that `root` is a dataset in one of the layouts (splits.LAYOUTS) with usable splits; return its classes."""
    return resolve_splits(root, val_fraction, split_seed).classes


def limit_per_class(dataset, limit: int | None):
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


def split_photos(splits: DatasetSplits, role: str, transform: Callable | None = None,
                 limit: int | None = None) -> PhotoSplit:
    """The photos of one role of resolved splits, optionally cut to `limit` per class."""
    return limit_per_class(PhotoSplit(splits, role, transform), limit)


def open_split(root: str | Path, split: str, transform: Callable | None = None, limit: int | None = None,
               val_fraction: float | None = None, split_seed: int = 0) -> PhotoSplit:
    """The photos of one split (`train`, `val` or `test`) of a dataset folder, optionally cut to `limit` per class."""
    return split_photos(resolve_splits(root, val_fraction, split_seed), split, transform, limit)


# --------------------------------------------------------------------------------------------------
# Summary for the explorer page and `python -m ftcore data`.


@dataclass
class ImageRecord:
    """One photo of the dataset: its split, class, where it is, and its size in pixels."""

    split: str
    label: str
    path: str
    width: int
    height: int


@dataclass
class DatasetSummary:
    """Layout, classes, counts per split and class and every photo, from the file listing; after the photo check
    (`checked`), also every photo's size, the broken ones and the leakage."""

    root: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> number of images, in ROLES order
    images: list[ImageRecord] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # photos the decoder refuses: training would stop at them
    reasons: dict[str, str] = field(default_factory=dict)  # unreadable path -> the decoder's sentence
    ignored: list[str] = field(default_factory=list)  # other files beside the photos (notes, links leading out)
    layout: str = BOOK_LAYOUT  # one of splits.LAYOUTS
    split_note: str = ""  # DatasetSplits.describe(): the layout and where validation comes from
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # same bytes in two splits: leakage
    val_fraction: float = 0.0  # share of each class held out of train for validation (0: none)
    checked: bool = False  # every photo decoded: sizes, unreadable and duplicates are known

    def with_findings(self, findings: CheckFindings) -> DatasetSummary:
        """This listing with what the photo check found: sizes, the broken photos and the leakage."""
        images = [dataclasses.replace(r, width=findings.sizes[r.path][0], height=findings.sizes[r.path][1])
                  for r in self.images if r.path in findings.sizes]
        return dataclasses.replace(self, images=images, unreadable=list(findings.unreadable),
                                   reasons=dict(findings.reasons), duplicates=list(findings.duplicates),
                                   checked=True)

    @property
    def splits(self) -> list[str]:
        """The splits this dataset has, in ROLES order."""
        return list(self.counts)

    @property
    def heldout(self) -> str:
        """The split per-epoch figures use: val where there is one, else test."""
        return "val" if "val" in self.counts else "test"

    def total(self, split: str) -> int:
        """Number of images in one split (0 for a split the dataset does not have)."""
        return sum(self.counts.get(split, {}).values())

    def totals_text(self) -> str:
        """"2000 train / 800 test": each split's size, as the captions and the CLI say it."""
        return " / ".join(f"{self.total(split)} {split}" for split in self.splits)

    def unreadable_message(self) -> str | None:
        """One sentence counting the broken photos and naming one with its problem; None when there are none."""
        if not self.unreadable:
            return None
        first = self.unreadable[0]
        return (f"{len(self.unreadable)} photo(s) cannot be read and would stop training, e.g. "
                f"{self.reasons.get(first, first)}")

    def leakage_message(self) -> str | None:
        """One sentence on photos whose bytes sit in two splits; None when there are none."""
        if not self.duplicates:
            return None
        first, second = self.duplicates[0]
        return (f"{len(self.duplicates)} photo(s) sit in two splits with the same bytes, e.g. {first} and {second}: "
                "the model is then measured on photos it trained on, so remove one copy of each")

    def photos(self) -> list[tuple[str, str]]:
        """(split, path) of every photo the listing found, for the photo check."""
        return [(r.split, r.path) for r in self.images]

    def book_grid(self, n: int = 8) -> list[ImageRecord]:
        """The book's preview: train_imgs[i] for the first n (first class), then train_imgs[-i - 1] (last class)."""
        train = [r for r in self.images if r.split == "train"]  # ImageFolder's order: class, then file name
        return train[:n] + [train[-i - 1] for i in range(min(n, len(train)))]

    def size_stats(self) -> dict[str, float]:
        """Min / median / max of width, height and aspect ratio (width / height) over all images (none before the
        photo check)."""
        if not self.checked or not self.images:
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


def list_dataset(root: str | Path, val_fraction: float | None = None, split_seed: int = 0) -> DatasetSummary:
    """A dataset from its file listing alone, in a moment: layout, classes, counts and every photo (sizes unknown
    until the photo check)."""
    splits = resolve_splits(root, val_fraction, split_seed)
    real_root = Path(splits.root)
    ignored: list[str] = []
    for folder in dict.fromkeys(splits.folders.values()):  # files beside the photos, once per folder
        for name in splits.classes:
            class_files(real_root / folder / name, real_root, ignored)
    images = [ImageRecord(split, splits.classes[index], path, 0, 0)
              for split in splits.roles for path, index in splits.samples[split]]
    return DatasetSummary(str(real_root), splits.classes, {split: splits.counts(split) for split in splits.roles},
                          images, ignored=ignored, layout=splits.layout, split_note=splits.describe(),
                          val_fraction=splits.val_fraction)


def summarize(root: str | Path, val_fraction: float | None = None, split_seed: int = 0) -> DatasetSummary:
    """Scan a dataset: its listing, then the photo check (photo_check): each photo's size, photos shared by two
    splits, and every photo training would stop at.

    Every photo is decoded (JPEGs at 1/8 scale, cheap) by the decoder training uses, so a broken one is
    found here, named, before a run meets it; unchanged files reuse what the last check found."""
    listing = list_dataset(root, val_fraction, split_seed)
    return listing.with_findings(check_photos(listing.photos(), FactsFile(listing.root)))


def format_summary(summary: DatasetSummary) -> str:
    """Plain-text summary, as `python -m ftcore data` prints it."""
    lines = [f"data: {summary.root}", summary.split_note, f"classes: {', '.join(summary.classes)}"]
    for split in summary.splits:
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
    if summary.duplicates:
        lines.append(f"leakage: {summary.leakage_message()}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Finding and fetching data.


def default_hotdog_dir() -> Path:
    """Where `download_hotdog` puts the set: <cache>/data/hotdog."""
    return cache_dir() / "data" / "hotdog"


def is_image_folder(root: str | Path) -> bool:
    """True when `root` is a dataset in any layout that passes `check_image_folder`."""
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


def extract_image_folder_zip(archive: str | Path, dest: str | Path) -> Path:
    """Safely unpack a zipped dataset into `dest` and return the folder that holds it (any layout)."""
    return find_dataset_root(safe_extract(archive, dest))


def unpack_uploaded_zip(data: bytes) -> Path:
    """Unpack an uploaded zip of a dataset (any layout) under the cache (once per content) and return its root.

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
        return find_dataset_root(dest)
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
