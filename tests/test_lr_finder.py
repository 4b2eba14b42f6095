"""The learning-rate finder: its curve and suggestion rule, that it leaves nothing changed, the CLI, the child
process through the scheduler, and the Train and Experiments pages."""

from __future__ import annotations

import csv
import json
import math
import threading

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from conftest import open_app
from ftcore import charts
from ftcore.cli import main as cli_main
from ftcore.errors import FtcoreError
from ftcore.lr_finder import (
    SUGGESTION_FRACTION,
    FinderSettings,
    LrFinding,
    find_lr,
    range_test,
    smooth,
    suggest,
)
from ftcore.runner import FinderJob, ProcessJob
from ftcore.scheduler import Scheduler
from ftcore.training import fit, make_optimizer, recipe

TIMEOUT = 240


def tiny_config(data, **overrides):
    """ResNet-18 from scratch at 32 px on the tiny colour photos: 4 batches of 8 per pass."""
    return recipe("scratch", "resnet18", data=str(data), batch_size=8, image_size=32, precision="fp32", **overrides)


def linear_problem(seed: int = 0, n: int = 64):
    """Two Gaussian blobs and a linear classifier: a problem whose loss falls and then, at large lrs, explodes."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=generator)
    y = (X[:, 0] + X[:, 1] > 0).long()
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)]
    torch.manual_seed(seed)
    return nn.Linear(4, 2), batches


# --------------------------------------------------------------------------------------------------
# The curve and the rule


def test_smooth_is_a_centred_moving_average_shortened_at_the_ends():
    assert smooth([1, 2, 3, 4, 5, 6], 1) == pytest.approx([1.5, 2, 3, 4, 5, 5.5])
    assert smooth([3, 1, 8], 0) == [3, 1, 8]
    assert smooth([1, 3], 5) == pytest.approx([2, 2])


def test_the_suggestion_is_a_tenth_of_the_lr_at_the_smoothed_minimum():
    lrs = [10 ** (-7 + i * 0.5) for i in range(15)]
    losses = [1.0, 1.0, 0.99, 0.97, 0.9, 0.8, 0.6, 0.4, 0.3, 0.25, 0.35, 0.8, 2.0, 5.0, 9.0]
    smoothed = smooth(losses, 1)
    suggestion, minimum, note = suggest(lrs, smoothed, 1, lrs[0])
    lowest = int(np.argmin(smoothed))
    assert minimum == lrs[lowest] and lowest == 9  # (0.3 + 0.25 + 0.35) / 3 is the lowest average
    assert suggestion == pytest.approx(SUGGESTION_FRACTION * lrs[lowest])
    assert note == ""


def test_a_curve_that_rises_from_the_first_steps_has_no_suggestion_and_says_start_lower():
    lrs = [10 ** (-3 + i * 0.25) for i in range(12)]
    losses = [0.7 * 1.5 ** i for i in range(12)]
    suggestion, _, note = suggest(lrs, smooth(losses, 1), 1, lrs[0])
    assert suggestion is None
    assert "start the finder lower than 1e-03" in note


def test_a_curve_still_falling_at_the_end_is_said_to_be():
    lrs = [10 ** (-7 + i * 0.5) for i in range(12)]
    suggestion, minimum, note = suggest(lrs, smooth([1.0 - 0.05 * i for i in range(12)], 1), 1, lrs[0])
    assert minimum == lrs[-1] and suggestion == pytest.approx(lrs[-1] / 10)
    assert "still falling" in note


def test_settings_are_checked_and_the_lr_rises_exponentially():
    settings = FinderSettings(steps=5, start_lr=1e-6, end_lr=1e-2)
    assert [settings.lr_at(i) for i in range(5)] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    for bad in (FinderSettings(steps=2), FinderSettings(start_lr=1.0, end_lr=0.1), FinderSettings(smoothing=-1)):
        with pytest.raises(FtcoreError):
            bad.validate()


# --------------------------------------------------------------------------------------------------
# The test on a model


def test_range_test_leaves_the_model_the_optimiser_and_the_random_state_as_they_were():
    model, batches = linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    finding = range_test(model, optimizer, batches, torch.device("cpu"), FinderSettings(steps=30))
    assert len(finding.lrs) > 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.05
    assert torch.equal(torch.get_rng_state(), rng)


def test_every_group_keeps_its_ratio_to_the_lr_and_a_small_dataset_is_cycled(tiny_data):
    config = recipe("finetune", "resnet18", data=str(tiny_data), batch_size=8, image_size=32, precision="fp32")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    optimizer = make_optimizer(model, config)  # copied layers at lr, the output layer at 10x
    seen = []
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 2, (8,))) for _ in range(2)]
    finding = range_test(model, optimizer, batches, torch.device("cpu"), FinderSettings(steps=12, end_lr=1e-3),
                         callback=lambda step: seen.append([g["lr"] for g in optimizer.param_groups]))
    assert len(seen) == 12
    for step, (body, head) in enumerate(seen):
        assert body == pytest.approx(FinderSettings(steps=12, end_lr=1e-3).lr_at(step))
        assert head == pytest.approx(10 * body)
    assert finding.passes == 6  # 12 steps over 2 batches


def test_with_the_copied_layers_frozen_the_output_layer_still_runs_at_its_multiple_of_the_swept_lr(tiny_data):
    config = recipe("finetune", "resnet18", data=str(tiny_data), freeze_body=True)  # only the output layer's group
    model = torchvision.models.resnet18(num_classes=2)
    optimizer = make_optimizer(model, config)
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 10 * config.lr
    settings, seen = FinderSettings(steps=6, end_lr=1e-3), []
    range_test(model, optimizer, [(torch.randn(4, 3, 32, 32), torch.randint(0, 2, (4,)))], torch.device("cpu"),
               settings, callback=lambda step: seen.append(optimizer.param_groups[0]["lr"]), base_lr=config.lr)
    assert seen == pytest.approx([10 * settings.lr_at(i) for i in range(6)])  # the suggestion stays in lr's units


def test_settings_that_move_the_lr_are_named_when_they_differ():
    from ftcore.lr_finder import recipe_differences

    found_on = recipe("finetune", "resnet18", data="d")
    assert recipe_differences(found_on, recipe("finetune", "resnet18", data="d", epochs=9)) == []
    other = recipe("finetune", "resnet18", data="d", loss_reduction="mean", batch_size=64)
    assert recipe_differences(found_on, other) == ["loss reduction sum -> mean", "batch size 128 -> 64"]


def test_with_the_mean_loss_the_same_curve_sits_batch_size_times_further_right():
    # Without weight decay, SGD on the mean at lr * B takes exactly the steps SGD on the sum takes at lr: the
    # per-photo losses match, and so do the suggestions, a factor B apart.
    curves = {}
    for reduction, scale in (("sum", 1), ("mean", 16)):
        model, batches = linear_problem()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        curves[reduction] = range_test(model, optimizer, batches, torch.device("cpu"),
                                       FinderSettings(steps=40, start_lr=1e-5 * scale, end_lr=10.0 * scale),
                                       reduction=reduction)
    n = min(len(curves["sum"].losses), len(curves["mean"].losses))
    assert n > 20
    assert curves["mean"].losses[:n] == pytest.approx(curves["sum"].losses[:n], rel=1e-4, abs=1e-5)
    assert curves["mean"].suggestion == pytest.approx(16 * curves["sum"].suggestion, rel=1e-6)


def test_on_a_tiny_generated_set_the_curve_falls_then_rises_and_the_suggestion_lies_inside_it(tiny_data):
    for reduction in ("sum", "mean"):
        finding = find_lr(tiny_config(tiny_data, loss_reduction=reduction), FinderSettings(steps=60))
        lowest = int(np.argmin(finding.smoothed))
        assert finding.smoothed[lowest] < 0.8 * finding.smoothed[0], reduction  # it falls...
        assert max(finding.smoothed[lowest:]) > 2 * finding.smoothed[lowest], reduction  # ...then rises
        assert finding.diverged and len(finding.lrs) < 60
        assert finding.lrs[0] < finding.suggestion < finding.lrs[-1]
        assert finding.suggestion == pytest.approx(SUGGESTION_FRACTION * finding.minimum_lr)
        assert finding.passes > 1  # 16 photos per class: the set was cycled
        assert finding.loss_reduction == reduction and finding.batch_size == 8


def test_training_after_the_finder_is_the_training_without_it(tiny_data):
    config = tiny_config(tiny_data, epochs=2)
    without = fit(config).history
    find_lr(config, FinderSettings(steps=15))
    after = fit(config).history
    assert [(e.train_loss, e.train_acc, e.test_acc) for e in after.epochs] == \
        [(e.train_loss, e.train_acc, e.test_acc) for e in without.epochs]


def test_stop_ends_the_test_after_its_step_and_keeps_the_curve(tiny_data):
    stop = threading.Event()

    def after_five(step):
        if step.step == 5:
            stop.set()

    finding = find_lr(tiny_config(tiny_data), FinderSettings(steps=50), after_five, stop)
    assert finding.stopped and len(finding.lrs) == 5


def test_a_recipe_without_full_epochs_is_refused_with_what_to_change(tiny_data):
    config = recipe("finetune", "resnet18", "quick", data=str(tiny_data))
    with pytest.raises(FtcoreError, match="epochs to 1 or more"):
        find_lr(config)


def test_the_chart_has_a_log_lr_axis_and_marks_the_suggestion_and_the_slider():
    finding = LrFinding(lrs=[1e-6, 1e-5, 1e-4], losses=[0.7, 0.5, 2.0], smoothed=[0.65, 0.9, 1.2], suggestion=1e-6)
    fig = charts.lr_finder_figure(finding.lrs, finding.losses, finding.smoothed, finding.suggestion, 5e-5, "mean")
    assert fig.layout.xaxis.type == "log"
    assert [shape.x0 for shape in fig.layout.shapes] == [1e-6, 5e-5]
    assert "mean loss" in fig.layout.xaxis.title.text
    assert [ann.text for ann in fig.layout.annotations] == ["suggested 1.0e-06", "slider 5.0e-05"]


def test_sweep_rates_from_the_finders_range():
    finding = LrFinding(suggestion=3.1e-4, minimum_lr=3.1e-3)
    assert finding.sweep_lrs() == [3.1e-5, 3.1e-4, 3.1e-3]
    assert LrFinding().sweep_lrs() == []


# --------------------------------------------------------------------------------------------------
# The command line


def test_cli_prints_the_suggestion_and_writes_the_curve(tiny_data, tmp_path, capsys):
    out = tmp_path / "curve.csv"
    code = cli_main(["lr-find", "--data", str(tiny_data), "--arch", "resnet18", "--mode", "scratch", "--batch-size",
                     "8", "--image-size", "32", "--precision", "fp32", "--steps", "40", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0].startswith("suggested lr: ")
    suggestion = float(printed[0].split(": ")[1])
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["lr", "loss", "smoothed"]
    lowest = min(rows, key=lambda row: float(row["smoothed"]))
    assert suggestion == pytest.approx(SUGGESTION_FRACTION * float(lowest["lr"]), rel=0.05)  # printed to 2 digits


def test_cli_json_prints_the_whole_finding(tiny_data, tmp_path, capsys):
    out = tmp_path / "curve.json"
    code = cli_main(["lr-find", "--data", str(tiny_data), "--mode", "scratch", "--batch-size", "8", "--image-size",
                     "32", "--precision", "fp32", "--steps", "20", "--json", "--out", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["config"]["mode"] == "scratch" and len(printed["lrs"]) == len(printed["losses"])


def test_cli_errors_are_one_sentence(tiny_data, tmp_path, capsys):
    base = ["lr-find", "--data", str(tiny_data), "--mode", "scratch", "--batch-size", "8", "--image-size", "32"]
    assert cli_main([*base, "--start-lr", "1", "--end-lr", "0.1"]) == 2
    assert "start lr must be positive and below its end lr" in capsys.readouterr().err
    assert cli_main([*base, "--out", str(tmp_path / "curve.txt"), "--steps", "5"]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    # every rate too large from the first step: no suggestion, and what to do about it
    assert cli_main([*base, "--start-lr", "10", "--end-lr", "1000", "--steps", "10", "--precision", "fp32",
                     "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "error: no learning rate to suggest" in err and "start the finder lower" in err


# --------------------------------------------------------------------------------------------------
# In a child process, through the server's queue


def test_the_finder_waits_in_the_queue_behind_a_run_and_ends_with_its_curve(tiny_data, tmp_path):
    scheduler = Scheduler(slots=1, check_memory=False)
    run = ProcessJob(tiny_config(tiny_data, epochs=1), tmp_path / "runs").start(scheduler)
    finder = FinderJob(tiny_config(tiny_data), tmp_path / "finder", FinderSettings(steps=30)).start(scheduler)
    assert finder.snapshot().status == "queued"
    assert "queued" in finder.snapshot().status_line()
    assert finder.join(TIMEOUT) and run.join(1)
    snap = finder.snapshot()
    assert snap.status == "finished", snap.error
    assert snap.finding is not None and snap.finding.suggestion is not None
    assert [s.lr for s in snap.steps] == pytest.approx(snap.finding.lrs)
    assert run.snapshot().status == "finished"
    assert (finder.folder / "lr_find.json").is_file()
    assert math.isclose(snap.progress, 1.0)


def test_a_queued_finder_can_be_cancelled(tiny_data, tmp_path):
    scheduler = Scheduler(slots=1, check_memory=False)
    run = ProcessJob(tiny_config(tiny_data, epochs=1), tmp_path / "runs").start(scheduler)
    finder = FinderJob(tiny_config(tiny_data), tmp_path / "finder").start(scheduler)
    finder.stop()
    assert finder.snapshot().status == "cancelled"
    assert run.join(TIMEOUT)


# --------------------------------------------------------------------------------------------------
# The pages


def wait_for_finder(at, timeout: float = TIMEOUT):
    import time

    deadline = time.monotonic() + timeout
    while not (at.success or at.warning):
        assert time.monotonic() < deadline, "the finder did not end"
        time.sleep(0.5)
        at.run(timeout=60)
    return at


def test_train_page_finds_a_rate_and_use_moves_the_slider(tiny_data):
    at = open_app("pages/train.py", data_root=str(tiny_data))
    at.radio(key="mode").set_value("scratch").run()
    at.select_slider(key="size").set_value(32).run()
    at.selectbox(key="batch").set_value(8).run()
    at.selectbox(key="precision").set_value("fp32").run()
    at.number_input(key="finder-steps").set_value(40).run()
    next(b for b in at.button if b.label == "Find a learning rate").click().run()
    at.run()
    assert not at.exception and not at.error
    wait_for_finder(at)
    assert at.success[0].value.startswith("suggested lr: ")
    use = next(b for b in at.button if b.label.startswith("Use "))
    suggested = float(use.label.removeprefix("Use "))
    use.click().run()
    assert at.select_slider(key="lr-scratch-resnet18").value == suggested
    assert any(chart.proto.spec and "Learning-rate finder" in chart.proto.spec for chart in at.get("plotly_chart"))

    # the Experiments page's sweep can start from the finder's range
    at.switch_page("pages/experiments.py").run()
    assert any("ran on other settings (batch size 8 -> 128)" in c.value for c in at.caption)  # not offered
    at.selectbox(key="exp-batch").set_value(8).run()
    button = next(b for b in at.button if b.label.startswith("From the learning-rate finder"))
    button.click().run()
    lrs = at.multiselect(key="exp-lrs").value
    assert len(lrs) == 3 and suggested in lrs
    assert at.radio(key="exp-sweep-mode").value == "scratch"


def test_train_page_refuses_the_finder_on_an_output_layer_recipe_in_one_sentence(tiny_data):
    at = open_app("pages/train.py", data_root=str(tiny_data))
    at.radio(key="preset").set_value("quick").run()
    next(b for b in at.button if b.label == "Find a learning rate").click().run()
    assert not at.exception
    assert any("set epochs to 1 or more" in e.value for e in at.error)
