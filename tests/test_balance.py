"""Unequal classes: the warning, the class-weighted loss and the class-balanced draw against hand-computed answers,
each class's held-out accuracy, and `--balance` on the command line."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from conftest import write_tiny_imagefolder
from ftcore.cli.args import config_from_args
from ftcore.cli.main import build_parser
from ftcore.config import BALANCE_WHEN_ASKED, recipe
from ftcore.data.balance import BalancedSampler, balanced_order, class_counts, class_weights
from ftcore.data.decoded import DecodedSplit, DecodedTrainBatches
from ftcore.data.summary import list_dataset
from ftcore.errors import FtcoreError
from ftcore.records import EpochRecord, StateCaptured
from ftcore.train.evaluate import Tally
from ftcore.train.loop import fit
from ftcore.train.step import train_step


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory):
    """The tiny colours with 16 blue and 4 red training photos (the test split stays 8 + 8)."""
    root = write_tiny_imagefolder(tmp_path_factory.mktemp("lopsided") / "colours")
    for photo in sorted((root / "train" / "red").iterdir())[4:]:
        photo.unlink()
    return root


def test_each_class_weighs_the_same_and_the_weights_average_one():
    weights = class_weights([1000, 100])
    assert weights.tolist() == pytest.approx([1100 / 2000, 1100 / 200])  # N / (K * n_c)
    assert 1000 * weights[0] == pytest.approx(100 * weights[1])  # each class adds the same to the summed loss
    assert (1000 * weights[0] + 100 * weights[1]) / 1100 == pytest.approx(1.0)  # the book's scale, on average
    assert class_weights([5, 5, 5]).tolist() == [1.0, 1.0, 1.0]  # equal classes: the book's loss exactly
    assert class_weights([3, 0, 1]).tolist() == pytest.approx([4 / 6, 0.0, 4 / 2])  # a class without photos
    assert class_counts([0, 2, 2, 1, 2], 3) == [1, 1, 3]


def test_a_weighted_step_is_the_hand_weighted_sum_of_the_losses():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    X, y = torch.randn(6, 4), torch.tensor([0, 0, 0, 0, 1, 1])
    weights = class_weights(class_counts(y.tolist(), 2))  # 6/8 for class 0, 6/4 for class 1
    reference = nn.Linear(4, 2)
    reference.load_state_dict(net.state_dict())
    manual = (nn.functional.cross_entropy(reference(X), y, reduction="none") * weights[y]).sum()
    manual.backward()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    loss, _ = train_step(net, optimizer, X, y, class_weights=weights)
    assert torch.allclose(net.weight, before - 0.1 * reference.weight.grad, atol=1e-6)
    plain = nn.functional.cross_entropy(reference(X), y, reduction="sum").item()
    assert loss == pytest.approx(plain)  # the loss reported is the plain one


def test_a_balanced_draw_gives_each_class_an_equal_share():
    labels = torch.tensor([0] * 900 + [1] * 100)
    generator = torch.Generator().manual_seed(0)
    drawn = torch.cat([balanced_order(labels, generator) for _ in range(10)])
    share = float((labels[drawn] == 1).float().mean())
    assert len(drawn) == 10_000 and share == pytest.approx(0.5, abs=0.02)  # binomial sd 0.005
    sampler = BalancedSampler(labels.tolist(), seed=0)
    assert len(list(sampler)) == len(sampler) == 1000


def test_decoded_batches_draw_balanced_when_asked():
    labels = torch.tensor([0] * 90 + [1] * 10)
    split = DecodedSplit(images=[torch.zeros(3, 8, 8, dtype=torch.uint8)] * 100, labels=labels,
                         paths=[f"{i}.png" for i in range(100)])
    shares = {}
    for balanced in (False, True):
        batches = DecodedTrainBatches(split, 25, 8, torch.device("cpu"), seed=0, balanced=balanced)
        seen = torch.cat([y for _ in range(20) for _, y in batches])
        shares[balanced] = float((seen == 1).float().mean())
    assert shares[False] == pytest.approx(0.1)  # every photo once an epoch: the data's share
    assert shares[True] == pytest.approx(0.5, abs=0.03)


def test_a_tally_gives_each_class_its_recall():
    tally = Tally.of(torch.tensor([0, 0, 1, 1, 0]), torch.tensor([0, 0, 0, 1, 1]), 3)
    assert tally.correct == [2, 1, 0] and tally.seen == [3, 2, 0]
    assert tally.accuracy == pytest.approx(3 / 5) and tally.recalls == [pytest.approx(2 / 3), 0.5, None]
    record = EpochRecord(1, 0.5, 0.5, 0.6, 5, 1.0, class_acc=tally.recalls)
    assert record.balanced_acc == pytest.approx((2 / 3 + 0.5) / 2)  # the mean over the classes with photos


def test_the_summary_warns_from_three_to_one(lopsided, tiny_data):
    summary = list_dataset(lopsided)
    assert summary.shares() == {"blue": 0.8, "red": 0.2}
    assert summary.imbalance_message() == (
        "the classes are unequal: blue has 16 training photos, 4.0x the 4 of red, so a model learns to favour "
        "blue; add photos of red, or balance the classes when training")
    assert list_dataset(tiny_data).imbalance_message() is None
    summary.counts["train"] = {"blue": 29, "red": 10}  # 2.9x: near enough
    assert summary.imbalance_message() is None


@pytest.mark.parametrize(("argv", "balance"), [([], "none"), (["--balance"], BALANCE_WHEN_ASKED),
                                               (["--balance", "sampler"], "sampler")])
def test_balance_on_the_command_line(argv, balance, tiny_data):
    args = build_parser().parse_args(["train", "--data", str(tiny_data), *argv])
    assert config_from_args(args, "finetune").balance == balance


def test_an_unknown_balance_is_one_sentence(tiny_data):
    with pytest.raises(FtcoreError, match="class balance must be none, loss or sampler"):
        recipe("scratch", data=str(tiny_data), balance="oversample").validate()


def small_run(data, **overrides):
    return recipe("scratch", "resnet18", data=str(data), epochs=2, batch_size=8, image_size=32, precision="fp32",
                  **overrides)


def test_on_equal_classes_the_weighted_loss_is_the_books_run_exactly(tiny_data):
    plain = fit(small_run(tiny_data))
    weighted = fit(small_run(tiny_data, balance="loss"))
    assert [b.loss for b in weighted.history.batches] == [b.loss for b in plain.history.batches]


@pytest.mark.parametrize("balance", ["loss", "sampler"])
@pytest.mark.parametrize("decode_once", [True, False])
def test_a_balanced_run_trains_and_measures_each_class(lopsided, balance, decode_once):
    config = small_run(lopsided, balance=balance, decode_once=decode_once)
    trained = fit(config)
    last = trained.history.final()
    assert len(trained.history.epochs) == 2 and len(last.class_acc) == 2
    assert last.test_acc == pytest.approx(sum(last.class_acc) / 2)  # 8 + 8 test photos: accuracy is balanced
    unbalanced = fit(dataclasses.replace(config, balance="none"))
    differs = [b.loss for b in trained.history.batches] != [b.loss for b in unbalanced.history.batches]
    assert differs  # balancing changed what was trained on (the draw) or how much each photo counted (the loss)


def test_a_balanced_draw_from_disk_resumes_where_it_would_have_gone_on(lopsided):
    """Photos streamed from disk drawn class-balanced: a run resumed after its first epoch draws the second as the
    uninterrupted run did (the sampler's generator is saved with the state)."""
    config = small_run(lopsided, balance="sampler", decode_once=False)
    events = []
    whole = fit(config, events.append, capture_state=True)
    after_one = next(e.state for e in events if isinstance(e, StateCaptured) and e.epoch == 1)
    resumed = fit(config, resume_from=after_one)
    second = [b.loss for b in whole.history.batches if b.epoch > 1]
    assert [b.loss for b in resumed.history.batches if b.epoch > 1] == pytest.approx(second, abs=1e-6)
