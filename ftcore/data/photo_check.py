"""The full check of a dataset's photos, kept on disk: each photo decoded once, its size and its bytes' hash.

A dataset's classes and counts come from its file listing in a moment (`summary.list_dataset`); decoding every photo
and hashing every file takes far longer (tens of seconds for a few thousand photos on a small CPU). So the pages
draw from the listing and this check runs after it, in the background, with its progress on the page. What it
finds is what only decoding can find: photos the decoder refuses (training would stop at them), the same bytes in
two splits (leakage), and every photo's size.

Each photo's facts are kept in `<cache>/photo-checks/<dataset>.json`, keyed by the file's path, size and
modification time, so a restarted server, a second view of the same dataset or a changed split re-reads only the
files that changed. This module is the only one that writes or reads that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, field
from pathlib import Path

from ..errors import FtcoreError
from ..util.paths import atomic_write, cache_dir
from .folders import dataset_key
from .images import image_size

CHECK_FORMAT = 1  # the facts file's version; a file of another version is read as empty
SAVE_EVERY = 200  # photos checked between saves of the facts file (a stopped check keeps its progress)
BROKEN_PHOTO_ADVICE = "remove or replace that file"  # what a broken photo's sentence tells the user to do


@dataclass(frozen=True)
class PhotoFacts:
    """What decoding one file found, with the size and modification time it was found at."""

    size: int
    mtime_ns: int
    width: int = 0
    height: int = 0
    sha1: str = ""
    problem: str = ""  # the decoder's sentence for a photo it refuses; empty for a good photo


def sha1_of(path: str | Path) -> str:
    """Hex sha1 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_facts(path: str, known: PhotoFacts | None = None) -> PhotoFacts:
    """The facts of the photo at `path`: `known` when the file's size and modification time are those it was
    found at, else the file decoded (JPEGs at 1/8 scale) and hashed."""
    stat = os.stat(path)
    if known is not None and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return known
    try:
        width, height = image_size(path, advice=BROKEN_PHOTO_ADVICE)
    except FtcoreError as e:
        return PhotoFacts(stat.st_size, stat.st_mtime_ns, problem=str(e))
    return PhotoFacts(stat.st_size, stat.st_mtime_ns, width, height, sha1_of(path))


class FactsFile:
    """One dataset's facts on disk: `<folder>/<hash of the dataset's folder>.json`, written whole and atomically."""

    def __init__(self, root: str | Path, folder: Path | None = None) -> None:
        self.root = str(Path(root).resolve())
        self.path = (folder or cache_dir() / "photo-checks") / f"{dataset_key(self.root)}.json"

    def load(self) -> dict[str, PhotoFacts]:
        """path -> facts as last saved; empty when there is no file, or one this version cannot read."""
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("format") != CHECK_FORMAT or saved.get("root") != self.root:
                return {}
            return {path: PhotoFacts(*row) for path, row in saved["photos"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def save(self, facts: dict[str, PhotoFacts]) -> None:
        """Write every photo's facts (a failed write is skipped: the check is then redone next time)."""
        payload = {"format": CHECK_FORMAT, "root": self.root, "photos": {p: astuple(f) for p, f in facts.items()}}
        try:
            with atomic_write(self.path) as out:
                out.write(json.dumps(payload).encode())
        except OSError:
            pass


@dataclass
class CheckFindings:
    """What the check found over every photo of a dataset."""

    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (width, height) of readable photos
    unreadable: list[str] = field(default_factory=list)  # photos the decoder refuses, in listing order
    reasons: dict[str, str] = field(default_factory=dict)  # unreadable path -> the decoder's sentence
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (first seen, copy) with the same bytes in
    # two splits
    reused: int = 0  # photos whose facts came from the file on disk


def check_photos(photos: Iterable[tuple[str, str]], facts_file: FactsFile,
                 progress: Callable[[int, int], None] | None = None,
                 stop: threading.Event | None = None) -> CheckFindings | None:
    """Check every (split, path) photo, reusing the facts on disk for unchanged files; None when `stop` is set
    first. `progress(done, total)` is called as photos are checked."""
    photos = list(photos)
    known = facts_file.load()
    facts: dict[str, PhotoFacts] = {}
    findings = CheckFindings()
    first_split_of: dict[str, tuple[str, str]] = {}  # sha1 -> (split, path) where first seen
    changed = 0
    for done, (split, path) in enumerate(photos, start=1):
        if stop is not None and stop.is_set():
            facts_file.save({**known, **facts})
            return None
        try:
            fact = read_facts(path, known.get(path))
        except OSError as e:  # gone or unreadable since the listing
            fact = PhotoFacts(0, 0, problem=f"{path} cannot be opened ({e.strerror or e}); {BROKEN_PHOTO_ADVICE}")
        findings.reused += fact is known.get(path)
        changed += fact is not known.get(path)
        facts[path] = fact
        if fact.problem:
            findings.unreadable.append(path)
            findings.reasons[path] = fact.problem
        else:
            findings.sizes[path] = (fact.width, fact.height)
            seen = first_split_of.setdefault(fact.sha1, (split, path))
            if seen[0] != split:
                findings.duplicates.append((seen[1], path))
        if changed and changed % SAVE_EVERY == 0:
            facts_file.save({**known, **facts})
        if progress is not None:
            progress(done, len(photos))
    if changed or set(known) != set(facts):
        facts_file.save(facts)  # only this dataset's current photos: removed files leave the file
    return findings


class PhotoCheck:
    """The check of one dataset in a background thread of its own; the pages poll `done_count`, `done`,
    `findings` and `error`."""

    def __init__(self, photos: Iterable[tuple[str, str]], facts_file: FactsFile) -> None:
        self.photos = list(photos)
        self.facts_file = facts_file
        self.done_count, self.total = 0, len(self.photos)
        self.findings: CheckFindings | None = None
        self.error = ""  # why the check ended without findings (it failed, or was stopped)
        self.started = time.monotonic()
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="photo-check", daemon=True)

    def start(self) -> PhotoCheck:
        """Begin checking; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        def progress(done: int, total: int) -> None:
            self.done_count = done

        try:
            self.findings = check_photos(self.photos, self.facts_file, progress, self._stop)
            if self.findings is None:
                self.error = "the photo check was stopped before it ended"
        except Exception as e:  # noqa: BLE001 - the page shows it; the server must not lose the thread silently
            self.error = f"the photo check stopped: {e}"
        self.seconds = time.monotonic() - self.started

    @property
    def done(self) -> bool:
        """True once the check has ended (found everything, failed, or was stopped)."""
        return not self._thread.is_alive() and self._thread.ident is not None

    def stop(self) -> None:
        """Ask the check to end after its current photo."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the check; True once it has ended."""
        self._thread.join(timeout)
        return self.done
