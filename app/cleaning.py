"""The Check the photos page's glue: the server's photo checks (one per dataset and network, shared by every tab, each
in a process of its own), their reports, this tab's edit log, and a run on the cleaned photos.

Edits belong to whoever owns the tab's runs (`jobs.listed_owner`): each tab its own, or one log for everyone where the
server shares runs, which is also the command line's.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import replace
from pathlib import Path

import streamlit as st

from app import cached, jobs, tab
from ftcore.clean.job import CheckJob
from ftcore.clean.report import CheckReport, latest_arch, load_report, report_path
from ftcore.config import TrainConfig, recipe
from ftcore.data.dataset import thumbnail_bytes
from ftcore.data.edits import Edit, EditKind, EditLog, Edits, fold
from ftcore.errors import FtcoreError

PROBLEM_KEY = "check-problem"  # the last edit this tab could not make, and why (shown once on the page)
MAP_THUMBNAIL = 72  # the longest side of a photo in the map's tooltip (pixels): the map carries them all
MAP_THUMBNAILS_UP_TO = 1500  # photos whose map tooltip shows the photo itself; above it, its name only


@st.cache_resource
def _checks() -> tuple[dict[tuple[str, str], CheckJob], threading.Lock]:
    """The server's checks, by (dataset folder, network), with the lock that starts them."""
    return {}, threading.Lock()


def check_job(root: str, arch: str) -> CheckJob | None:
    """The latest check of `root` with `arch` this server started, running or ended."""
    return _checks()[0].get((root, arch))


def start_check(root: str, arch: str) -> CheckJob:
    """Start checking `root` with `arch` (the one already running, if any)."""
    checks, lock = _checks()
    with lock:
        job = checks.get((root, arch))
        if job is None or job.finished:
            checks[(root, arch)] = job = CheckJob(root, arch).start()
        return job


def report(root: str, arch: str) -> CheckReport | None:
    """The last check of `root` with `arch`, read again whenever its file changes."""
    path = report_path(root, arch)
    return _report(root, arch, path.stat().st_mtime_ns if path.is_file() else 0)


@st.cache_data(show_spinner=False, max_entries=8)
def _report(root: str, arch: str, stamp: int) -> CheckReport | None:
    return load_report(root, arch) if stamp else None


def leaked_photos(root: str) -> set[str]:
    """The held-out photos of `root` (full paths) that the latest check, with any network, found in another split
    too."""
    arch = latest_arch(root)
    found = report(root, arch) if arch else None
    return {str(Path(found.root) / path) for path in found.leaked} if found is not None else set()


def edit_log(root: str) -> EditLog:
    """This tab's edit log of `root` (everyone's, where runs are shared)."""
    return EditLog(root, jobs.listed_owner())


def edits(root: str) -> tuple[Edits, list[Edit]]:
    """The edits in force and the whole log; a damaged log is set aside and its sentence shown once."""
    try:
        log = edit_log(root).read()
        return fold(log), log
    except FtcoreError as e:
        st.session_state[PROBLEM_KEY] = str(e)
        return Edits(), []


def record(root: str, kind: EditKind, path: str = "", to: str = "") -> None:
    """Write one edit (a button's callback); a problem is kept for the page to show."""
    try:
        if kind == EditKind.UNDO:
            edit_log(root).undo()
        else:
            edit_log(root).append(kind, path, to)
    except FtcoreError as e:
        st.session_state[PROBLEM_KEY] = str(e)


def take_problem() -> str | None:
    """The last edit's problem, once."""
    return st.session_state.pop(PROBLEM_KEY, None)


def trains_as_is() -> bool:
    """True when this tab's runs train on the folder as it is."""
    return bool(st.session_state.get(tab.AS_IS_KEY))


def set_trains_as_is(as_is: bool) -> None:
    """Train this tab's next runs on the folder as it is (True) or on its edited photos (False)."""
    st.session_state[tab.AS_IS_KEY] = as_is
    tab.remember()


def start_cleaned_run(root: str, arch: str) -> None:
    """Start this tab's settings on the edited photos: those of its latest run on `root`, else the book's recipe of
    `arch`."""
    kept = [run.config for run in jobs.runs() if Path(run.config.data).resolve() == Path(root).resolve()]
    base: TrainConfig = kept[-1] if kept else recipe("finetune", arch, data=root)
    edits_file = jobs.photo_edits(root) if not trains_as_is() else None
    if edits_file is None:
        raise FtcoreError("there are no edits to train with yet (or this tab trains on the folder as it is); "
                          "relabel or exclude a photo first")
    jobs.start_job(replace(base, edits=edits_file))


@st.cache_data(show_spinner="Making the map's thumbnails...", max_entries=4)
def map_thumbnails(paths: tuple[str, ...]) -> dict[str, str]:
    """Full path -> a small JPEG of the photo as a data URL, for the map's tooltip."""
    thumbnails = {}
    for path in paths[:MAP_THUMBNAILS_UP_TO]:
        try:
            data = thumbnail_bytes(path, MAP_THUMBNAIL)
        except (FtcoreError, OSError):
            continue
        thumbnails[path] = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    return thumbnails


def thumbnail(root: str, path: str) -> bytes | None:
    """A photo of the report (a path inside `root`) as a thumbnail; None when it cannot be read any more."""
    try:
        return cached.thumbnail(str(Path(root) / path))
    except (FtcoreError, OSError):
        return None


def map_summary(rows: list[dict]) -> str:
    """The map in one sentence, for a screen reader: how many photos of each class, and how many are marked."""
    classes = {}
    for row in rows:
        classes[row["class"]] = classes.get(row["class"], 0) + 1
    marks = {mark: sum(1 for row in rows if row["mark"] == mark) for mark in ("suspect", "leak")}
    return (f"A map of {len(rows):,} photos, alike photos close together: "
            + ", ".join(f"{count:,} {name}" for name, count in sorted(classes.items()))
            + f"; {marks['suspect']:,} suspect labels drawn as triangles, {marks['leak']:,} leaked photos as squares")
