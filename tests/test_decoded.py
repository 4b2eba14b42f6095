"""Photos decoded once: the same pixels as the book's transforms, crops inside the photo, shards that add up."""

from __future__ import annotations

import math

import numpy
import pytest
import torch

from ftcore.data.dataset import open_split
from ftcore.data.decoded import (
    CROP_RATIO,
    CROP_SCALE,
    DecodedEvalBatches,
    DecodedTrainBatches,
    Normalizer,
    capped,
    crop_box,
    decode_split,
    random_resized_crops,
)
from ftcore.data.transforms import EvalPreset, TrainPreset
from ftcore.devices.distributed import DistContext, shard


def test_eval_batches_match_the_book_test_transform_exactly(tiny_data):
    test_set = open_split(tiny_data, "test", EvalPreset(32))
    split = decode_split(test_set.samples, test_set.loader, "eval", 32)
    X, y = next(iter(DecodedEvalBatches(split, 100, torch.device("cpu"))))
    reference = torch.stack([test_set[i][0] for i in range(len(test_set))])
    assert X.shape == reference.shape == (16, 3, 32, 32)
    assert torch.allclose(X, reference, atol=1e-5)  # uint8 crops, then (x/255 - mean)/std: the same numbers
    assert y.tolist() == test_set.targets


def test_normalizer_is_totensor_then_normalize():
    pixels = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = Normalizer(torch.device("cpu"))(pixels)
    expected = [(0 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (255 / 255 - 0.406) / 0.225]
    assert out[0, :, 0, 0].tolist() == pytest.approx(expected, rel=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_training_photos_keep_their_size_unless_the_short_side_is_over_twice_the_crop(tiny_data):
    from PIL import Image

    small, big = Image.new("RGB", (300, 200)), Image.new("RGB", (900, 600))
    assert capped(small, 448).size == (300, 200)
    assert capped(big, 448).size == (672, 448)  # aspect kept
    train_set = open_split(tiny_data, "train", TrainPreset(32))
    split = decode_split(train_set.samples, train_set.loader, "train", 16)  # cap 32: tiny photos are 36-48 px
    assert all(min(x.shape[1:]) <= 32 for x in split.images) and len(split) == 32


@pytest.mark.parametrize("height,width", [(100, 100), (40, 300), (300, 40), (8, 8)])
def test_crop_boxes_stay_inside_the_photo_with_the_book_area_and_ratio(height, width):
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = crop_box(height, width, generator)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h > 0 and w > 0
        if (height, width) == (100, 100):  # the sampled case (no fallback): area and ratio within the book's
            assert CROP_SCALE[0] * 0.9 <= h * w / 10000 <= CROP_SCALE[1]
            assert CROP_RATIO[0] * 0.9 <= w / h <= CROP_RATIO[1] * 1.1


def test_random_resized_crops_of_a_uniform_photo_are_that_colour_and_flip_half_the_time():
    photo = torch.zeros(3, 50, 80, dtype=torch.uint8)
    photo[0], photo[1], photo[2] = 200, 100, 50
    generator = torch.Generator().manual_seed(1)
    out = random_resized_crops([photo] * 8, 24, generator, torch.device("cpu"))
    assert out.shape == (8, 3, 24, 24) and out.dtype == torch.uint8
    assert out[:, 0].unique().tolist() == [200] and out[:, 2].unique().tolist() == [50]
    ramp = torch.arange(80, dtype=torch.uint8).view(1, 1, 80).expand(3, 50, 80).contiguous()
    crops = random_resized_crops([ramp] * 400, 16, torch.Generator().manual_seed(2), torch.device("cpu")).float()
    flipped = (crops[:, 0, 0, 0] > crops[:, 0, 0, -1]).float().mean().item()  # a flipped ramp runs downhill
    assert 0.4 < flipped < 0.6


@pytest.mark.parametrize("height,width,period", [(90, 120, 9.0), (420, 600, 3.0)])
def test_random_resized_crops_match_torchvision_on_pil_for_the_same_boxes(height, width, period):
    """The in-memory crops are the book's train_augs in all but the random draws: for the boxes and flips they
    drew, torchvision's resized_crop + hflip on the PIL photo give the same pixels to within rounding, both
    when a crop is enlarged (small photo) and when it is shrunk with antialiasing (large, detailed photo)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    yy, xx = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
    photo = torch.stack([127 + 120 * torch.sin(xx / period), 127 + 120 * torch.cos(yy / (1.5 * period)),
                         127 + 120 * torch.sin((xx + yy) / (2 * period))]).round().to(torch.uint8)
    crops = random_resized_crops([photo] * 12, 128, torch.Generator().manual_seed(3), torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)  # replay the draws: the flips first, then one box per photo
    flips = torch.rand(12, generator=generator) < 0.5
    image = Image.fromarray(photo.permute(1, 2, 0).numpy())
    for i in range(12):
        top, left, h, w = crop_box(height, width, generator)
        reference = TF.resized_crop(image, top, left, h, w, [128, 128])  # PIL bilinear, as RandomResizedCrop
        if flips[i]:
            reference = TF.hflip(reference)
        expected = torch.from_numpy(numpy.asarray(reference).copy()).permute(2, 0, 1).float()
        difference = (crops[i].float() - expected).abs()
        assert difference.mean() < 0.5 and difference.max() <= 3, (i, h, w, difference.mean(), difference.max())


def test_train_batches_cover_every_photo_once_per_epoch(tiny_data):
    train_set = open_split(tiny_data, "train", TrainPreset(32))
    split = decode_split(train_set.samples, train_set.loader, "train", 32)
    batches = DecodedTrainBatches(split, 5, 32, torch.device("cpu"), seed=0)
    assert len(batches) == math.ceil(32 / 5)
    labels = torch.cat([y for _, y in batches])
    assert sorted(labels.tolist()) == sorted(train_set.targets)
    X, _ = next(iter(batches))
    assert X.shape == (5, 3, 32, 32) and X.dtype == torch.float32


def test_shards_of_two_ranks_cover_everything_with_equal_counts():
    indices = torch.arange(7)
    ranks = [shard(indices, DistContext(r, 2, r), pad=True) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    assert set(torch.cat(ranks).tolist()) == set(range(7))
    unpadded = [shard(indices, DistContext(r, 2, r), pad=False) for r in range(2)]
    assert sorted(torch.cat(unpadded).tolist()) == list(range(7))


def test_sharded_train_batches_split_the_global_batch(tiny_data):
    train_set = open_split(tiny_data, "train", TrainPreset(32))
    split = decode_split(train_set.samples, train_set.loader, "train", 32)
    seen = []
    for rank in range(2):
        batches = DecodedTrainBatches(split, 8, 32, torch.device("cpu"), seed=0, ctx=DistContext(rank, 2, rank))
        assert batches.batch_size == 4 and len(batches) == 4
        seen.append(torch.cat([y for _, y in batches]))
    assert len(seen[0]) + len(seen[1]) == 32
