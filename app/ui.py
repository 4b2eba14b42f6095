"""Streamlit glue: the one ftcore module that imports streamlit.

It holds what every page needs and nothing a page draws: the cached wrappers around ftcore's functions
(`st.cache_data` for summaries and pictures, `st.cache_resource` for models) and this session's state
(the chosen data, the training job, the kept runs). Pages call these and lay out the results.

A browser refresh starts a new Streamlit session. So that it finds its run again, each tab carries a
random id in its URL (`?tab=...`), and a process-wide registry maps that id to the tab's data choice,
job and runs; a new session whose URL names a known id takes them over.

The engine's modules that load torch (training, runs, evaluation, explanations) are imported inside the functions
that use them: a page draws its controls from the torch-free ones (`ftcore.config`, `archs`, `data`) first, and
torch loads when something needs it.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from ftcore import data, paths
from ftcore.archs import locate_weights
from ftcore.config import TrainConfig, lr_text
from ftcore.errors import FtcoreError
from ftcore.images import jpeg_thumbnail, open_image
from ftcore.lr_finding import FinderSettings, two_digits
from ftcore.lru import LruStore
from ftcore.paths import store_bytes
from ftcore.photo_check import FactsFile, PhotoCheck
from ftcore.runs.address import cluster_address
from ftcore.runs.status import Status

if TYPE_CHECKING:
    from torch import nn

    from ftcore.evaluation import Evaluation
    from ftcore.experiments import Experiment
    from ftcore.explain import BlockChange
    from ftcore.predict import PhotoResult
    from ftcore.runs.backend import Backend
    from ftcore.runs.process import FinderJob, ProcessJob
    from ftcore.runs.saved import Run
    from ftcore.runs.snapshot import FinderSnapshot, JobSnapshot
    from ftcore.training import TrainedModel

DATA_KEY, JOB_KEY, RUNS_KEY, UNPACKED_KEY, TAB_KEY = "data_root", "job", "runs", "unpacked_uploads", "tab"
SPLIT_KEY = "data_split"  # this tab's (val_fraction, split_seed): how validation is held out of its data
FINDER_KEY = "lr_finder"  # this tab's learning-rate finder (a FinderJob), running or done
TAB_PARAM = "tab"  # the URL query parameter that carries the tab's id
POLL_SECONDS = 1.0  # how often the Train page redraws while a job runs
QUEUED_POLL_SECONDS = 5.0  # and while it waits in the queue (every tab polls the server: waiting ones less often)
MAX_PHOTOS = 100  # photos classified per request on Predict; the page says when it cut the rest
MAX_TABS = 256  # tabs the registry remembers for a refresh (their runs are on disk anyway)
DATA_ROOT_ENV = "FTCORE_DATA_ROOT"  # set when serving on a network: the only folder users may pick from
LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")
# Facts only torch can find out (the devices, whether weights carry ImageNet's output layer), kept for the whole
# server process once found. A page draws with what is known, then finds the rest and reruns: on a cold server
# its controls show before torch has loaded.
TORCH_FACTS: LruStore[object] = LruStore(64)
_TORCH_FACTS_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# This tab's id, kept in the URL so that a refresh finds the tab's job and runs again.


def restored_keys() -> tuple[str, ...]:
    """The session-state keys a refreshed tab gets back: its data choice, job, runs, series of runs and lr finder."""
    return (DATA_KEY, SPLIT_KEY, JOB_KEY, RUNS_KEY, EXPERIMENT_KEY, FINDER_KEY)


@st.cache_resource
def tab_registry() -> LruStore[dict]:
    """Tab id -> that tab's restorable session state, for the whole server process (shared by every session);
    the most recently used MAX_TABS tabs are kept (their runs are on disk anyway)."""
    return LruStore(MAX_TABS)


def attach_tab() -> str:
    """Give this session its tab id (from the URL when the registry knows it, restoring that tab's state;
    else a new one) and keep it in the URL; call first on every run of the app."""
    tab = st.session_state.get(TAB_KEY)
    if tab is None:
        asked = st.query_params.get(TAB_PARAM)
        state = tab_registry().get(asked) if isinstance(asked, str) and re.fullmatch(r"[0-9a-f]{32}", asked) \
            else None
        if state is not None:
            tab = asked
            for key, value in state.items():
                if key not in st.session_state:
                    st.session_state[key] = list(value) if isinstance(value, list) else value
        else:
            tab = uuid.uuid4().hex
        st.session_state[TAB_KEY] = tab
    if st.query_params.get(TAB_PARAM) != tab:
        st.query_params[TAB_PARAM] = tab  # navigation clears query parameters; put it back
    _remember()
    return tab


def _remember() -> None:
    """Copy this session's data choice, job, runs, series of runs and lr finder into the registry under its tab id."""
    tab = st.session_state.get(TAB_KEY)
    if tab is not None:
        state = {key: st.session_state[key] for key in restored_keys() if key in st.session_state}
        tab_registry().put(tab, {key: list(v) if isinstance(v, list) else v for key, v in state.items()})


# --------------------------------------------------------------------------------------------------
# This session's state (one browser tab = one session = its own data choice, job and runs).


def data_root() -> str | None:
    """The data this session works on: its own choice, else the hot-dog set found on this machine."""
    if DATA_KEY not in st.session_state:
        found = data.find_data()
        st.session_state[DATA_KEY] = str(found) if found else None
        _remember()
    return st.session_state[DATA_KEY]


def set_data_root(root: str | Path) -> None:
    """Use `root` (already checked) from now on in this session, with the layout's own validation split."""
    st.session_state[DATA_KEY] = str(root)
    st.session_state[SPLIT_KEY] = (None, 0)
    _remember()


def data_split() -> tuple[float | None, int]:
    """This session's (val_fraction, split_seed) for its data: (None, 0) takes the layout's default."""
    return st.session_state.get(SPLIT_KEY, (None, 0))


def set_data_split(val_fraction: float | None, split_seed: int) -> None:
    """Hold out `val_fraction` of each class (None: the layout's default) with `split_seed`, from now on."""
    st.session_state[SPLIT_KEY] = (val_fraction, int(split_seed))
    _remember()


def split_for(root: str, config: TrainConfig) -> tuple[float | None, int]:
    """The split to evaluate a run on `root` with: the run's own on its own data, else this session's."""
    same = Path(root).expanduser().resolve() == Path(config.data).expanduser().resolve()
    return (config.val_fraction, config.split_seed) if same else data_split()


def runs() -> list[Run]:
    """Runs this session finished or stopped, oldest first; a job that has just ended joins them here."""
    kept = st.session_state.setdefault(RUNS_KEY, [])
    job = current_job()
    earlier = next((run for run in kept if job is not None and run.id == job.id), None)
    if job is not None and (earlier is None or earlier.history.stopped):  # a resumed run replaces its stopped self
        snap = job.snapshot()
        if snap.has_model and (earlier is None or snap.status == Status.FINISHED
                               or len(snap.epochs) != len(earlier.history.epochs)):
            if earlier is not None:
                from ftcore.runs.saved import MODELS

                kept.remove(earlier)
                MODELS.discard(job.id)
            kept.append(job.to_run())
            _remember()
    if _collect_experiment_runs(kept):  # runs of an lr sweep or fine-tune vs scratch join as they end
        _remember()
    return kept


def current_job() -> ProcessJob | None:
    """This session's latest training job, running or done."""
    return st.session_state.get(JOB_KEY)


def job_running() -> bool:
    """True while this session's job has not ended."""
    job = current_job()
    return job is not None and not job.snapshot().done


def runs_dir() -> Path:
    """Where this server's runs are written and listed from after a restart (paths.runs_dir)."""
    return paths.runs_dir()


BACKEND_MADE = threading.Event()  # set once this server process has made its backend (nothing trains before)


@st.cache_resource
def backend() -> Backend:
    """The server's one backend: every tab's runs queue here and train as jobs on the Ray cluster at
    $FTCORE_RAY_ADDRESS, else in child processes of this machine. FtcoreError for a cluster it cannot use."""
    BACKEND_MADE.set()
    address = cluster_address()
    if address:
        from ftcore.runs.cluster import RayBackend

        return RayBackend(address, runs_dir())
    from ftcore.runs.local import LocalBackend

    return LocalBackend()


def cluster_note() -> str | None:
    """One line saying that this server's runs train on a Ray cluster, and where (None: on this machine)."""
    address = cluster_address()
    return f"Runs train on the Ray cluster at {address}, one Ray job each." if address else None


def start_job(config: TrainConfig) -> ProcessJob:
    """Queue `config` with the server's backend for this session (one job at a time); it trains in a child
    process of its own."""
    from ftcore.runs.process import ProcessJob

    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    config.validate()
    if config.weights:
        config.weights = str(user_path(config.weights))
    return _keep_job(ProcessJob(config, runs_dir()).start(backend()))


def resume_job(folder: str | Path) -> ProcessJob:
    """Queue the interrupted run in `folder` to continue after its last saved epoch, as this session's job."""
    from ftcore.runs.process import ProcessJob

    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    if any(job.folder == Path(folder) for job in backend().running()):
        raise FtcoreError(f"the run in {folder} is training already; watch it in the tab that started it")
    return _keep_job(ProcessJob.resumed(folder).start(backend()))


def _keep_job(job: ProcessJob) -> ProcessJob:
    st.session_state[JOB_KEY] = job
    _remember()
    return job


def interrupted_runs() -> list[Path]:
    """Run folders on this machine that ended before their last epoch and can be resumed (none training now)."""
    from ftcore.runs.folder import STATE_FILE

    try:  # before the server's first run no backend is made: making one loads torch, after the controls
        training = {job.folder for job in backend().running()} if BACKEND_MADE.is_set() or cluster_address() \
            else set()
    except FtcoreError:  # a cluster that cannot be reached: Start says so
        training = set()
    folder = runs_dir()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob(f"*/{STATE_FILE}"))) \
        if folder.is_dir() else ()
    return [Path(f) for f in _interrupted(str(folder), stamp) if Path(f) not in training]


@st.cache_data(show_spinner=False, max_entries=4)
def _interrupted(folder: str, stamp: tuple) -> list[str]:
    from ftcore.runs.process import list_interrupted

    return [str(f) for f in list_interrupted(folder)]


def current_finder() -> FinderJob | None:
    """This session's latest learning-rate finder, running or done."""
    return st.session_state.get(FINDER_KEY)


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
    from ftcore.runs.process import FinderJob

    if finder_running():
        raise FtcoreError("the learning-rate finder is already running in this tab; stop it or wait for it")
    config.validate()
    if config.weights:
        config.weights = str(user_path(config.weights))
    finder = FinderJob(config, backend().finder_root(), settings).start(backend())
    st.session_state[FINDER_KEY] = finder
    _remember()
    return finder


def collect_job() -> JobSnapshot | None:
    """Snapshot of this session's job (if any), after adding it to the runs if it has just ended."""
    runs()
    job = current_job()
    return job.snapshot() if job is not None else None


def saved_runs() -> tuple[list[Run], list[str]]:
    """Runs saved on this machine (by any tab, before any restart) that are not among this tab's runs,
    oldest first, and a sentence for each run folder that could not be read."""
    folder = runs_dir()
    stamp = folder.stat().st_mtime_ns if folder.is_dir() else 0
    found, problems = _saved_runs(str(folder), stamp)
    mine = {run.id for run in st.session_state.get(RUNS_KEY, [])}
    return [run for run in found if run.id not in mine], problems


@st.cache_data(show_spinner=False, max_entries=4)
def _saved_runs(folder: str, stamp: int) -> tuple[list[Run], list[str]]:
    from ftcore.runs.saved import list_saved_runs

    return list_saved_runs(folder)


def add_saved_runs(chosen: list[Run]) -> None:
    """Bring saved runs into this tab's runs (their models load from disk when first used)."""
    kept = runs()
    have = {run.id for run in kept}
    kept.extend(run for run in chosen if run.id not in have)
    _remember()


# --------------------------------------------------------------------------------------------------
# Paths typed by a user: anywhere on a local app; only inside $FTCORE_DATA_ROOT on a served one.


def allowed_data_root() -> Path | None:
    """$FTCORE_DATA_ROOT: when set, the only folder whose contents users may pick (for serving)."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def served_on_network() -> bool:
    """True unless the server listens on this machine only (server.address localhost, as config.toml sets)."""
    return str(st.get_option("server.address") or "") not in LOCAL_ADDRESSES


def folder_picking_refusal() -> str | None:
    """Why typed paths are refused here (served on a network without a data root), else None."""
    if served_on_network() and allowed_data_root() is None:
        return (f"this app is served on a network, so it reads no folder typed in here; set {DATA_ROOT_ENV} to "
                "the folder holding the datasets and restart it (README, \"Serving on a network\")")
    return None


def user_path(text: str) -> Path:
    """A file or folder a user typed, refused when it lies outside what this server may read."""
    refusal = folder_picking_refusal()
    if refusal:
        raise FtcoreError(refusal)
    return data.resolve_user_path(text, allowed_data_root())


# --------------------------------------------------------------------------------------------------
# Cached work: nothing heavy runs twice for the same input.


def _tree_stamp(root: str) -> tuple[float, ...]:
    """Modification times of the folders two levels deep (split and class folders, or class folders and their
    subfolders): adding or removing photos changes it."""
    base = Path(root)
    level1 = [d for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
    level2 = [d for folder in level1 for d in folder.iterdir() if d.is_dir()]
    return tuple(f.stat().st_mtime for f in [base, *level1, *level2])


@st.cache_data(show_spinner="Listing the dataset...", max_entries=16)
def _listing(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> data.DatasetSummary:
    return data.list_dataset(root, val_fraction, split_seed)


@st.cache_resource(max_entries=16)
def _photo_check(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> PhotoCheck:
    """One background check per dataset, split and tree state, shared by every tab of the server."""
    listing = _listing(root, val_fraction, split_seed, stamp)
    return PhotoCheck(listing.photos(), FactsFile(listing.root)).start()


def photo_check(root: str, split: tuple[float | None, int] | None = None) -> PhotoCheck:
    """The check of every photo of `root` (decoded, hashed, measured), started in the background on first use."""
    val_fraction, split_seed = split if split is not None else data_split()
    return _photo_check(root, val_fraction, split_seed, _tree_stamp(root))


def dataset_summary(root: str, split: tuple[float | None, int] | None = None) -> data.DatasetSummary:
    """The dataset with this session's split (or `split`) from its file listing, at once, with what the photo
    check found once it has ended (`checked`); the check starts in the background on first use. Cached until the
    tree changes."""
    val_fraction, split_seed = split if split is not None else data_split()
    stamp = _tree_stamp(root)
    check = _photo_check(root, val_fraction, split_seed, stamp)
    if check.done and check.findings is not None:
        return _checked(root, val_fraction, split_seed, stamp)
    return _listing(root, val_fraction, split_seed, stamp)


@st.cache_data(show_spinner=False, max_entries=16)
def _checked(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> data.DatasetSummary:
    """The listing with its ended check's findings, merged once rather than on every rerun."""
    check = _photo_check(root, val_fraction, split_seed, stamp)
    return _listing(root, val_fraction, split_seed, stamp).with_findings(check.findings)


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str) -> bytes:
    """data.thumbnail_bytes, cached."""
    return data.thumbnail_bytes(path)


@st.cache_data(show_spinner=False, max_entries=32)
def augmentation_preview(path: str, image_size: int, n: int, draw: int) -> tuple[list[np.ndarray], np.ndarray]:
    """data.augmentation_preview, cached per `draw` (a new draw number gives new random crops)."""
    return data.augmentation_preview(path, image_size, n)


def unpacked_upload(upload: UploadedFile) -> str:
    """data.unpack_uploaded_zip for an uploaded file, once per upload (not re-read on every rerun)."""
    unpacked = st.session_state.setdefault(UNPACKED_KEY, {})
    if upload.file_id not in unpacked:
        with st.spinner("Unpacking the archive..."):
            unpacked[upload.file_id] = str(data.unpack_uploaded_zip(upload.getvalue()))
    return unpacked[upload.file_id]


@st.cache_resource(max_entries=2, show_spinner="Loading the checkpoint...")
def _checkpoint(path: str, mtime: float) -> TrainedModel:
    from ftcore.checkpoints import load_checkpoint

    return load_checkpoint(path)


def checkpoint_from_upload(payload: bytes) -> TrainedModel:
    """An uploaded checkpoint file, stored once under the cache and loaded once (keyed by path and mtime)."""
    path = store_bytes(payload, "checkpoints", ".pt")
    return _checkpoint(str(path), path.stat().st_mtime)


@st.cache_data(show_spinner="Classifying...", max_entries=16)
def classify(model_key: str, _trained: TrainedModel, photos: list[tuple[str, bytes]]) -> list[PhotoResult]:
    """predict.classify_photos, cached by model key and photo contents."""
    from ftcore.predict import classify_photos

    return classify_photos(_trained, photos)


def three_decimals(*columns: str) -> dict:
    """st.dataframe column_config showing these number columns as 0.939, not 0.94."""
    return {name: st.column_config.NumberColumn(format="%.3f") for name in columns}


def show_error(error: Exception) -> None:
    """One readable line for a user-fixable error."""
    st.error(str(error), icon=":material/error:")


T = TypeVar("T")


def value_or_error(make: Callable[[], T]) -> T | None:
    """`make()`, or None after showing its user-fixable error (a widget function whose choice cannot be used)."""
    try:
        return make()
    except FtcoreError as e:
        show_error(e)
        return None


def chosen_data(note: str = "") -> data.DatasetSummary | None:
    """The summary of this session's data with a one-line caption (and `note`), or None after saying why."""
    root = data_root()
    if root is None:
        st.error("No data chosen: pick the photos on the Dataset explorer page first.")
        return None
    try:
        summary = dataset_summary(root)
    except FtcoreError as e:
        show_error(e)
        return None
    st.caption(f"Data: `{summary.root}`, {summary.totals_text()} images ({summary.layout} layout"
               + (", validation held out of train" if summary.val_fraction else "") + ")."
               + ("" if summary.checked else " Every photo is still being checked in the background (Dataset "
                  "explorer); a run that meets a photo it cannot read stops and names it.")
               + (f" {note}" if note else ""))
    return summary


# --------------------------------------------------------------------------------------------------
# Evaluate & explain, experiments: this session's experiment, and cached evaluations,
# explanations and exports keyed by the model's key (a run id, or a checkpoint upload's id).

EXPERIMENT_KEY = "experiment"


def current_experiment() -> Experiment | None:
    """This session's latest experiment (an lr sweep or fine-tune vs scratch), running or done."""
    return st.session_state.get(EXPERIMENT_KEY)


def experiment_running() -> bool:
    """True while this session's experiment has not ended."""
    experiment = current_experiment()
    return experiment is not None and not experiment.snapshot().done


def start_experiment(kind: str, configs: list[TrainConfig]) -> Experiment:
    """Start a series of runs in the background for this session (not while a run or another series trains)."""
    from ftcore.experiments import Experiment

    if job_running() or experiment_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    for config in configs:
        config.validate()
    for config in configs:
        backend().check_fits(config)
    experiment = Experiment(kind, configs, runs_dir=runs_dir(), backend=backend()).start()
    st.session_state[EXPERIMENT_KEY] = experiment
    return experiment


def _collect_experiment_runs(kept: list[Run]) -> bool:
    """Add the runs the session's experiment has finished to `kept`; True when any was added."""
    experiment = current_experiment()
    if experiment is None:
        return False
    new = experiment.runs(skip={run.id for run in kept})
    kept.extend(new)
    return bool(new)


def evaluation(model_key: str, trained: TrainedModel, root: str, limit: int | None) -> Evaluation:
    """evaluate_model on `root`'s test split, else its val split (the run's own split on its own data; at most
    `limit` photos per class), cached."""
    return _evaluation(model_key, trained, root, limit, split_for(root, trained.config))


@st.cache_data(show_spinner="Evaluating the held-out photos...", max_entries=8)
def _evaluation(model_key: str, _trained: TrainedModel, root: str, limit: int | None,
                split: tuple[float | None, int]) -> Evaluation:
    from ftcore.evaluation import evaluate_model

    return evaluate_model(_trained.model, _trained.classes, _trained.eval_transform, root, None, limit, _trained.arch,
                          val_fraction=split[0], split_seed=split[1])


@st.cache_resource(max_entries=2, show_spinner="Rebuilding the weights the run started from...")
def _initial_model(model_key: str, _trained: TrainedModel) -> nn.Module:
    from ftcore import explain

    return explain.initial_model(_trained.config, _trained.classes, _trained.weights.path)


@st.cache_data(show_spinner="Computing the feature maps...", max_entries=8)
def feature_map(model_key: str, _trained: TrainedModel, root: str, limit: int | None) -> dict:
    """PCA of the penultimate features of the test photos, before training (the starting weights) and after."""
    from ftcore import explain
    from ftcore.evaluation import evaluate_model

    after = evaluation(model_key, _trained, root, limit)
    val_fraction, split_seed = split_for(root, _trained.config)
    before = evaluate_model(_initial_model(model_key, _trained), _trained.classes, _trained.eval_transform, root,
                            None, limit, _trained.arch, val_fraction=val_fraction, split_seed=split_seed)
    (before_xy, before_ratio), (after_xy, after_ratio) = explain.pca_2d(before.features), explain.pca_2d(after.features)
    return {"before": (before_xy, before_ratio), "after": (after_xy, after_ratio), "targets": after.targets,
            "names": [Path(p).name for p in after.paths]}


@st.cache_data(show_spinner="Comparing the weights with where they started...", max_entries=16)
def weight_changes(model_key: str, _trained: TrainedModel) -> list[BlockChange]:
    """Relative change of each block's weights from the run's starting weights."""
    from ftcore import explain

    return explain.model_weight_change(_initial_model(model_key, _trained), _trained.model)


@st.cache_data(show_spinner="Computing Grad-CAM...", max_entries=64)
def grad_cam_overlay(model_key: str, _trained: TrainedModel, name: str, payload: bytes) -> tuple[bytes, str]:
    """The photo with the Grad-CAM heatmap of its predicted class over it (JPEG), and that class."""
    from ftcore import explain

    image = open_image(payload, name)
    cam, index = explain.grad_cam_photo(_trained.model, _trained.eval_transform, image)
    return jpeg_thumbnail(explain.overlay(image, cam), 320), _trained.classes[index]


@st.cache_data(show_spinner="Exporting...", max_entries=8)
def export_file(model_key: str, _trained: TrainedModel, fmt: str) -> bytes:
    """The model as TorchScript or ONNX bytes, for a download button."""
    from ftcore import export

    return export.export_bytes(_trained.model, _trained.eval_transform, _trained.classes, _trained.arch, fmt)


def head_init_status(arch: str, weights: str | None, classes: list[str]) -> tuple[bool, str] | None:
    """experiments.head_init_status as last found for these weights (until the file changes) and classes, or None
    before `find_torch_facts` has read the weights (it takes torch: pages draw first and ask after)."""
    return TORCH_FACTS.get(_head_init_key(arch, weights, classes))


def _head_init_key(arch: str, weights: str | None, classes: list[str]) -> str:
    try:
        source = locate_weights(arch, weights)
    except FtcoreError as e:
        return f"head-init {arch} {e}"
    try:
        stamp = Path(source.path).stat().st_mtime_ns if source is not None else 0
    except OSError:  # gone since it was found: checked again once it is back
        stamp = -1
    return repr(("head-init", arch, source.path if source else None, stamp, tuple(classes)))


def device_names() -> list[str] | None:
    """The devices this machine can train on, `auto` first, once `find_torch_facts` has asked torch; else None."""
    return TORCH_FACTS.get("devices")


def find_torch_facts(arch: str, weights: str | None, classes: list[str] | None) -> None:
    """Ask torch (probe.ask: a child process while this server has not loaded it) for the devices and, given
    `classes`, whether these weights can start the output layer from ImageNet's rows; what is known already is
    not asked again."""
    from ftcore import probe

    with _TORCH_FACTS_LOCK:  # a class opening the page at once starts one child, not one each
        key = _head_init_key(arch, weights, classes) if classes is not None else None
        head_init = key is not None and TORCH_FACTS.get(key) is None
        if device_names() is not None and not head_init:
            return
        facts = probe.ask((arch, weights, classes) if head_init else None)
        TORCH_FACTS.put("devices", facts.devices)
        if head_init:
            TORCH_FACTS.put(key, facts.head_init)


# --------------------------------------------------------------------------------------------------
# Widget choices and labels shared by several pages.

MODE_LABELS = {"finetune": "Fine-tune (ImageNet weights)", "scratch": "From scratch (random weights)"}
LR_OPTIONS = [float(f"{m}e{e}") for e in range(-6, -1) for m in (1, 2, 5)] + [0.1]  # 1e-6 ... 1e-1, log scale


def lr_key(mode: str, arch: str) -> str:
    """The session-state key of the Train page's lr slider for a mode and architecture (each keeps its own)."""
    return f"lr-{mode}-{arch}"


def lr_label(lr: float) -> str:
    """5e-05 for the slider's round values, 1.2e-04 for a finder's suggestion."""
    return lr_text(lr)


def suggested_lrs(mode: str, arch: str) -> list[float]:
    """The suggestion of this tab's last learning-rate finder when it ran on `mode` and `arch` (for the slider)."""
    snap = finder_snapshot()
    if snap is None or snap.finding is None or snap.finding.suggestion is None:
        return []
    if (snap.config.mode, snap.config.arch) != (mode, arch):
        return []
    return [two_digits(snap.finding.suggestion)]


def use_finder_range(mode: str, lrs: list[float]) -> None:
    """Set the Experiments page's sweep to the finder's mode and rates (a button's on_click)."""
    st.session_state["exp-sweep-mode"] = mode
    st.session_state["exp-lrs"] = list(lrs)


def use_lr(mode: str, arch: str, lr: float) -> None:
    """Move the Train page's slider for `mode` and `arch` to `lr` (a button's on_click, before the slider draws)."""
    st.session_state[lr_key(mode, arch)] = two_digits(lr)


BATCH_SIZES = [8, 16, 32, 64, 128, 256]
IMAGE_SIZES = [64, 96, 128, 160, 192, 224]
MICRO_BATCHES = [0, 16, 32, 64, 128, 256]  # 0 = auto: training.micro_batch_size decides
MICRO_BATCH_HELP = ("Each step's batch runs forward and backward in chunks of this many photos; their gradients "
                    "add up to the book's, but BatchNorm normalises each chunk on its own, so this changes "
                    "BatchNorm's batch. Auto keeps the book's BatchNorm (the whole batch at once) wherever its "
                    "memory fits, and otherwise takes the largest chunk that fits and says so. Smaller chunks can "
                    "train faster on a CPU (docs/benchmarks.md, Speed).")
