"""Cached features: run the frozen copied layers once over every photo, then train only the new output layer.

With the copied layers frozen, their output for a photo never changes, so the book's exercise "freeze the
copied layers" needs the backbone only once per photo instead of once per photo per epoch. The new layer
then trains in milliseconds per epoch on the cached vectors. Each photo goes through the book's test
transform (Resize 256x256 + CenterCrop 224, exactly as evaluation does), plus, with head_views, that many
augmented views (the book's train transform), each also run once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .archs import get_arch
from .devices import autocast
from .distributed import all_reduce_sum
from .models import activations, output_layer

# Images per forward pass while extracting features: on the 2-core test CPU batches of 16 ran MobileNetV2
# at 143 img/s in bf16, batches of 128 at 95 (cache pressure); GPUs take large batches.
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
        return torch.empty(0, output_layer(model, arch).in_features, device=device), torch.empty(0, dtype=torch.long)
    return torch.cat(captured), torch.cat(labels).to(device)


def train_head_epoch(layer: nn.Linear, optimizer: torch.optim.Optimizer, features: torch.Tensor,
                     labels: torch.Tensor, batch_size: int, reduction: str, generator: torch.Generator,
                     on_batch: Callable[[float, int, int], None]) -> tuple[float, int, int]:
    """One epoch of the output layer alone on cached features, in shuffled batches; returns (summed loss,
    correct, seen) and calls on_batch(summed batch loss, batch correct, batch size) after each step."""
    layer.train()
    loss_sum, correct, seen = 0.0, 0, 0
    order = torch.randperm(len(labels), generator=generator).to(labels.device)
    for start in range(0, len(labels), batch_size):
        idx = order[start:start + batch_size]
        X, y = features[idx], labels[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = layer(X)
        losses = nn.functional.cross_entropy(logits, y, reduction="none")
        (losses.sum() / (len(y) if reduction == "mean" else 1)).backward()
        optimizer.step()
        batch_loss, batch_correct = float(losses.detach().sum()), int((logits.argmax(1) == y).sum())
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
        on_batch(batch_loss, batch_correct, len(y))
    return loss_sum, correct, seen


@torch.inference_mode()
def head_accuracy(layer: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the output layer on cached features (summed over ranks under torchrun)."""
    layer.eval()
    correct = float((layer(features).argmax(1) == labels).sum()) if len(labels) else 0.0
    correct, seen = all_reduce_sum([correct, float(len(labels))], features.device)
    return correct / max(seen, 1.0)
