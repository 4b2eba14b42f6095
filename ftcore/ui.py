"""Streamlit glue: the one ftcore module that imports streamlit.

It holds what every page needs and nothing a page draws: the cached wrappers around ftcore's functions
(`st.cache_data` for summaries and pictures, `st.cache_resource` for models) and this session's state
(the chosen data, the training job, the kept runs). Pages call these and lay out the results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from . import data
from .checkpoints import Checkpoint, load_checkpoint
from .errors import FtcoreError
from .jobs import JobSnapshot, Run, TrainingJob
from .paths import store_bytes
from .predict import PhotoResult, Predictor, classify_photos
from .training import TrainConfig

DATA_KEY, JOB_KEY, RUNS_KEY, UNPACKED_KEY = "data_root", "job", "runs", "unpacked_uploads"
POLL_SECONDS = 1.0  # how often the Train page redraws while a job runs


# --------------------------------------------------------------------------------------------------
# This session's state (one browser tab = one session = its own data choice, job and runs).


def data_root() -> str | None:
    """The data this session works on: its own choice, else the hot-dog set found on this machine."""
    if DATA_KEY not in st.session_state:
        found = data.find_data()
        st.session_state[DATA_KEY] = str(found) if found else None
    return st.session_state[DATA_KEY]


def set_data_root(root: str | Path) -> None:
    """Use `root` (already checked) from now on in this session."""
    st.session_state[DATA_KEY] = str(root)


def runs() -> list[Run]:
    """Runs this session finished or stopped, oldest first; a job that has just ended joins them here."""
    kept = st.session_state.setdefault(RUNS_KEY, [])
    job = current_job()
    if job is not None and all(run.id != job.id for run in kept):
        snap = job.snapshot()
        if snap.done and snap.result is not None:
            kept.append(job.to_run())
    return kept


def current_job() -> TrainingJob | None:
    """This session's latest training job, running or done."""
    return st.session_state.get(JOB_KEY)


def job_running() -> bool:
    """True while this session's job has not ended."""
    job = current_job()
    return job is not None and not job.snapshot().done


def start_job(config: TrainConfig) -> TrainingJob:
    """Start training `config` in a background thread for this session (one job at a time)."""
    if job_running():
        raise FtcoreError("a run is already in progress in this tab; stop it or wait for it to finish")
    config.validate()
    job = TrainingJob(config).start()
    st.session_state[JOB_KEY] = job
    return job


def collect_job() -> JobSnapshot | None:
    """Snapshot of this session's job (if any), after adding it to the runs if it has just ended."""
    runs()
    job = current_job()
    return job.snapshot() if job is not None else None


# --------------------------------------------------------------------------------------------------
# Cached work: nothing heavy runs twice for the same input.


def _tree_stamp(root: str) -> tuple[float, ...]:
    """Modification times of the tree's folders: adding or removing photos changes it."""
    base = Path(root)
    folders = [base] + [d for s in data.SPLITS if (base / s).is_dir() for d in [base / s, *(base / s).iterdir()]]
    return tuple(f.stat().st_mtime for f in folders if f.is_dir())


@st.cache_data(show_spinner="Scanning the dataset...", max_entries=16)
def _summary(root: str, stamp: tuple[float, ...]) -> data.DatasetSummary:
    return data.summarize(root)


def dataset_summary(root: str) -> data.DatasetSummary:
    """data.summarize, cached until the tree changes."""
    return _summary(root, _tree_stamp(root))


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


@st.cache_resource(max_entries=8, show_spinner=False)
def _run_predictor(run_id: str, _run: Run) -> Predictor:
    return Predictor.from_result(_run.result)


@st.cache_resource(max_entries=8, show_spinner="Loading the checkpoint...")
def _checkpoint(path: str, mtime: float) -> Checkpoint:
    return load_checkpoint(path)


def predictor_for_run(run: Run) -> Predictor:
    """A shared, read-only predictor for one of this session's runs (cached by run id)."""
    return _run_predictor(run.id, run)


def checkpoint_from_upload(payload: bytes) -> Checkpoint:
    """An uploaded checkpoint file, stored once under the cache and loaded once (keyed by path and mtime)."""
    path = store_bytes(payload, "checkpoints", ".pt")
    return _checkpoint(str(path), path.stat().st_mtime)


def predictor_for_checkpoint(checkpoint: Checkpoint) -> Predictor:
    """A predictor around a cached checkpoint's model (used in eval mode only)."""
    return Predictor(checkpoint.model, checkpoint.classes, checkpoint.eval_transform)


@st.cache_data(show_spinner="Classifying...", max_entries=64)
def classify(model_key: str, _predictor: Predictor, photos: list[tuple[str, bytes]]) -> list[PhotoResult]:
    """predict.classify_photos, cached by model key and photo contents."""
    return classify_photos(_predictor, photos)


def three_decimals(*columns: str) -> dict:
    """st.dataframe column_config showing these number columns as 0.939, not 0.94."""
    return {name: st.column_config.NumberColumn(format="%.3f") for name in columns}


def show_error(error: Exception) -> None:
    """One readable line for a user-fixable error."""
    st.error(str(error), icon=":material/error:")
