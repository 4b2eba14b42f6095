"""Evaluation: a model over held-out photos in eval mode, the one pass every measurement of the lab makes (each
epoch's held-out accuracy here, every photo's probabilities and features in `insight.evaluation`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
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


@torch.inference_mode()
def evaluate(net: nn.Module, batches: Iterable, device: torch.device, precision: str = "fp32",
             stop: threading.Event | None = None, fuse: bool = True) -> float | None:
    """Accuracy on `batches` in eval mode (BatchNorm folded into the convolutions, except under DataParallel, which
    keeps splitting batches over the GPUs); None when `stop` is set before it finishes."""
    if isinstance(net, nn.parallel.DistributedDataParallel):
        net = net.module
    net = fused_for_inference(net) if fuse and not isinstance(net, nn.DataParallel) else net.eval()
    correct = seen = 0
    held_out = EvalPass(net, batches, device, precision, stop)
    for logits, y in held_out:
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += len(y)
    if not held_out.complete:
        return None
    correct, seen = distributed.all_reduce_sum([correct, seen], device)  # a no-op in one process
    return correct / max(seen, 1)
