"""This tab's work: its run, its series of runs and its learning-rate finder, all queued with the server's one
backend; the runs it kept, its runs saved on this machine, and its interrupted runs it can resume.

Every run a tab starts is that tab's (`tab.owner`): it lists, stops, steers and resumes its own runs only. Whoever
starts the server may share runs between tabs ($FTCORE_SHARE_RUNS=1: a person alone on a laptop); then every tab
lists every run, and continues another tab's interrupted run as a new run of its own, from its saved state.

The backends and the series of runs load torch, so they are imported where a run is started, not with this module:
a cold server draws the Train page's controls first.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app import tab
from app.paths import user_path
from ftcore.config import TrainConfig
from ftcore.data.edits import edits_for_run
from ftcore.errors import FtcoreError
from ftcore.lab import lesson
from ftcore.lr_find.finding import FinderSettings
from ftcore.records import Status
from ftcore.runs import saved
from ftcore.runs.address import cluster_address
from ftcore.runs.folder import STATE_FILE, read_owner
from ftcore.runs.process import FinderJob, ProcessJob, list_interrupted
from ftcore.runs.queue import QueueingBackend
from ftcore.runs.saved import Run, list_saved_runs
from ftcore.runs.snapshot import FinderSnapshot, JobSnapshot
from ftcore.util import paths

if TYPE_CHECKING:
    from ftcore.runs.series import Experiment

SHARE_ENV = "FTCORE_SHARE_RUNS"  # "1": every tab lists every run of the server (off: each tab its own)
POLL_SECONDS = 1.0  # how often the Train page redraws while a job runs
QUEUED_POLL_SECONDS = 5.0  # and while it waits in the queue (every tab polls the server: waiting ones less often)


def runs() -> list[Run]:
    """Runs this session finished or stopped, oldest first; a job that has just ended joins them here."""
    kept = st.session_state.setdefault(tab.RUNS_KEY, [])
    job = current_job()
    earlier = next((run for run in kept if job is not None and run.id == job.id), None)
    if job is not None and (earlier is None or earlier.history.stopped):  # a resumed run replaces its stopped self
        snap = job.snapshot()
        if snap.has_model and (earlier is None or snap.status == Status.FINISHED
                               or len(snap.epochs) != len(earlier.history.epochs)):
            if earlier is not None:
                kept.remove(earlier)
                saved.MODELS.discard(job.id)  # the module's own: tests and a restart replace it
            kept.append(job.to_run())
            tab.remember()
    if _collect_experiment_runs(kept):  # runs of an lr sweep or fine-tune vs scratch join as they end
        tab.remember()
    return kept


def current_job() -> ProcessJob | None:
    """This session's latest training job, running or done."""
    return st.session_state.get(tab.JOB_KEY)


def job_running() -> bool:
    """True while this session's job has not ended."""
    job = current_job()
    return job is not None and not job.snapshot().done


def sharing() -> bool:
    """True where whoever started the server shares runs between tabs ($FTCORE_SHARE_RUNS=1)."""
    return os.environ.get(SHARE_ENV, "").strip() == "1"


def listed_owner() -> str | None:
    """Whose runs this tab lists: its own, or everyone's (None) where runs are shared."""
    return None if sharing() else tab.owner()


def runs_dir() -> Path:
    """Where this server's runs are written and listed from after a restart (paths.runs_dir)."""
    return paths.runs_dir()


BACKEND_MADE = threading.Event()  # set once this server process has made its backend (nothing trains before)


@st.cache_resource
def backend() -> QueueingBackend:
    """The server's one backend: every tab's runs queue here and train as jobs on the Ray cluster at
    $FTCORE_RAY_ADDRESS, else in child processes of this machine. FtcoreError for a cluster it cannot use."""
    BACKEND_MADE.set()
    address = cluster_address()
    if address:
        from ftcore.runs.cluster import RayBackend  # torch, only once a run is started

        return RayBackend(address, runs_dir())
    from ftcore.runs.local import LocalBackend  # torch, only once a run is started

    return LocalBackend()


def cluster_note() -> str | None:
    """One line saying that this server's runs train on a Ray cluster, and where (None: on this machine)."""
    address = cluster_address()
    return f"Runs train on the Ray cluster at {address}, one Ray job each." if address else None


def photo_edits(root: str) -> str | None:
    """The frozen photo edits a run of this tab on `root` trains with: this tab's own (everyone's, where runs are
    shared), unless the tab chose the folder as it is; None when there are none."""
    return None if st.session_state.get(tab.AS_IS_KEY) else edits_for_run(root, listed_owner())


def start_job(config: TrainConfig) -> ProcessJob:
    """Queue `config` with the server's backend for this session (one job at a time), on this tab's photo edits
    unless it names its own; it trains in a child process of its own."""
    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    config.validate()
    config.edits = config.edits or photo_edits(config.data)
    if config.weights:
        config.weights = str(user_path(config.weights))
    return _keep_job(ProcessJob(config, runs_dir(), owner=tab.owner()).start(backend()))


def resume_job(folder: str | Path) -> ProcessJob:
    """Queue the interrupted run in `folder` to continue after its last saved epoch, as this session's job: this
    tab's own run goes on in its folder; another tab's (where runs are shared) goes on as a new run of this tab's,
    from its saved state, and keeps its owner and its record."""
    folder = Path(folder)
    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    if read_owner(folder) == tab.owner():
        if any(job.folder == folder for job in backend().running()):
            raise FtcoreError(f"the run in {folder} is training already; watch it in the tab that started it")
        return _keep_job(ProcessJob.resumed(folder).start(backend()))
    if not sharing():
        raise FtcoreError(f"the run in {folder} is not this tab's, and this server does not share runs; only the tab "
                          f"that started a run resumes it (runs are shared where the server sets {SHARE_ENV}=1)")
    return _keep_job(ProcessJob.continued(folder, tab.owner()).start(backend()))


def _keep_job(job: ProcessJob) -> ProcessJob:
    st.session_state[tab.JOB_KEY] = job
    tab.remember()
    return job


def interrupted_runs() -> list[Path]:
    """This tab's run folders (every tab's, where runs are shared) that ended before their last epoch and can be
    resumed (none training now)."""
    try:  # before the server's first run no backend is made: making one loads torch, after the controls
        training = {job.folder for job in backend().running() if job.alive()} \
            if BACKEND_MADE.is_set() or cluster_address() else set()
    except FtcoreError:  # a cluster that cannot be reached: Start says so
        training = set()
    folder = runs_dir()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob(f"*/{STATE_FILE}"))) \
        if folder.is_dir() else ()
    return [Path(f) for f in _interrupted(str(folder), stamp, listed_owner()) if Path(f) not in training]


@st.cache_data(show_spinner=False, max_entries=64)
def _interrupted(folder: str, stamp: tuple, owner: str | None) -> list[str]:
    return [str(f) for f in list_interrupted(folder, owner)]


def current_finder() -> FinderJob | None:
    """This session's latest learning-rate finder, running or done."""
    return st.session_state.get(tab.FINDER_KEY)


def finder_snapshot() -> FinderSnapshot | None:
    """Where this session's learning-rate finder stands (None before the first)."""
    finder = current_finder()
    return finder.snapshot() if finder is not None else None


def finder_running() -> bool:
    """True while this session's learning-rate finder waits or runs."""
    snap = finder_snapshot()
    return snap is not None and not snap.done


def start_finder(config: TrainConfig, settings: FinderSettings) -> FinderJob:
    """Queue the learning-rate finder on `config`'s recipe with the server's backend, in a child process of its
    own (under <cache>/lr-finder, or beside the runs on a cluster)."""
    if finder_running():
        raise FtcoreError("the learning-rate finder is already running in this tab; stop it or wait for it")
    config.validate()
    if config.weights:
        config.weights = str(user_path(config.weights))
    finder = FinderJob(config, backend().finder_root(), settings, owner=tab.owner()).start(backend())
    st.session_state[tab.FINDER_KEY] = finder
    tab.remember()
    return finder


def collect_job() -> JobSnapshot | None:
    """Snapshot of this session's job (if any), after adding it to the runs if it has just ended."""
    runs()
    job = current_job()
    return job.snapshot() if job is not None else None


def saved_runs() -> tuple[list[Run], list[str]]:
    """This tab's runs saved on this machine (every tab's, where runs are shared; before a restart too) that are not
    among its runs now, oldest first, and a sentence for each run folder that could not be read."""
    folder = runs_dir()
    stamp = folder.stat().st_mtime_ns if folder.is_dir() else 0
    found, problems = _saved_runs(str(folder), stamp, listed_owner())
    mine = {run.id for run in st.session_state.get(tab.RUNS_KEY, [])}
    return [run for run in found if run.id not in mine], problems


@st.cache_data(show_spinner=False, max_entries=64)
def _saved_runs(folder: str, stamp: int, owner: str | None) -> tuple[list[Run], list[str]]:
    return list_saved_runs(folder, owner)


def add_saved_runs(chosen: list[Run]) -> None:
    """Bring saved runs into this tab's runs (their models load from disk when first used)."""
    kept = runs()
    have = {run.id for run in kept}
    kept.extend(run for run in chosen if run.id not in have)
    tab.remember()


def current_experiment() -> Experiment | None:
    """This session's latest experiment (an lr sweep or fine-tune vs scratch), running or done."""
    return st.session_state.get(tab.EXPERIMENT_KEY)


def experiment_running() -> bool:
    """True while this session's experiment has not ended."""
    experiment = current_experiment()
    return experiment is not None and not experiment.snapshot().done


def start_experiment(kind: str, configs: list[TrainConfig]) -> Experiment:
    """Start a series of runs in the background for this session (not while a run or another series trains)."""
    from ftcore.runs.series import Experiment  # torch, only once a series is started

    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    for config in configs:
        config.validate()
        config.edits = config.edits or photo_edits(config.data)
    for config in configs:
        backend().check_fits(config)
    experiment = Experiment(kind, configs, runs_dir(), backend(), owner=tab.owner()).start()
    st.session_state[tab.EXPERIMENT_KEY] = experiment
    return experiment


def _collect_experiment_runs(kept: list[Run]) -> bool:
    """Add the runs the session's experiment has finished to `kept`; True when any was added."""
    experiment = current_experiment()
    if experiment is None:
        return False
    new = experiment.runs(skip={run.id for run in kept})
    kept.extend(new)
    return bool(new)


@dataclass(frozen=True)
class TrainState:
    """Where this tab's work stands as the Train page draws: what polls, and whether the controls steer a run."""

    polling: bool  # its run has not ended: the live view redraws
    experiment: bool  # a series of its runs has not ended (a lesson here, or one from Experiments)
    lesson: bool  # that series is a lesson: its view redraws
    finder: bool  # its learning-rate finder waits or runs
    queued: bool  # its run waits in the queue
    live: JobSnapshot | None  # its run trains epochs of every layer: the slider, the 10x toggle and Freeze steer it


def train_state() -> TrainState:
    """This tab's TrainState now."""
    snap = collect_job()
    polling, experiment = snap is not None and not snap.done, experiment_running()
    return TrainState(polling=polling, experiment=experiment,
                      lesson=experiment and current_experiment().kind in lesson.LESSONS, finder=finder_running(),
                      queued=polling and snap.status == Status.QUEUED,
                      live=snap if polling and snap.steerable else None)
