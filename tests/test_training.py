"""Training: the book's recipe, parameter groups, the summed loss, and the loop (learns, stops, reproduces)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace

import pytest
import torch
from torch import nn

from ftcore.archs import ARCHITECTURES
from ftcore.config import BOOK_RESULTS, TrainConfig, recipe
from ftcore.errors import FtcoreError
from ftcore.models.build import build_model
from ftcore.models.output_layer import output_layer
from ftcore.records import BatchEnded, EpochEnded, RunStarted, StateCaptured
from ftcore.train.loop import fit
from ftcore.train.optim import make_optimizer, make_param_groups
from ftcore.train.plan import batchnorm_note, micro_batch_size
from ftcore.train.step import chunk_sizes, loss_fn, train_step


def test_book_recipes():
    fine = recipe("finetune", "resnet18", data="d")
    assert (fine.lr, fine.param_groups, fine.head_lr_mult, fine.batch_size, fine.epochs) == (5e-5, True, 10, 128, 5)
    assert (fine.weight_decay, fine.loss_reduction, fine.image_size) == (1e-3, "sum", 224)
    scratch = recipe("scratch", "resnet18", data="d")
    assert (scratch.lr, scratch.param_groups) == (5e-4, False)
    assert recipe("scratch", "resnet18", data="d", lr=None, epochs=2).epochs == 2  # None keeps the default
    assert BOOK_RESULTS["finetune"]["test_acc"] == 0.939 and BOOK_RESULTS["scratch"]["test_acc"] == 0.843


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_param_groups_cover_every_parameter_once_with_the_head_at_10x(arch):
    net, _ = build_model(arch, 2, pretrained=False)
    config = recipe("finetune", arch, data="d", lr=3e-4)
    optimizer = make_optimizer(net, config)
    ids = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters()) and len(ids) == len(set(ids))
    body, head = optimizer.param_groups
    assert body["lr"] == 3e-4 and head["lr"] == pytest.approx(3e-3)
    assert {id(p) for p in head["params"]} == {id(p) for p in output_layer(net, arch).parameters()}
    assert all(g["weight_decay"] == 1e-3 and g["momentum"] == 0 for g in optimizer.param_groups)


def test_without_param_groups_every_parameter_shares_one_lr():
    net, _ = build_model("resnet18", 2, pretrained=False)
    groups = make_param_groups(net, "resnet18", 5e-4, 10.0, enabled=False)
    assert len(groups) == 1 and groups[0]["lr"] == 5e-4
    assert len(groups[0]["params"]) == len(list(net.parameters()))


def test_loss_is_per_example_cross_entropy():
    losses = loss_fn(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-2)), math.log(2)])


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))  # no BatchNorm: micro-batches change nothing


def book_step(net: nn.Module, X, y, lr: float, wd: float, reduction: str) -> dict[str, torch.Tensor]:
    """The book's update by hand: p - lr * (grad of l.sum() + wd * p)."""
    net.zero_grad()
    losses = nn.CrossEntropyLoss(reduction="none")(net(X), y)
    (losses.sum() if reduction == "sum" else losses.mean()).backward()
    return {n: (p - lr * (p.grad + wd * p)).detach() for n, p in net.named_parameters()}


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("micro_batch", [0, 3])
def test_train_step_is_the_books_sgd_step(reduction, micro_batch):
    X, y = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    expected = book_step(tiny_net(), X, y, lr=0.1, wd=1e-3, reduction=reduction)
    net = tiny_net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-3)
    loss_sum, correct = train_step(net, optimizer, X, y, reduction, micro_batch)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name])
    assert loss_sum == pytest.approx(loss_fn(tiny_net()(X), y).sum().item(), rel=1e-5)
    assert correct == int((tiny_net()(X).argmax(1) == y).sum())


def test_summed_gradient_is_batch_size_times_the_mean():
    X, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    grads = {}
    for reduction in ("sum", "mean"):
        net = tiny_net()
        losses = loss_fn(net(X), y)
        (losses.sum() if reduction == "sum" else losses.mean()).backward()
        grads[reduction] = net[1].weight.grad
    torch.testing.assert_close(grads["sum"], 8 * grads["mean"])


@pytest.mark.parametrize("n, micro, sizes", [(128, 16, [16] * 8), (10, 4, [4, 4, 2]), (9, 4, [4, 5]),
                                             (1, 16, [1]), (17, 16, [17])])
def test_chunk_sizes_never_leave_a_lone_image(n, micro, sizes):
    assert chunk_sizes(n, micro) == sizes and sum(sizes) == n


def test_a_lone_last_image_does_not_break_batchnorm_at_small_sizes():
    torch.manual_seed(0)
    net, _ = build_model("resnet18", 2, pretrained=False)  # 32 px ends in 1x1 feature maps
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4)
    loss_sum, _ = train_step(net, optimizer, torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 0, 1, 0]), "sum", 4)
    assert math.isfinite(loss_sum)


def test_batchnorm_momentum_keeps_the_books_memory_with_micro_batches(tiny_data):
    result = fit(tiny_config(tiny_data, batch_size=16, micro_batch=4))
    momenta = {m.momentum for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert len(momenta) == 1
    # Four updates at the scaled momentum forget exactly as much as one update at the book's 0.1.
    assert (1 - momenta.pop()) ** 4 == pytest.approx(0.9)
    whole = fit(tiny_config(tiny_data, batch_size=16, micro_batch=16))
    assert {m.momentum for m in whole.model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}


def test_auto_micro_batch_is_the_whole_batch_unless_memory_says_otherwise_and_then_says_so(tiny_data, monkeypatch):
    from ftcore.train import memory

    def run(precision: str) -> tuple[set[float], list[str]]:
        notes = []
        result = fit(tiny_config(tiny_data, batch_size=32, precision=precision),  # micro_batch 0: auto
                     lambda e: notes.append(e.batchnorm) if isinstance(e, RunStarted) else None)
        return {m.momentum for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)}, notes

    assert run("fp32") == ({0.1}, [""])  # the whole batch at once: the book's BatchNorm
    config = tiny_config(tiny_data, batch_size=32, precision="fp32")
    need = {m: memory.estimate_run_bytes(replace(config, micro_batch=m)) for m in (8, 16, 32)}
    monkeypatch.setattr(memory, "total_bytes", lambda: round((need[16] + need[32]) / 2 / memory.FITS_SHARE))
    (momentum,), notes = run("fp32")
    assert momentum == pytest.approx(1 - 0.9 ** (1 / 2))  # two chunks of 16 per step of 32
    assert notes[0].startswith("BatchNorm over 16 of the batch's 32 photos: the whole batch needs about")


def test_auto_micro_batch_follows_the_precision_training_runs_in_not_the_devices(tiny_data, monkeypatch):
    from ftcore.devices import precision

    monkeypatch.setattr(precision, "resolve_precision", lambda precision, device: "bf16")  # a native-bf16 CPU
    config = recipe("scratch", "mobilenet_v2", data=str(tiny_data), epochs=1, batch_size=32, image_size=32)
    result = fit(config)  # precision auto: MobileNetV2 trains in fp32 even where bf16 is native
    assert result.history.precision == "fp32"
    assert {m.momentum for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}  # whole batch


def test_a_last_batch_of_one_image_is_dropped(tmp_path):
    from conftest import write_tiny_imagefolder

    root = write_tiny_imagefolder(tmp_path / "d", {"train": 5, "test": 1})  # 10 photos, batch 3: 3+3+3+1
    history = fit(recipe("scratch", data=str(root), epochs=1, batch_size=3, image_size=32)).history
    assert len(history.batches) == 3 and history.final().examples == 9


def test_micro_batch_is_the_whole_batch_where_it_fits_else_the_largest_that_fits_unless_set(monkeypatch):
    from ftcore.train import memory

    config = TrainConfig(data="d", arch="mobilenet_v2", precision="fp32")
    cpu = torch.device("cpu")
    monkeypatch.setattr(memory, "total_bytes", lambda: 64 * memory.GB)
    assert micro_batch_size(config, cpu, "fp32") == 128  # the book's BatchNorm
    assert batchnorm_note(config, 128) == ""
    # a machine between the estimates of 32 and 64 photos per pass gets 32, and is told why
    need = {m: memory.estimate_run_bytes(replace(config, micro_batch=m), train_photos=0) for m in (32, 64, 128)}
    monkeypatch.setattr(memory, "total_bytes", lambda: round((need[32] + need[64]) / 2 / memory.FITS_SHARE))
    assert micro_batch_size(config, cpu, "fp32") == 32
    total = memory.total_bytes() / memory.GB
    assert batchnorm_note(config, 32) == (
        f"BatchNorm over 32 of the batch's 128 photos: the whole batch needs about {need[128] / memory.GB:.1f} GB, "
        f"more than the {memory.FITS_SHARE * total:.1f} GB a run may take of this machine's {total:.1f} GB")
    assert micro_batch_size(replace(config, micro_batch=40), cpu, "bf16") == 40
    assert batchnorm_note(replace(config, micro_batch=40), 40).startswith("BatchNorm over 40 of the batch's 128")
    assert micro_batch_size(replace(config, batch_size=8), cpu, "fp32") == 8
    assert micro_batch_size(config, torch.device("cuda", 0), "fp32") == 128


@pytest.mark.parametrize("field, value, words", [
    ("lr", 0.0, "learning rate"), ("epochs", 0, "epochs"), ("batch_size", 0, "batch size"),
    ("mode", "frozen", "mode"), ("loss_reduction", "max", "loss reduction"), ("image_size", 8, "image size"),
    ("arch", "vgg", "unknown architecture"), ("precision", "fp8", "precision"), ("limit", 0, "limit"),
])
def test_config_validation_names_the_field(field, value, words):
    config = TrainConfig(data="d", **{field: value})
    with pytest.raises(FtcoreError, match=words):
        config.validate()


def test_config_round_trips_through_a_dict():
    config = recipe("scratch", "mobilenet_v2", data="d", limit=4)
    assert TrainConfig.from_dict({**config.to_dict(), "unknown": 1}) == config


# --------------------------------------------------------------------------------------------------
# The loop on a tiny generated ImageFolder (red vs blue photos).


def test_three_epochs_learn(tiny_data):
    history = fit(tiny_config(tiny_data, epochs=4, lr=5e-4)).history
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss  # it learns
    assert history.epochs[-1].test_acc >= 0.75  # red vs blue is easy


def tiny_config(tiny_data, **overrides) -> TrainConfig:
    settings = {"data": str(tiny_data), "epochs": 1, "batch_size": 4, "image_size": 32, "lr": 2e-3}
    return recipe("scratch", "resnet18", **{**settings, **overrides})


def test_one_epoch_learns_and_reports_the_right_shape(tiny_data):
    events = []
    result = fit(tiny_config(tiny_data), events.append)
    history = result.history
    assert len(history.epochs) == 1 and len(history.batches) == 8  # 32 train photos / batch 4
    assert [b.epoch for b in history.batches] == pytest.approx([i / 8 for i in range(1, 9)])
    epoch = history.final()
    assert epoch.epoch == 1.0 and epoch.examples == 32 and 0 <= epoch.test_acc <= 1
    assert epoch.train_loss == pytest.approx(sum(b.loss for b in history.batches) / 8)
    assert history.examples_per_sec > 0 and history.devices == ["cpu"] and not history.stopped
    assert isinstance(events[0], RunStarted) and events[0].train_size == 32 and events[0].test_size == 16
    assert sum(isinstance(e, BatchEnded) for e in events) == 8 and isinstance(events[-1], EpochEnded)
    assert result.classes == ["blue", "red"] and not result.model.training


def test_a_caller_that_resumes_gets_the_state_after_each_epoch_through_the_same_sink(tiny_data):
    events = []
    result = fit(tiny_config(tiny_data, epochs=2), events.append, capture_state=True)
    captured = [e for e in events if isinstance(e, StateCaptured)]
    assert [e.epoch for e in captured] == [1, 2]
    assert [type(e) for e in events[-2:]] == [EpochEnded, StateCaptured]  # each state right after its epoch
    assert torch.equal(captured[-1].state["model"]["fc.weight"], result.model.fc.weight.detach().cpu())
    assert captured[-1].state["history"]["epochs"] == result.history.to_dict()["epochs"]


def test_stop_mid_epoch_keeps_what_was_learned(tiny_data):
    stop = threading.Event()

    def callback(event):
        if isinstance(event, BatchEnded) and event.step == 3:
            stop.set()

    result = fit(tiny_config(tiny_data, epochs=3), callback, stop)
    history = result.history
    assert history.stopped and len(history.batches) == 3
    assert len(history.epochs) == 1 and history.final().epoch == pytest.approx(3 / 8)
    assert history.final().test_acc is None and history.final().examples == 12
    torch.manual_seed(tiny_config(tiny_data).seed)
    untrained, _ = build_model("resnet18", 2, pretrained=False)
    assert not torch.equal(untrained.conv1.weight, result.model.conv1.weight.cpu())


def test_seeded_runs_are_reproducible_on_cpu(tiny_data):
    a = fit(tiny_config(tiny_data)).history
    b = fit(tiny_config(tiny_data)).history
    c = fit(tiny_config(tiny_data, seed=1)).history
    assert [x.loss for x in a.batches] == [x.loss for x in b.batches]
    assert a.final().test_acc == b.final().test_acc
    assert [x.loss for x in a.batches] != [x.loss for x in c.batches]


def test_finetune_starts_from_the_given_weights_file(tiny_data, random_resnet18_file):
    events = []
    result = fit(recipe("finetune", "resnet18", data=str(tiny_data), epochs=1, batch_size=8, image_size=32,
                        weights=str(random_resnet18_file)), events.append)
    assert events[0].weights == f"ImageNet weights from file: {random_resnet18_file}"
    assert result.weights.kind == "file" and len(result.history.batches) == 4


def test_bad_data_folder_is_a_user_error(tmp_path):
    with pytest.raises(FtcoreError, match="does not exist"):
        fit(recipe("scratch", data=str(tmp_path / "missing")))


def test_a_runs_test_accuracy_is_the_last_epochs_or_with_a_val_split_the_one_at_the_end():
    from ftcore.records import EpochRecord, History

    book = History(epochs=[EpochRecord(1, 0.5, 0.8, 0.85, 10, 1.0), EpochRecord(2, 0.4, 0.9, 0.91, 10, 1.0)])
    assert book.final_test() == 0.91 and History().final_test() is None
    chosen_on_val = History(epochs=[EpochRecord(1, 0.5, 0.8, None, 10, 1.0, val_acc=0.88)], heldout="val",
                            test_acc=0.86)
    assert chosen_on_val.final_test() == 0.86 and chosen_on_val.final_heldout() == 0.88
    assert History(epochs=chosen_on_val.epochs, heldout="val").final_test() is None  # stopped before the test


def test_the_output_layers_lr_is_ten_times_with_parameter_groups_and_the_same_without():
    assert recipe("finetune", "resnet18", data="d").head_lr == pytest.approx(5e-4)  # the book's 10 x 5e-5
    assert recipe("finetune", "resnet18", data="d", param_groups=False).head_lr == pytest.approx(5e-5)
    assert recipe("scratch", "resnet18", data="d").head_lr == pytest.approx(5e-4)  # one lr for every layer
