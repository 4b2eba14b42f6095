"""A dataset at a glance, for the explorer and `python -m ftcore data`: its layout, classes, counts and photos
from the file listing in a moment, and what the photo check found once it has ended."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .folders import class_files
from .photo_check import CheckFindings, FactsFile, check_photos
from .splits import BOOK_LAYOUT, resolve_splits

# From this ratio of the largest class's training photos to the smallest's, the summary warns: a model trained on
# such a split learns to favour the large class (measured in docs/benchmarks.md, "Unequal classes").
IMBALANCE_RATIO = 3.0


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

    def shares(self, split: str = "train") -> dict[str, float]:
        """Each class's share of a split's photos (0 for a split without photos)."""
        total = self.total(split)
        return {name: n / total if total else 0.0 for name, n in self.counts.get(split, {}).items()}

    def imbalance_message(self, split: str = "train") -> str | None:
        """One sentence where the largest class of the training photos has at least IMBALANCE_RATIO times the
        smallest's photos, naming both and what to do; None where the classes are near enough equal."""
        counts = self.counts.get(split, {})
        if len(counts) < 2 or not all(counts.values()):
            return None
        largest, smallest = max(counts, key=counts.get), min(counts, key=counts.get)
        ratio = counts[largest] / counts[smallest]
        if ratio < IMBALANCE_RATIO:
            return None
        return (f"the classes are unequal: {largest} has {counts[largest]} training photos, {ratio:.1f}x the "
                f"{counts[smallest]} of {smallest}, so a model learns to favour {largest}; add photos of "
                f"{smallest}, or balance the classes when training")

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
        shares = summary.shares(split)
        per_class = ", ".join(f"{c} {n} ({shares[c]:.0%})" for c, n in summary.counts[split].items())
        lines.append(f"{split}: {summary.total(split)} images ({per_class})")
    s = summary.size_stats()
    if s:
        lines.append(f"width: {s['width_min']}-{s['width_max']} px (median {s['width_median']:g}); "
                     f"height: {s['height_min']}-{s['height_max']} px (median {s['height_median']:g}); "
                     f"aspect ratio {s['aspect_min']:.2f}-{s['aspect_max']:.2f}")
    if summary.ignored:
        lines.append(f"ignored: {len(summary.ignored)} file(s) that are not photos, e.g. {summary.ignored[0]}")
    if imbalance := summary.imbalance_message():
        lines.append(f"warning: {imbalance}")
    if summary.duplicates:
        lines.append(f"leakage: {summary.leakage_message()}")
    if summary.unreadable:  # last: the one that stops training
        lines.append(f"unreadable: {summary.unreadable_message()}")
    return "\n".join(lines)
