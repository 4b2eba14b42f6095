"""What the check of a dataset's photos found, as data: the command line's JSON, and the file the app reads
(`<cache>/photo-checks/<dataset>-<network>.json`, written whole when a check ends). This module is the only one that
writes or reads that file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..data.folders import dataset_key
from ..util.paths import atomic_write, cache_dir

REPORT_FORMAT = 1  # the file's version; a file of another version is read as no report


@dataclass(frozen=True)
class PhotoRow:
    """One photo the check read: where it is, how it is filed, and where it sits on the map."""

    path: str  # relative to the dataset folder, with '/'
    split: str
    label: str
    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True)
class SuspectRow:
    """A photo whose label looks wrong, with the label the check suggests."""

    path: str
    given: str
    suggested: str
    score: float  # label quality from 0 to 1: the lower, the more suspect
    confidence: float  # the classifier's probability of the suggested label


@dataclass(frozen=True)
class DuplicateRow:
    """Photos that are one photo; a leak when they sit in two splits."""

    paths: list[str]
    splits: list[str]
    leak: bool
    similarity: float  # the lowest cosine of the networks' vectors between the group's photos


@dataclass
class CheckReport:
    """Everything one check found in one dataset with one network."""

    root: str
    arch: str
    seconds: float
    classes: list[str]
    photos: list[PhotoRow] = field(default_factory=list)
    suspects: list[SuspectRow] = field(default_factory=list)  # most suspect first
    duplicates: list[DuplicateRow] = field(default_factory=list)  # leaks first
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> why the decoder refuses it (not checked)

    @property
    def leaked(self) -> set[str]:
        """The held-out photos (val or test) that also sit in another split."""
        return {p for d in self.duplicates if d.leak for p, s in zip(d.paths, d.splits, strict=True) if s != "train"}

    def summary(self) -> str:
        """One line: what was checked and found."""
        leaks = sum(d.leak for d in self.duplicates)
        return (f"{len(self.photos)} photos checked with {self.arch} in {self.seconds:.1f} s: "
                f"{len(self.suspects)} label suspect(s), {leaks} leak(s) between splits, "
                f"{len(self.duplicates) - leaks} duplicate group(s) within a split")

    def to_json(self) -> dict:
        """The command line's JSON: photos, seconds, suspects and duplicates, paths relative to the dataset."""
        return {"photos": len(self.photos), "seconds": round(self.seconds, 2),
                "suspects": [{k: v for k, v in asdict(s).items() if k != "confidence"} for s in self.suspects],
                "duplicates": [asdict(d) for d in self.duplicates]}

    def to_dict(self) -> dict:
        """Everything, as the report file holds it."""
        return {"format": REPORT_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> CheckReport:
        """Rebuild a report written by `to_dict`."""
        return cls(root=d["root"], arch=d["arch"], seconds=float(d["seconds"]), classes=list(d["classes"]),
                   photos=[PhotoRow(**p) for p in d["photos"]], suspects=[SuspectRow(**s) for s in d["suspects"]],
                   duplicates=[DuplicateRow(**g) for g in d["duplicates"]], unreadable=dict(d["unreadable"]))


def report_path(root: str | Path, arch: str) -> Path:
    """Where the last check of a dataset with a network is kept."""
    return cache_dir() / "photo-checks" / f"{dataset_key(root)}-{arch}.json"


def save_report(report: CheckReport) -> Path:
    """Write the report file of the report's dataset and network."""
    path = report_path(report.root, report.arch)
    with atomic_write(path) as out:
        out.write(json.dumps(report.to_dict()).encode())
    return path


def load_report(root: str | Path, arch: str) -> CheckReport | None:
    """The last check of a dataset with a network; None when there is none this version reads."""
    try:
        d = json.loads(report_path(root, arch).read_text())
        return CheckReport.from_dict(d) if d.get("format") == REPORT_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def latest_arch(root: str | Path) -> str | None:
    """The network of the newest check of a dataset; None when it was never checked."""
    found = sorted((cache_dir() / "photo-checks").glob(f"{dataset_key(root)}-*.json"),
                   key=lambda path: path.stat().st_mtime_ns)
    return found[-1].stem.split("-", 1)[1] if found else None
