"""The choices the pages offer and how they label them: modes, learning rates (each mode and architecture keeps its
own slider), batch and image sizes, photos per forward pass, and the finder's rates for the slider and the sweep."""

from __future__ import annotations

import streamlit as st

from app.jobs import finder_snapshot
from ftcore.config import lr_text
from ftcore.lr_find.finding import two_digits

MAX_PHOTOS = 100  # photos classified per request on Predict; the page says when it cut the rest

OTHER_ARCH = "other"  # the Train page's architecture radio's last option: a torchvision network named in a text field
PRESET_LABELS = {"book": "The book's", "quick": "Quick (output layer on cached features)",
                 "best": "Best (plus augmented views)"}
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
MICRO_BATCHES = [0, 16, 32, 64, 128, 256]  # 0 = auto: train.plan.micro_batch_size decides
MICRO_BATCH_HELP = ("Each step's batch runs forward and backward in chunks of this many photos; their gradients "
                    "add up to the book's, but BatchNorm normalises each chunk on its own, so this changes "
                    "BatchNorm's batch. Auto keeps the book's BatchNorm (the whole batch at once) wherever its "
                    "memory fits, and otherwise takes the largest chunk that fits and says so. Smaller chunks can "
                    "train faster on a CPU (docs/benchmarks.md, Speed).")
