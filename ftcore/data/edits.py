"""A dataset's edit log: the relabels, exclusions and "looks right" marks a person made, kept beside the photos and
never in them. The lab never moves, renames or deletes a user's photo; training and the export read the log.

One log per dataset folder and person: `<cache>/edits/<dataset>/<owner>.jsonl` (`shared.jsonl` where runs are
shared, and for the command line). Each edit is one JSON line, appended under a file lock the moment it is made, so
two tabs never lose each other's edits and a restart loses nothing. Undo is an edit too (it names the edit it takes
back), so the log shows everything that happened. A run trains on a frozen copy of the edits in force
(`applied-<sha256>.json`, named by its content), so a later edit never changes a run already started. This module is
the only one that writes or reads those files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from ..errors import FtcoreError
from ..util.paths import NEW_FILE_MODE, atomic_write, cache_dir
from .folders import dataset_key

SHARED_LOG = "shared"  # the log's name where edits are not one person's: a shared server, the command line
APPLIED_PREFIX = "applied-"  # a frozen copy of the edits a run trained with: applied-<sha256[:16]>.json


class EditKind(StrEnum):
    """What one line of the log does."""

    RELABEL = "relabel"  # the photo belongs to class `to`
    EXCLUDE = "exclude"  # leave the photo out of training and measuring
    KEEP = "keep"  # the photo's label looks right: not a suspect any more, and any earlier edit of it is void
    UNDO = "undo"  # take back the edit numbered `undoes`


@dataclass(frozen=True)
class Edit:
    """One line of the log; `seq` is its line number from 1."""

    seq: int
    kind: EditKind
    path: str = ""  # the photo, relative to the dataset folder, with '/' (empty for undo)
    to: str = ""  # the class of a relabel
    undoes: int = 0  # the edit an undo takes back
    at: float = 0.0  # when it was made (seconds since the epoch)

    def text(self) -> str:
        """One line a person reads: "3. relabel train/a/x.jpg as b"."""
        what = {EditKind.RELABEL: f"relabel {self.path} as {self.to}", EditKind.EXCLUDE: f"exclude {self.path}",
                EditKind.KEEP: f"{self.path} looks right", EditKind.UNDO: f"undo edit {self.undoes}"}[self.kind]
        return f"{self.seq}. {what}"


@dataclass
class Edits:
    """The edits in force: the log folded, undone edits left out."""

    relabeled: dict[str, str] = field(default_factory=dict)  # photo -> the class it belongs to
    excluded: set[str] = field(default_factory=set)  # photos left out
    kept: set[str] = field(default_factory=set)  # photos marked as looking right

    @property
    def empty(self) -> bool:
        """True when training on these edits is training on the folder as it is."""
        return not self.relabeled and not self.excluded

    def digest(self) -> str:
        """sha256 of what changes training (relabels and exclusions), the same for the same edits in any order."""
        canonical = json.dumps({"relabel": sorted(self.relabeled.items()), "exclude": sorted(self.excluded)})
        return hashlib.sha256(canonical.encode()).hexdigest()

    def summary(self) -> dict:
        """What a run records of the edits it trained with: {"relabeled": N, "excluded": M, "sha256": ...}."""
        return {"relabeled": len(self.relabeled), "excluded": len(self.excluded), "sha256": self.digest()}

    def touched(self) -> set[str]:
        """Every photo an edit in force names."""
        return set(self.relabeled) | self.excluded | self.kept


NO_EDITS = {"relabeled": 0, "excluded": 0, "sha256": None}  # the record of a run on the folder as it is


def fold(log: list[Edit]) -> Edits:
    """The edits in force after `log`: for each photo its last edit not undone."""
    undone = {e.undoes for e in log if e.kind == EditKind.UNDO}
    last: dict[str, Edit] = {}
    for e in log:
        if e.kind != EditKind.UNDO and e.seq not in undone:
            last[e.path] = e
    edits = Edits()
    for path, e in last.items():
        if e.kind == EditKind.RELABEL:
            edits.relabeled[path] = e.to
        elif e.kind == EditKind.EXCLUDE:
            edits.excluded.add(path)
        else:
            edits.kept.add(path)
    return edits


def last_undoable(log: list[Edit]) -> Edit | None:
    """The newest edit that is not an undo and not undone yet: what Undo takes back."""
    undone = {e.undoes for e in log if e.kind == EditKind.UNDO}
    return next((e for e in reversed(log) if e.kind != EditKind.UNDO and e.seq not in undone), None)


def edits_dir(root: str | Path) -> Path:
    """Where a dataset folder's logs and frozen edits are kept."""
    return cache_dir() / "edits" / dataset_key(root)


def _parse(seq: int, line: bytes) -> Edit:
    """One line of the log as an Edit; ValueError for a line that is not one."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise ValueError("not an object")
    edit = Edit(seq=seq, kind=EditKind(d["kind"]), path=str(d.get("path", "")), to=str(d.get("to", "")),
                undoes=int(d.get("undoes", 0)), at=float(d.get("at", 0.0)))
    if (edit.kind == EditKind.UNDO) != (edit.path == "") or (edit.kind == EditKind.RELABEL) != (edit.to != ""):
        raise ValueError("fields do not fit its kind")
    return edit


def set_aside(path: Path) -> Path | None:
    """Move a damaged log to a name of its own beside it (`<name>.damaged-<time>.jsonl`), never over another file;
    None where another reader has just moved it."""
    while True:
        aside = path.with_name(f"{path.stem}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
                               ".jsonl")
        try:
            os.link(path, aside)  # fails where the name is taken, unlike a rename
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        path.unlink(missing_ok=True)
        return aside


class EditLog:
    """One person's edit log of one dataset folder."""

    def __init__(self, root: str | Path, owner: str | None = None) -> None:
        self.root = Path(root)
        self.path = edits_dir(root) / f"{owner or SHARED_LOG}.jsonl"

    def _open(self, flags: int) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, flags | os.O_CREAT, NEW_FILE_MODE)

    def _read_locked(self, handle: int) -> list[Edit]:
        """Every edit of the open log; a damaged log is moved aside (never overwritten) and an FtcoreError says so."""
        with open(handle, "rb", closefd=False) as f:
            f.seek(0)
            lines = f.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        log = []
        for number, line in enumerate(lines, start=1):
            try:
                log.append(_parse(number, line))
            except (ValueError, KeyError, TypeError) as e:
                aside = set_aside(self.path)
                where = f"as {aside}" if aside else f"beside {self.path}"
                raise FtcoreError(f"the edit log of {self.root} is damaged at line {number} ({e}); it was set aside "
                                  f"{where} with nothing in it lost, and edits start again from none") from None
        return log

    def read(self) -> list[Edit]:
        """Every edit so far, in order (empty when none was made)."""
        if not self.path.is_file():
            return []
        handle = self._open(os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)
            return self._read_locked(handle)
        finally:
            os.close(handle)

    def edits(self) -> Edits:
        """The edits in force."""
        return fold(self.read())

    def append(self, kind: EditKind, path: str = "", to: str = "", undo: bool = False) -> Edit:
        """Write one edit at the end of the log, under its lock, and return it (with `undo`, the undo of the newest
        edit not yet taken back; an FtcoreError when there is none)."""
        handle = self._open(os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            log = self._read_locked(handle)
            undoes = 0
            if undo:
                target = last_undoable(log)
                if target is None:
                    raise FtcoreError(f"there is no edit of {self.root} to undo")
                undoes = target.seq
            edit = Edit(seq=len(log) + 1, kind=kind, path=path, to=to, undoes=undoes, at=round(time.time(), 3))
            record = {k: v for k, v in asdict(edit).items() if v and k != "seq"}
            os.write(handle, (json.dumps(record) + "\n").encode())
            os.fsync(handle)
            return edit
        finally:
            os.close(handle)

    def undo(self) -> Edit:
        """Take back the newest edit not yet taken back; returns the undo."""
        return self.append(EditKind.UNDO, undo=True)


def freeze(root: str | Path, edits: Edits) -> Path:
    """The edits in force as a file named by their content, which a run reads (and a resumed run reads again)."""
    digest = edits.digest()
    path = edits_dir(root) / f"{APPLIED_PREFIX}{digest[:16]}.json"
    if not path.is_file():
        payload = {"root": str(Path(root).resolve()), "sha256": digest,
                   "relabel": dict(sorted(edits.relabeled.items())), "exclude": sorted(edits.excluded)}
        with atomic_write(path) as out:
            out.write((json.dumps(payload, indent=1) + "\n").encode())
    return path


def edits_for_run(root: str | Path, owner: str | None = None) -> str | None:
    """The frozen file of the edits in force in `owner`'s log of `root`, which a run trains with unless told to take
    the folder as it is; None when there are none."""
    edits = EditLog(root, owner).edits()
    return None if edits.empty else str(freeze(root, edits))


def thaw(path: str | Path) -> Edits:
    """The edits a frozen file holds; an FtcoreError for a file that is missing or not what `freeze` wrote."""
    try:
        d = json.loads(Path(path).read_text())
        edits = Edits(relabeled={str(k): str(v) for k, v in d["relabel"].items()},
                      excluded={str(p) for p in d["exclude"]})
        if edits.digest() != d["sha256"]:
            raise ValueError("its content does not match its sha256")
    except OSError as e:
        raise FtcoreError(f"the photo edits file {path} cannot be read ({e.strerror or e}); train on the folder as "
                          "it is, or edit the photos again") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FtcoreError(f"the photo edits file {path} is not one the lab wrote ({e}); train on the folder as it "
                          "is, or edit the photos again") from None
    return edits
