"""Memory a training run needs: an estimate from measured figures, to admit runs that fit.

A run's peak resident memory on the CPU is modelled as

    base (Python, torch, the model, its gradients; a smaller base for output-layer-only runs)
    + activations of one forward/backward of `micro` photos (per photo, by training precision, x (size/224)^2)
    + the float input batch (twice when the photos stream from disk)
    + the decoded training photos (decode_once; decoded.estimated_train_bytes, an upper bound)
    + the decoded evaluation crops (3 bytes a pixel)

and output-layer-only epochs run the frozen layers in inference, `feature_batch_size` photos at a time. The
base and per-photo figures are measured by `python -m benchmarks.memory.table`; the rest is computed. The
estimate adds SAFETY_MARGIN on top.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch

from ..archs import get_arch
from ..config import TrainConfig
from ..data.decoded import MAX_DECODED_BYTES, estimated_train_bytes
from ..data.splits import resolve_splits
from ..devices.precision import resolve_precision
from ..devices.precision import training_precision as precision_on
from ..errors import FtcoreError
from .features import GPU_FEATURE_BATCH, feature_batch_size

# From benchmarks/results/memory-table-cpu.json (benchmarks/memory/table.py); bytes, per photo at 224 px:
# base and activations (fp32, bf16) of full training, and base and activations (bf16) of the frozen layers' pass.
MEASURED: dict[str, dict[str, int]] = {
    "resnet18": {"base": 1135206362, "fp32_photo": 20473964, "bf16_photo": 11133450,
                 "inference_base": 952548016, "inference_photo": 3836501},
    "resnet34": {"base": 1110398687, "fp32_photo": 35887413, "bf16_photo": 17982923,
                 "inference_base": 1180366160, "inference_photo": 2803371},
    "resnet50": {"base": 1345030538, "fp32_photo": 84299861, "bf16_photo": 45879125,
                 "inference_base": 1163965776, "inference_photo": 4979627},
    "mobilenet_v2": {"base": 1019151626, "fp32_photo": 77318634, "bf16_photo": 40025917,
                     "inference_base": 854612656, "inference_photo": 3319893},
}
# Networks not in MEASURED are estimated by a rule fitted over the four measured ones (upper bounds of their
# ratios; docs/benchmarks.md, "Memory of any torchvision network"): each figure is PROCESS_BASE plus bytes per
# parameter, or bytes per value one photo's forward pass produces (the catalog's values_per_photo, 4 bytes each)
# times a factor.
PROCESS_BASE = 1024**3  # Python, torch and torchvision before a model exists
RULE = {"base_per_param": 16, "inference_base_per_param": 12,
        "fp32_per_value": 1.0, "bf16_per_value": 0.55, "inference_per_value": 0.15}
SAFETY_MARGIN = 0.15  # added on top of the model's estimate
# What a process's CUDA context and PyTorch's kernels take on a GPU before its first tensor (an upper bound of the
# few hundred MB that CUDA 12 reports on current GPUs; estimate_gpu_bytes adds it to every process).
CUDA_CONTEXT_BYTES = 1 * 1024**3
# The whole batch is the default when its estimate fits this share of the machine's memory; the rest is left to
# the system, the server and a browser.
FITS_SHARE = 0.75
MICRO_BATCH_CHOICES = (64, 32, 16, 8)  # after the whole batch, the micro-batches largest_fitting_micro_batch tries
HELDOUT_PER_TRAIN = 0.5  # held-out photos assumed per training photo when only the training photos are counted
GB = 1024**3
MEMINFO = Path("/proc/meminfo")  # Linux's memory figures; elsewhere the machine's total stands in for both


@dataclasses.dataclass(frozen=True)
class PhotoCounts:
    """Photos a run holds: training photos, and evaluation photos decoded as crops (held-out and test)."""

    train: int
    evaluation: int


def photo_counts(config: TrainConfig, train_photos: int | None = None) -> PhotoCounts:
    """The run's photo counts: from `train_photos` when given (held-out ones assumed), else from its dataset."""
    if train_photos is not None:
        return PhotoCounts(train_photos, round(train_photos * HELDOUT_PER_TRAIN))
    splits = resolve_splits(config.data, config.val_fraction, config.split_seed)

    def count(role: str) -> int:
        per_class = splits.counts(role).values()
        return sum(per_class if config.limit is None else (min(n, config.limit) for n in per_class))

    evaluation = count(splits.heldout) + (count(splits.final_test) if splits.final_test else 0)
    return PhotoCounts(count("train"), evaluation)


def training_precision(config: TrainConfig, precision: str | None = None) -> str:
    """The arithmetic a CPU run of `config` trains in (as fit chooses it); `precision` overrides config's."""
    return precision_on(dataclasses.replace(config, precision=precision or config.precision), torch.device("cpu"))


def cpu_micro_batch(config: TrainConfig, precision: str | None = None, counts: PhotoCounts | None = None) -> int:
    """Photos per forward/backward of a CPU run of `config`: the config's, else fitting_micro_batch's (the run's
    `counts`, when known, spare reading its dataset again)."""
    if config.micro_batch:
        return min(config.micro_batch, config.batch_size)
    return fitting_micro_batch(config, training_precision(config, precision), counts)


def measured_figures(arch: str) -> dict[str, int]:
    """MEASURED's figures for `arch`, else RULE's from its catalog facts (the same keys, per photo at 224 px)."""
    if arch in MEASURED:
        return MEASURED[arch]
    spec = get_arch(arch)  # an unknown name raises the usual error
    values = 4 * spec.values_per_photo * (224 / spec.values_at) ** 2
    return {"base": round(PROCESS_BASE + RULE["base_per_param"] * spec.parameters),
            "fp32_photo": round(RULE["fp32_per_value"] * values), "bf16_photo": round(RULE["bf16_per_value"] * values),
            "inference_base": round(PROCESS_BASE + RULE["inference_base_per_param"] * spec.parameters),
            "inference_photo": round(RULE["inference_per_value"] * values)}


def estimate_from_counts(config: TrainConfig, counts: PhotoCounts, precision: str | None = None) -> int:
    """Peak RSS in bytes of a CPU run of `config` holding `counts` photos, safety margin included."""
    figures = measured_figures(config.arch)
    side = config.image_size
    scale = (side / 224) ** 2
    crop = 3 * side * side  # one decoded evaluation crop, uint8
    decoded = config.decode_once and estimated_train_bytes([("", 0)] * counts.train, side) <= MAX_DECODED_BYTES
    held = counts.evaluation * crop if decoded else 0  # held-out (and test) crops, kept for the whole run
    phases = []
    if config.head_epochs:  # the frozen layers in inference, in the features' precision (bf16 halves fp32's)
        batch = feature_batch_size(torch.device("cpu"))
        bf16 = resolve_precision(precision or config.precision, torch.device("cpu")) == "bf16"
        views = config.head_views
        features = counts.train * (1 + views) * get_arch(config.arch).feature_dim * 4
        photos = counts.train * crop if decoded else 0  # the training photos' crops, for their features
        if views and decoded:
            photos += estimated_train_bytes([("", 0)] * counts.train, side)
        activations = figures["inference_photo"] * (1 if bf16 else 2) * batch * scale
        phases.append(figures["inference_base"] + activations + batch * crop * 4 + features + photos)
    if config.epochs:
        train_precision = training_precision(config, precision)
        micro = cpu_micro_batch(config, precision, counts)
        per_photo = figures["fp32_photo"] if train_precision == "fp32" else figures["bf16_photo"]
        inputs = config.batch_size * crop * 4 * (1 if decoded else 2)
        photos = estimated_train_bytes([("", 0)] * counts.train, side) if decoded else 0
        phases.append(figures["base"] + per_photo * micro * scale + inputs + photos)
    return round((held + max(phases, default=figures["base"])) * (1 + SAFETY_MARGIN))


def estimate_run_bytes(config: TrainConfig, train_photos: int | None = None, precision: str | None = None) -> int:
    """Peak resident memory in bytes of a child process training `config` on the CPU, safety margin included."""
    return estimate_from_counts(config, photo_counts(config, train_photos), precision)


def _meminfo(field: str) -> int | None:
    """One /proc/meminfo figure in bytes, or None where there is none."""
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def total_bytes() -> int:
    """This machine's physical memory in bytes."""
    total = _meminfo("MemTotal")
    return total if total is not None else os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int:
    """Memory available to a new process now (MemAvailable), else the machine's total, in bytes."""
    available = _meminfo("MemAvailable")
    return available if available is not None else os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def fitting_micro_batch(config: TrainConfig, precision: str, counts: PhotoCounts | None = None) -> int:
    """Photos per forward pass of a CPU run whose config leaves it to ftcore: the whole batch (the book's
    BatchNorm) when its estimate fits FITS_SHARE of this machine's memory, else the largest of 64, 32, 16, 8 that
    fits (8 when none does: the backend's admission and the out-of-memory message take it from there)."""
    chosen = dataclasses.replace(config, precision=precision)
    return largest_fitting_micro_batch(chosen, FITS_SHARE * total_bytes(), counts or readable_counts(config)) \
        or min(MICRO_BATCH_CHOICES)


def readable_counts(config: TrainConfig) -> PhotoCounts:
    """The run's photo counts; none where its data cannot be read yet (a config being checked), so that only the
    model's share is estimated."""
    try:
        return photo_counts(config)
    except FtcoreError:
        return PhotoCounts(0, 0)


def largest_fitting_micro_batch(config: TrainConfig, budget_bytes: float,
                                counts: PhotoCounts | None = None) -> int | None:
    """The largest of (batch, 64, 32, 16, 8) photos per forward pass whose estimate fits; None when 8 does not."""
    counts = counts or photo_counts(config)
    choices = sorted({m for m in (config.batch_size, *MICRO_BATCH_CHOICES) if m <= config.batch_size}, reverse=True)
    for micro in choices:
        if estimate_from_counts(dataclasses.replace(config, micro_batch=micro), counts) <= budget_bytes:
            return micro
    return None


def estimate_gpu_bytes(config: TrainConfig, procs: int = 1) -> int:
    """GPU memory in bytes that each of a run's `procs` processes needs on its GPU, safety margin included: the
    CUDA context, the weights and their gradients, and the activations of one forward/backward of its share of
    the batch (the per-photo figures measured on the CPU, in fp32 unless the run asks for bf16: an upper bound
    under precision auto). Output-layer-only runs pass GPU_FEATURE_BATCH photos at a time through the frozen
    layers in bf16."""
    figures, scale = measured_figures(config.arch), (config.image_size / 224) ** 2
    weights = get_arch(config.arch).parameters * 4
    phases = []
    if config.head_epochs:
        phases.append(weights + figures["inference_photo"] * GPU_FEATURE_BATCH * scale)
    if config.epochs:
        photos = min(config.micro_batch or config.batch_size, math.ceil(config.batch_size / procs))
        per_photo = figures["bf16_photo" if config.precision == "bf16" else "fp32_photo"]
        phases.append(2 * weights + per_photo * photos * scale)
    return round((CUDA_CONTEXT_BYTES + max(phases)) * (1 + SAFETY_MARGIN))


def too_big_for_gpu_message(config: TrainConfig, need: int, have: int) -> str:
    """One sentence: what the run needs of a GPU, what the largest GPU here has, and what to lower."""
    return (f"this run needs about {need / GB:.1f} GB of GPU memory ({config.arch}, batch {config.batch_size} at "
            f"{config.image_size} px) but the largest GPU here has {have / GB:.1f} GB; lower the batch size, the "
            "photos per forward pass or the image size")


def too_big_message(config: TrainConfig, need: int, have: int, where: str = "this machine") -> str:
    """One sentence: what the run needs, what the machine (`where`) has, and what to lower."""
    if config.epochs:
        micro = cpu_micro_batch(config)
        passes = "in one pass" if micro >= config.batch_size else f"in passes of {micro}"
        what = f"{config.arch}, batch {config.batch_size} {passes} at {config.image_size} px"
        advice = "lower the batch size, the photos per forward pass or the image size"
    else:
        what = f"{config.arch}, output layer only, at {config.image_size} px"
        advice = "lower the image size or the number of photos"
    return f"this run needs about {need / GB:.1f} GB ({what}) but {where} has {have / GB:.1f} GB; {advice}"


# Phrases with which PyTorch and the C allocator report memory running out outside torch.OutOfMemoryError.
OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """True for the ways PyTorch and Python say memory ran out (GPU or CPU)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(w in str(error).lower() for w in OUT_OF_MEMORY_WORDS)


def out_of_memory_message(config: TrainConfig, devices: list[str]) -> str:
    """What a run that ran out of memory says: where, at which sizes, and what to lower."""
    where = ", ".join(devices) or config.device
    return (f"out of memory on {where} while training at batch size {config.batch_size} and image "
            f"size {config.image_size}; choose a smaller batch size or image size and start again")
