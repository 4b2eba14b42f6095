"""A run's data: the dataset's splits as the batches one run iterates, decoded once into memory when they fit.

The book decodes every photo from disk in every epoch (two ImageFolders and DataLoaders); a run here decodes each
photo once (decoded.py) and draws the book's augmentations from memory, falling back to the book's streaming
when the photos would not fit. Under torchrun each rank gets its share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..config import TrainConfig
from ..devices import distributed
from .balance import BalancedSampler, class_counts
from .cleaned import apply_edits
from .dataset import PhotoSplit, split_photos
from .decoded import (
    MAX_DECODED_BYTES,
    DecodedEvalBatches,
    DecodedTrainBatches,
    decode_split,
    estimated_train_bytes,
)
from .edits import thaw
from .splits import DatasetSplits, resolve_splits
from .transforms import eval_preset, train_preset


@dataclass
class RunData:
    """The batches one run iterates: augmented train batches, the held-out batches every epoch is measured on
    (val, else test), the test batches measured once at the end when choosing on val, and, for output-layer
    epochs, the train photos through the test transform."""

    splits: DatasetSplits
    train: Iterable
    heldout: Iterable
    train_plain: Iterable | None
    train_views: Iterable | None  # augmented train batches (any order, labels with them) for head_views
    final_test: Iterable | None  # the test split, where the run chooses on val
    sizes: dict[str, int]  # split -> photos in this run (after --limit)
    decode_seconds: float
    train_counts: list[int]  # training photos of each class, in class order

    @property
    def train_size(self) -> int:
        """Training photos."""
        return self.sizes["train"]

    @property
    def heldout_size(self) -> int:
        """Photos of the split every epoch is measured on."""
        return self.sizes[self.splits.heldout]


def make_run_data(config: TrainConfig, device: torch.device, eval_batch: int,
                  ctx: distributed.DistContext = distributed.SINGLE, measured: bool = True) -> RunData:
    """The dataset's splits as batches: decoded once into memory when they fit (decode_once), else streamed from
    disk by DataLoaders exactly as the book does. Under torchrun each rank gets its share. `measured=False`
    leaves out the held-out and test batches (empty), for work that only trains."""
    splits = resolve_splits(config.data, config.val_fraction, config.split_seed)
    if config.edits:
        splits = apply_edits(splits, thaw(config.edits))
    train_transform = train_preset(config.arch, config.image_size)
    train_set = split_photos(splits, "train", train_transform, config.limit)
    eval_transform = eval_preset(config.arch, config.image_size)
    heldout_set = split_photos(splits, splits.heldout, eval_transform, config.limit) if measured else None
    test_set = (split_photos(splits, splits.final_test, eval_transform, config.limit)
                if splits.final_test and measured else None)
    sizes = {role: len(split_photos(splits, role, None, config.limit)) for role in splits.roles}
    counts = class_counts([label for _, label in train_set.samples], len(splits.classes))
    balanced = config.balance == "sampler"
    # A last batch of one image (on any rank) is dropped, as BatchNorm cannot train on it at small image sizes.
    per_rank = config.batch_size // ctx.world_size
    drop_last = math.ceil(len(train_set) / ctx.world_size) % per_rank == 1
    need_plain, need_views = config.head_epochs > 0, config.head_epochs > 0 and config.head_views > 0
    start = time.perf_counter()
    if config.decode_once and estimated_train_bytes(train_set.samples, config.image_size) <= MAX_DECODED_BYTES:
        load = train_set.loader

        def eval_batches(dataset: PhotoSplit, shard: distributed.DistContext = ctx) -> DecodedEvalBatches:
            return DecodedEvalBatches(decode_split(dataset.samples, load, "eval", config.image_size,
                                                   preset=eval_transform), eval_batch, device, shard, eval_transform)

        heldout = eval_batches(heldout_set) if heldout_set is not None else []
        final_test = eval_batches(test_set) if test_set is not None else None
        plain = eval_batches(train_set, distributed.SINGLE) if need_plain else None
        photos = (decode_split(train_set.samples, load, "train", config.image_size)
                  if config.epochs or need_views else None)
        if photos is not None and device.type == "cuda":
            photos = photos.to(device)  # one copy on the GPU, shared by the training and the view batches
        train = (DecodedTrainBatches(photos, config.batch_size, config.image_size, device, config.seed, drop_last, ctx,
                                     balanced, train_transform) if config.epochs else [])
        views = (DecodedTrainBatches(photos, eval_batch, config.image_size, device, config.seed + 1,
                                     preset=train_transform) if need_views else None)
        return RunData(splits, train, heldout, plain, views, final_test, sizes, time.perf_counter() - start,
                       counts)
    loader_args = {"num_workers": config.num_workers, "pin_memory": device.type == "cuda",
                   "persistent_workers": config.num_workers > 0}

    def eval_loader(dataset: PhotoSplit) -> DataLoader:
        if ctx.world_size > 1:
            dataset = Subset(dataset, distributed.shard(torch.arange(len(dataset)), ctx, pad=False).tolist())
        return DataLoader(dataset, batch_size=eval_batch, **loader_args)

    if balanced or ctx.world_size > 1:
        sampler = (BalancedSampler([label for _, label in train_set.samples], config.seed, ctx) if balanced else
                   DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=True, seed=config.seed))
        train = DataLoader(train_set, batch_size=config.batch_size // ctx.world_size, sampler=sampler,
                           drop_last=drop_last, **loader_args)
    else:
        train = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=drop_last,
                           generator=torch.Generator().manual_seed(config.seed), **loader_args)
    plain = (DataLoader(split_photos(splits, "train", eval_transform, config.limit), batch_size=eval_batch,
                        **loader_args) if need_plain else None)
    views = DataLoader(train_set, batch_size=eval_batch, **loader_args) if need_views else None
    return RunData(splits, train, eval_loader(heldout_set) if heldout_set is not None else [], plain, views,
                   eval_loader(test_set) if test_set is not None else None, sizes, 0.0, counts)
