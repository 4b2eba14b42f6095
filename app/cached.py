"""Cached engine calls: nothing heavy runs twice for the same input. Summaries, pictures and results are kept with
`st.cache_data`, the photo check and models with `st.cache_resource`; results of a model are keyed by the model's
key (a run id, or a checkpoint upload's id).

The engine's modules that load torch (checkpoints, prediction, evaluation, explanations, export) are imported in
the functions that use them: the pages draw their controls from the torch-free ones first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app.tab import data_split, split_for
from ftcore.data.archives import unpack_uploaded_zip
from ftcore.data.dataset import thumbnail_bytes
from ftcore.data.images import jpeg_thumbnail, open_image
from ftcore.data.photo_check import FactsFile, PhotoCheck
from ftcore.data.summary import DatasetSummary, list_dataset
from ftcore.data.transforms import augmentation_preview as preview
from ftcore.models.trained import TrainedModel
from ftcore.util.paths import store_bytes

if TYPE_CHECKING:
    from torch import nn

    from ftcore.insight.evaluation import Evaluation
    from ftcore.insight.explain import BlockChange
    from ftcore.insight.predict import PhotoResult

UNPACKED_KEY = "unpacked_uploads"  # this session's unpacked zips, by upload id


def _tree_stamp(root: str) -> tuple[float, ...]:
    """Modification times of the folders two levels deep (split and class folders, or class folders and their
    subfolders): adding or removing photos changes it."""
    base = Path(root)
    level1 = [d for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
    level2 = [d for folder in level1 for d in folder.iterdir() if d.is_dir()]
    return tuple(f.stat().st_mtime for f in [base, *level1, *level2])


@st.cache_data(show_spinner="Listing the dataset...", max_entries=16)
def _listing(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> DatasetSummary:
    return list_dataset(root, val_fraction, split_seed)


@st.cache_resource(max_entries=16)
def _photo_check(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> PhotoCheck:
    """One background check per dataset, split and tree state, shared by every tab of the server."""
    listing = _listing(root, val_fraction, split_seed, stamp)
    return PhotoCheck(listing.photos(), FactsFile(listing.root)).start()


def photo_check(root: str, split: tuple[float | None, int] | None = None) -> PhotoCheck:
    """The check of every photo of `root` (decoded, hashed, measured), started in the background on first use."""
    val_fraction, split_seed = split if split is not None else data_split()
    return _photo_check(root, val_fraction, split_seed, _tree_stamp(root))


def dataset_summary(root: str, split: tuple[float | None, int] | None = None) -> DatasetSummary:
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
def _checked(root: str, val_fraction: float | None, split_seed: int, stamp: tuple[float, ...]) -> DatasetSummary:
    """The listing with its ended check's findings, merged once rather than on every rerun."""
    check = _photo_check(root, val_fraction, split_seed, stamp)
    return _listing(root, val_fraction, split_seed, stamp).with_findings(check.findings)


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str) -> bytes:
    """data.dataset.thumbnail_bytes, cached."""
    return thumbnail_bytes(path)


@st.cache_data(show_spinner=False, max_entries=32)
def augmentation_preview(path: str, image_size: int, n: int, draw: int) -> tuple[list[np.ndarray], np.ndarray]:
    """data.transforms.augmentation_preview, cached per `draw` (a new draw number gives new random crops)."""
    return preview(path, image_size, n)


def unpacked_upload(upload: UploadedFile) -> str:
    """data.archives.unpack_uploaded_zip for an uploaded file, once per upload (not re-read on every rerun)."""
    unpacked = st.session_state.setdefault(UNPACKED_KEY, {})
    if upload.file_id not in unpacked:
        with st.spinner("Unpacking the archive..."):
            unpacked[upload.file_id] = str(unpack_uploaded_zip(upload.getvalue()))
    return unpacked[upload.file_id]


@st.cache_resource(max_entries=2, show_spinner="Loading the checkpoint...")
def _checkpoint(path: str, mtime: float) -> TrainedModel:
    from ftcore.models.checkpoint import load_checkpoint  # torch, only once a checkpoint is uploaded

    return load_checkpoint(path)


def checkpoint_from_upload(payload: bytes) -> TrainedModel:
    """An uploaded checkpoint file, stored once under the cache and loaded once (keyed by path and mtime)."""
    path = store_bytes(payload, "checkpoints", ".pt")
    return _checkpoint(str(path), path.stat().st_mtime)


@st.cache_data(show_spinner="Classifying...", max_entries=16)
def classify(model_key: str, _trained: TrainedModel, photos: list[tuple[str, bytes]]) -> list[PhotoResult]:
    """predict.classify_photos, cached by model key and photo contents."""
    from ftcore.insight.predict import classify_photos  # torch, only once photos are classified

    return classify_photos(_trained, photos)


def evaluation(model_key: str, trained: TrainedModel, root: str, limit: int | None) -> Evaluation:
    """evaluate_photos on `root`'s test split, else its val split (the run's own split on its own data; at most
    `limit` photos per class), cached."""
    return _evaluation(model_key, trained, root, limit, split_for(root, trained.config))


@st.cache_data(show_spinner="Evaluating the held-out photos...", max_entries=8)
def _evaluation(model_key: str, _trained: TrainedModel, root: str, limit: int | None,
                split: tuple[float | None, int]) -> Evaluation:
    from ftcore.insight.evaluation import evaluate_photos  # torch, only once a model is evaluated

    return evaluate_photos(_trained.model, _trained.classes, _trained.eval_transform, root, None, limit, _trained.arch,
                          val_fraction=split[0], split_seed=split[1])


@st.cache_resource(max_entries=2, show_spinner="Rebuilding the weights the run started from...")
def _initial_model(model_key: str, _trained: TrainedModel) -> nn.Module:
    from ftcore.insight import explain  # torch, only once a model is explained

    return explain.initial_model(_trained.config, _trained.classes, _trained.weights.path)


@st.cache_data(show_spinner="Computing the feature maps...", max_entries=8)
def feature_map(model_key: str, _trained: TrainedModel, root: str, limit: int | None) -> dict:
    """PCA of the penultimate features of the test photos, before training (the starting weights) and after."""
    from ftcore.insight import explain  # torch, only once a model is explained
    from ftcore.insight.evaluation import evaluate_photos  # torch too

    after = evaluation(model_key, _trained, root, limit)
    val_fraction, split_seed = split_for(root, _trained.config)
    before = evaluate_photos(_initial_model(model_key, _trained), _trained.classes, _trained.eval_transform, root,
                            None, limit, _trained.arch, val_fraction=val_fraction, split_seed=split_seed)
    (before_xy, before_ratio), (after_xy, after_ratio) = explain.pca_2d(before.features), explain.pca_2d(after.features)
    return {"before": (before_xy, before_ratio), "after": (after_xy, after_ratio), "targets": after.targets,
            "names": [Path(p).name for p in after.paths]}


@st.cache_data(show_spinner="Comparing the weights with where they started...", max_entries=16)
def weight_changes(model_key: str, _trained: TrainedModel) -> list[BlockChange]:
    """Relative change of each block's weights from the run's starting weights."""
    from ftcore.insight import explain  # torch, only once a model is explained

    return explain.model_weight_change(_initial_model(model_key, _trained), _trained.model)


@st.cache_data(show_spinner="Computing Grad-CAM...", max_entries=64)
def grad_cam_overlay(model_key: str, _trained: TrainedModel, name: str, payload: bytes) -> tuple[bytes, str]:
    """The photo with the Grad-CAM heatmap of its predicted class over it (JPEG), and that class."""
    from ftcore.insight import explain  # torch, only once a model is explained

    image = open_image(payload, name)
    cam, index = explain.grad_cam_photo(_trained.model, _trained.eval_transform, image, arch=_trained.arch)
    return jpeg_thumbnail(explain.overlay(image, cam), 320), _trained.classes[index]


@st.cache_data(show_spinner="Exporting...", max_entries=8)
def export_file(model_key: str, _trained: TrainedModel, fmt: str) -> bytes:
    """The model as TorchScript or ONNX bytes, for a download button."""
    from ftcore.insight import export  # torch, only once a model is exported

    return export.export_bytes(_trained.model, _trained.eval_transform, _trained.classes, _trained.arch, fmt)
