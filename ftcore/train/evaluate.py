"""Evaluation: a model over held-out photos in eval mode, the one pass every measurement of the lab makes (each
epoch's held-out accuracy here, every photo's probabilities and features in `insight.evaluation`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import distributed
from ..devices.precision import autocast
from ..models.build import fused_for_inference
from .step import to_device

# Folding BatchNorm into the convolutions for evaluation costs a fixed fraction of a second and speeds up every
# image after it; below this many images it costs more than it saves.
FUSE_MIN_IMAGES = 256


class EvalPass:
    """Every batch of `batches` through `net` (already in eval mode), on `device` in `precision`, with its labels;
    it ends early once `stop` is set, and `complete` says whether every batch went through."""

    def __init__(self, net: nn.Module, batches: Iterable, device: torch.device, precision: str = "fp32",
                 stop: threading.Event | None = None) -> None:
        self.net, self.batches, self.device, self.precision, self.stop = net, batches, device, precision, stop
        self.complete = False

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        for X, y in self.batches:
            if self.stop is not None and self.stop.is_set():
                return
            X, y = to_device(X, self.device), y.to(self.device)
            with autocast(self.device, self.precision):
                outputs = self.net(X)
            yield outputs, y
        self.complete = True


@dataclass(frozen=True)
class Tally:
    """Correct predictions and photos of each class over one pass: the accuracy, and each class's recall."""

    correct: list[int]  # per class, in class order
    seen: list[int]

    @property
    def accuracy(self) -> float:
        """Correct predictions over all photos (0 without photos)."""
        return sum(self.correct) / max(sum(self.seen), 1)

    @property
    def recalls(self) -> list[float | None]:
        """Each class's accuracy on its own photos; None for a class without photos here."""
        return [c / n if n else None for c, n in zip(self.correct, self.seen, strict=True)]

    @classmethod
    def of(cls, predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Tally:
        """The tally of one batch's predictions."""
        hits = torch.bincount(labels[predicted == labels], minlength=num_classes)
        return cls(correct=hits.tolist(), seen=torch.bincount(labels, minlength=num_classes).tolist())

    def __add__(self, other: Tally) -> Tally:
        return Tally(correct=[a + b for a, b in zip(self.correct, other.correct, strict=True)],
                     seen=[a + b for a, b in zip(self.seen, other.seen, strict=True)])

    def summed_over_ranks(self, device: torch.device) -> Tally:
        """Every rank's tally added up under torchrun (this one in one process)."""
        k = len(self.correct)
        total = [int(v) for v in distributed.all_reduce_sum([*self.correct, *self.seen], device)]
        return Tally(correct=total[:k], seen=total[k:])


@torch.inference_mode()
def evaluate(net: nn.Module, batches: Iterable, device: torch.device, num_classes: int, precision: str = "fp32",
             stop: threading.Event | None = None, fuse: bool = True) -> Tally | None:
    """Correct predictions per class on `batches` in eval mode (BatchNorm folded into the convolutions, except under
    DataParallel, which keeps splitting batches over the GPUs); None when `stop` is set before it finishes."""
    if isinstance(net, nn.parallel.DistributedDataParallel):
        net = net.module
    net = fused_for_inference(net) if fuse and not isinstance(net, nn.DataParallel) else net.eval()
    tally = Tally(correct=[0] * num_classes, seen=[0] * num_classes)
    held_out = EvalPass(net, batches, device, precision, stop)
    for logits, y in held_out:
        tally += Tally.of(logits.argmax(dim=1).cpu(), y.cpu(), num_classes)
    if not held_out.complete:
        return None
    return tally.summed_over_ranks(device)  # the tally as it is in one process
