"""Unequal classes: the two ways a run can give every class an equal say in training, whatever its photo count.

- "loss": each photo's loss is weighted by N / (K * n_c) (N photos, K classes, n_c of its class), so every class
  adds the same total to the summed loss, and over a whole epoch the weights average 1: the book's scale of loss
  and learning rate is kept.
- "sampler": each epoch draws N photos with replacement, each class equally likely, so every batch holds the
  classes in equal shares on average; small classes are seen several times an epoch, large ones partly.

"none" is the book's: every photo once an epoch, its loss unweighted. How the two compare is measured in
docs/benchmarks.md ("Unequal classes").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from ..devices.distributed import SINGLE, DistContext, shard


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    """Photos of each class among `labels` (class indices), in class order."""
    counts = [0] * num_classes
    for label in labels:
        counts[label] += 1
    return counts


def class_weights(counts: Sequence[int]) -> torch.Tensor:
    """The loss weight of a photo of each class: N / (K * n_c), 0 for a class without photos (it never occurs)."""
    total, present = sum(counts), sum(1 for n in counts if n)
    return torch.tensor([total / (present * n) if n else 0.0 for n in counts], dtype=torch.float32)


def balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One epoch's photo indices drawn class-balanced: len(labels) draws with replacement, every class equally
    likely and every photo equally likely within its class."""
    counts = torch.bincount(labels.cpu())
    per_photo = class_weights(counts.tolist())[labels.cpu()]
    return torch.multinomial(per_photo, len(labels), replacement=True, generator=generator)


class BalancedSampler(Sampler[int]):
    """A DataLoader sampler drawing each epoch class-balanced (balanced_order); under torchrun every rank draws the
    same order from the same seed and takes its share, as DistributedSampler does with a shuffle."""

    def __init__(self, labels: Sequence[int], seed: int, ctx: DistContext = SINGLE) -> None:
        self.labels, self.ctx = torch.tensor(list(labels)), ctx
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.ctx.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(shard(balanced_order(self.labels, self.generator), self.ctx, pad=True).tolist())
