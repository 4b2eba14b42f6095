"""Cached features: the frozen copied layers run once over every photo, for the output layer to train on.

With the copied layers frozen, their output for a photo never changes, so the book's exercise "freeze the
copied layers" needs the backbone only once per photo instead of once per photo per epoch. Each photo goes
through the book's test transform (Resize 256x256 + CenterCrop 224, exactly as evaluation does), plus, with
head_views, that many augmented views (the book's train transform), each also run once. The output layer's
epochs on them are `head`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch
from torch import nn

from ..archs import get_arch
from ..devices.precision import autocast
from ..models.activations import activations

# Images per forward pass while extracting features: on a CPU small batches run faster than large ones (cache
# pressure); GPUs take large batches.
CPU_FEATURE_BATCH = 16
GPU_FEATURE_BATCH = 256


def feature_batch_size(device: torch.device) -> int:
    """Images per forward pass when extracting features on `device`."""
    return CPU_FEATURE_BATCH if device.type == "cpu" else GPU_FEATURE_BATCH


@torch.inference_mode()
def extract_features(model: nn.Module, arch: str, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     device: torch.device, precision: str = "fp32",
                     stop: threading.Event | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(features, labels): what the output layer receives for every image of `batches`, in order, as float32
    on `device`; None when `stop` is set first."""
    model.eval()
    view = activations(model, {get_arch(arch).feature_node: "features"})  # the output layer itself never runs
    captured: list[torch.Tensor] = []
    labels = []
    for X, y in batches:
        if stop is not None and stop.is_set():
            return None
        with autocast(device, precision):
            captured.append(view(X.to(device, non_blocking=True))["features"].float())  # streamed: from the CPU
        labels.append(y)
    if not captured:
        return torch.empty(0, get_arch(arch).feature_dim, device=device), torch.empty(0, dtype=torch.long)
    return torch.cat(captured), torch.cat(labels).to(device)
