"""Photos decoded once per run: the book's transforms applied to in-memory uint8 tensors, a batch at a time.

The book's DataLoader decodes every JPEG again in every epoch, and on a small CPU that costs about as much
as the convolutions of a small network. Here each photo is decoded once, through the same safe decoder:

- test photos go through the book's test_augs up to the crop (Resize 256x256, CenterCrop 224) and are kept
  as uint8 crops; ToTensor + Normalize of a uint8 image is exact, so evaluation sees the very same pixels;
- train photos are kept whole, shrunk only when their short side exceeds twice the crop (448 px for 224:
  a smaller cap measurably blurred the random crops, which can zoom into 8% of a photo), and
  RandomResizedCrop + RandomHorizontalFlip run per batch on the training device (GPU or CPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..devices.distributed import SINGLE, DistContext, shard
from .balance import balanced_order
from .transforms import IMAGENET_MEAN, IMAGENET_STD, EvalPreset, TrainPreset

# The decoded training photos may not take more memory than this; past it, training streams from disk.
MAX_DECODED_BYTES = 6 * 1024**3
# RandomResizedCrop's defaults (the book uses them): area 8%-100% of the photo, aspect ratio 3/4 to 4/3.
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def decode_threads() -> int:
    """Threads for decoding: PIL releases the GIL while it decodes, so every core helps."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def capped(image: Image.Image, short_side: int) -> Image.Image:
    """`image` shrunk (aspect kept) so its short side is at most `short_side`; smaller photos are untouched."""
    w, h = image.size
    if min(w, h) <= short_side:
        return image
    scale = short_side / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a 3xHxW uint8 tensor (what ToTensor would divide by 255)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


@dataclass
class DecodedSplit:
    """One split decoded into memory: uint8 photos (a list of 3xHxW, or one Nx3xSxS tensor of crops)."""

    images: list[torch.Tensor] | torch.Tensor
    labels: torch.Tensor  # int64 class indices, in ImageFolder order
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> DecodedSplit:
        """The same photos on `device` (no copy where they already are)."""
        if isinstance(self.images, torch.Tensor):
            return DecodedSplit(self.images.to(device), self.labels, self.paths)
        return DecodedSplit([x.to(device) for x in self.images], self.labels, self.paths)


def decode_split(samples: Sequence[tuple[str, int]], loader, kind: str, image_size: int,
                 threads: int | None = None, preset: EvalPreset | None = None) -> DecodedSplit:
    """Decode `samples` ((path, class) pairs, e.g. an ImageFolder's) once: "eval" keeps the test crop of `preset`
    (the book's by default), "train" keeps each photo with its short side capped at twice the crop."""
    if kind == "eval":
        crop = (preset or EvalPreset(image_size)).transforms.transforms[:2]  # the resize and centre crop: PIL ops

        def one(path: str) -> torch.Tensor:
            image = loader(path)
            for t in crop:
                image = t(image)
            return to_uint8_tensor(image)
    elif kind == "train":
        def one(path: str) -> torch.Tensor:
            return to_uint8_tensor(capped(loader(path), train_side_cap(image_size)))
    else:
        raise ValueError(f"kind must be train or eval, not {kind!r}")
    paths = [p for p, _ in samples]
    with ThreadPoolExecutor(threads or decode_threads()) as pool:
        images = list(pool.map(one, paths))
    labels = torch.tensor([c for _, c in samples], dtype=torch.long)
    if kind == "eval":
        return DecodedSplit(torch.stack(images) if images else torch.empty(0, 3, image_size, image_size,
                                                                               dtype=torch.uint8), labels, paths)
    return DecodedSplit(images, labels, paths)


def train_side_cap(image_size: int) -> int:
    """The largest short side a decoded training photo keeps."""
    return 2 * image_size


def estimated_train_bytes(samples: Sequence[tuple[str, int]], image_size: int) -> int:
    """An upper bound on the memory of the decoded training photos (short side capped, aspect up to 2:1)."""
    side = train_side_cap(image_size)
    return len(samples) * 3 * side * side * 2


# --------------------------------------------------------------------------------------------------
# The book's transforms on uint8 tensors, a batch at a time, on any device.


class Normalizer:
    """ToTensor + Normalize for uint8 batches: (x / 255 - mean) / std, folded into one multiply-add."""

    def __init__(self, device: torch.device, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.scale = 1 / (255 * std_t)
        self.shift = -torch.tensor(mean, device=device).view(1, 3, 1, 1) / std_t

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Float batch, channels-last (faster convolutions on CPU and CUDA)."""
        out = torch.addcmul(self.shift, batch.float(), self.scale)
        return out.contiguous(memory_format=torch.channels_last)


def crop_box(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """RandomResizedCrop.get_params with an explicit generator: (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(*CROP_SCALE, generator=generator).item()
        ratio = math.exp(torch.empty(1).uniform_(*log_ratio, generator=generator).item())
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    # the same fallback as torchvision: a centre crop clamped to the allowed ratios
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crops(images: Sequence[torch.Tensor], size: int, generator: torch.Generator,
                         device: torch.device, interpolation: str = "bilinear") -> torch.Tensor:
    """The book's train_augs up to ToTensor for a batch: a RandomResizedCrop(size) of each photo, resized with
    antialiased `interpolation` (as PIL does), then a horizontal flip with probability 1/2. uint8 out."""
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8, device=device)
    flips = torch.rand(len(images), generator=generator) < 0.5
    for i, image in enumerate(images):
        top, left, h, w = crop_box(image.shape[1], image.shape[2], generator)
        patch = image[:, top:top + h, left:left + w].to(device, non_blocking=True).unsqueeze(0).float()
        patch = F.interpolate(patch, size=(size, size), mode=interpolation, antialias=True, align_corners=False)
        if flips[i]:
            patch = patch.flip(-1)
        out[i] = patch[0].round_().clamp_(0, 255).to(torch.uint8)
    return out


class DecodedTrainBatches:
    """Shuffled training batches from a decoded split, augmented on `device`: (float images, labels).

    Under torchrun every rank draws the same permutation (same seed) and takes its share of it, so each
    global batch of batch_size photos is split across the ranks, batch_size / world_size each."""

    def __init__(self, split: DecodedSplit, batch_size: int, image_size: int, device: torch.device, seed: int,
                 drop_last: bool = False, ctx: DistContext = SINGLE, balanced: bool = False,
                 preset: TrainPreset | None = None):
        self.split, self.image_size, self.device, self.ctx = split, image_size, device, ctx
        # the network's interpolation and statistics (the book's by default)
        self.interpolation = preset.interpolation if preset else "bilinear"
        self.balanced = balanced  # each epoch drawn with the classes in equal shares (data.balance), not shuffled
        self.batch_size = batch_size // ctx.world_size
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.normalize = Normalizer(device, *((preset.mean, preset.std) if preset else ()))
        if device.type == "cuda":  # photos travel to the GPU once, not once per epoch (a no-op if already there)
            self.split = split.to(device)

    def __len__(self) -> int:
        n = math.ceil(len(self.split) / self.ctx.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        drawn = balanced_order(self.split.labels, self.generator) if self.balanced else \
            torch.randperm(len(self.split), generator=self.generator)
        order = shard(drawn, self.ctx, pad=True)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            crops = random_resized_crops([self.split.images[i] for i in idx], self.image_size, self.generator,
                                         self.device, self.interpolation)
            yield self.normalize(crops), self.split.labels[idx].to(self.device, non_blocking=True)


class DecodedEvalBatches:
    """In-order evaluation batches of the book's test crops, normalised on `device`: (float images, labels).
    Under torchrun each rank takes every world_size-th photo (no padding: the counts are summed after)."""

    def __init__(self, split: DecodedSplit, batch_size: int, device: torch.device, ctx: DistContext = SINGLE,
                 preset: EvalPreset | None = None):
        self.split, self.batch_size, self.device = split, batch_size, device
        self.normalize = Normalizer(device, *((preset.mean, preset.std) if preset else ()))
        images, self.labels = split.images, split.labels
        if ctx.world_size > 1:
            keep = shard(torch.arange(len(split)), ctx, pad=False)
            images, self.labels = images[keep], self.labels[keep]
        self.images = images.pin_memory() if device.type == "cuda" else images

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            X = self.images[start:start + self.batch_size].to(self.device, non_blocking=True)
            yield self.normalize(X), self.labels[start:start + self.batch_size].to(self.device, non_blocking=True)
