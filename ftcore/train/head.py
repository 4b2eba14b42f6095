"""Output-layer epochs: the new output layer alone, trained on the features the frozen copied layers compute once
per photo (`features`), with the book's optimiser (SGD, weight decay, lr: head_lr_mult x lr with parameter
groups), its lr optionally decayed linearly to 0. The quick and best presets start with them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ..data.balance import balanced_order
from ..data.run_data import RunData
from ..models.build import fused_for_inference
from ..models.output_layer import output_layer
from ..records import BatchEnded, BatchRecord, EpochEnded, EpochRecord, Sink
from .evaluate import FUSE_MIN_IMAGES, Tally
from .features import extract_features
from .plan import RunPlan
from .progress import TrainingDiverged, record_heldout


@dataclass
class CachedFeatures:
    """What the output layer trains and is measured on: the frozen layers' features of every training photo (and
    each augmented view of it) and of every held-out photo, with their labels."""

    train: torch.Tensor
    train_labels: torch.Tensor
    heldout: torch.Tensor
    heldout_labels: torch.Tensor
    heldout_split: str = "test"  # the split the held-out features are of: val where the data has one, else test


class FeatureBatches:
    """Cached features and labels in batches, reshuffled by a generator of their own on every pass."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 balanced: bool = False) -> None:
        self.features, self.labels, self.batch_size = features, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.balanced = balanced  # each pass drawn with the classes in equal shares (data.balance), not shuffled

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        drawn = balanced_order(self.labels, self.generator) if self.balanced else \
            torch.randperm(len(self.labels), generator=self.generator)
        order = drawn.to(self.labels.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.features[idx], self.labels[idx]


def cache_features(model: nn.Module, data: RunData, plan: RunPlan,
                   stop: threading.Event | None = None) -> CachedFeatures | None:
    """The frozen copied layers' features of every training photo (through the test transform, then each augmented
    view) and every held-out photo; None when `stop` is set first."""
    arch, device, precision = plan.config.arch, plan.device, plan.feature_precision
    # The copied layers are frozen here, so BatchNorm can be folded into them once (a copy; the model is kept).
    frozen = fused_for_inference(model) if data.train_size + data.heldout_size >= FUSE_MIN_IMAGES else model.eval()
    parts = [extract_features(frozen, arch, data.train_plain, device, precision, stop)]
    for _ in range(plan.config.head_views):
        parts.append(extract_features(frozen, arch, data.train_views, device, precision, stop))
    heldout = extract_features(frozen, arch, data.heldout, device, precision, stop)
    if heldout is None or any(part is None for part in parts):
        return None
    return CachedFeatures(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), *heldout,
                          heldout_split=data.splits.heldout)


def train_head_epoch(layer: nn.Linear, optimizer: torch.optim.Optimizer, batches: FeatureBatches, plan: RunPlan,
                     epoch: int, sink: Sink, schedule: LRScheduler | None = None) -> EpochRecord:
    """One epoch of the output layer alone over shuffled batches of cached features; after each step `schedule`
    (if any) sets the next step's lr and the step is reported to `sink`."""
    layer.train()
    reduction, steps = plan.config.loss_reduction, len(batches)
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for step, (X, y) in enumerate(batches, start=1):
        optimizer.zero_grad(set_to_none=True)
        logits = layer(X)
        losses = nn.functional.cross_entropy(logits, y, reduction="none")
        objective = losses if plan.class_weights is None else losses * plan.class_weights[y]
        (objective.sum() / (len(y) if reduction == "mean" else 1)).backward()
        optimizer.step()
        batch_loss, batch_correct = float(losses.detach().sum()), int((logits.argmax(1) == y).sum())
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(epoch, step, batch_loss)
        if schedule is not None:
            schedule.step()
        sink(BatchEnded(epoch, step, steps, BatchRecord(epoch - 1 + step / steps, batch_loss / len(y),
                                                         batch_correct / len(y)),
                        0.0, seen, time.perf_counter() - start))
    seconds = time.perf_counter() - start
    return EpochRecord(float(epoch), loss_sum / max(seen, 1), correct / max(seen, 1), None, seen, seconds, seconds,
                       stage="head")


@torch.inference_mode()
def head_accuracy(layer: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> Tally:
    """Correct predictions per class of the output layer on cached features (summed over ranks under torchrun)."""
    layer.eval()
    num_classes = layer.out_features
    tally = Tally.of(layer(features).argmax(1).cpu(), labels.cpu(), num_classes) if len(labels) else \
        Tally(correct=[0] * num_classes, seen=[0] * num_classes)
    return tally.summed_over_ranks(features.device)


def train_output_layer(model: nn.Module, features: CachedFeatures, plan: RunPlan, stop: threading.Event,
                       sink: Sink) -> None:
    """The output-layer epochs: each one over the cached features, then measured on the held-out ones."""
    config = plan.config
    layer = output_layer(model, config.arch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=config.head_lr, weight_decay=config.weight_decay)
    batches = FeatureBatches(features.train, features.train_labels, config.batch_size, config.seed,
                             config.balance == "sampler")
    total_steps = len(batches) * config.head_epochs
    # head_lr_decay: each step's lr falls linearly, to 0 after the last one
    schedule = (LambdaLR(optimizer, lambda done: 1 - done / total_steps)
                if config.head_lr_decay else None)
    for epoch in range(1, config.head_epochs + 1):
        if stop.is_set():
            return
        record = train_head_epoch(layer, optimizer, batches, plan, epoch, sink, schedule)
        start = time.perf_counter()
        record_heldout(record, features.heldout_split, head_accuracy(layer, features.heldout, features.heldout_labels))
        record.eval_seconds = time.perf_counter() - start
        sink(EpochEnded(record))
