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
from ftcore.cli.main import main as cli_main
from ftcore.config import TrainConfig, recipe
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.lr_find.finding import FinderSettings, LrFinding, read_curve, smooth
from ftcore.lr_find.range_test import find_lr, range_test
from ftcore.lr_find.stop import StopRule, stop_index
from ftcore.lr_find.suggest import (
    CHOSEN_BECAUSE,
    DEFAULT_RULE,
    LONG_RUN_STEPS,
    MAX_LIFT,
    OUTPUT_LAYER_LIFT,
    Rule,
    Suggestion,
    falling_from,
    for_the_run,
    suggest,
)
from ftcore.runs.local import LocalBackend
from ftcore.runs.process import FinderJob, ProcessJob
from ftcore.train.head import FeatureBatches
from ftcore.train.loop import fit
from ftcore.train.optim import make_optimizer
from ftcore.train.plan import RunPlan

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


# Hand-made curves whose right answer is known: 100 steps from 1e-7 to 1, as the finder's defaults sweep.
LRS = list(np.logspace(-7, 0, 100))
HALF = FinderSettings().half_window


def valley_curve(fall_from: float = -5.0, fall_to: float = -3.0, rise_to: float = -2.3) -> list[float]:
    """1.0 until lr 10**fall_from, a cosine fall to 0.2 at 10**fall_to (steepest half-way, in log lr), then a
    steep rise; cut where the finder would have stopped."""
    losses = []
    for lr in LRS:
        x = math.log10(lr)
        if x < fall_from:
            losses.append(1.0)
        elif x <= fall_to:
            losses.append(0.6 + 0.4 * math.cos(math.pi * (x - fall_from) / (fall_to - fall_from)))
        elif x <= rise_to:
            losses.append(0.2 * 10 ** (2 * (x - fall_to)))
    return losses


def read(losses: list[float], rule: Rule, diverged: bool = True) -> Suggestion:
    """`rule` on the smoothed hand-made curve."""
    return suggest(LRS[:len(losses)], smooth(losses, HALF), HALF, LRS[0], diverged, rule)


def test_on_a_clean_valley_every_rule_points_inside_the_fall_and_each_where_it_should():
    losses = valley_curve()
    smoothed = smooth(losses, HALF)
    lowest_lr = LRS[int(np.argmin(smoothed))]
    assert 10 ** -3.5 < lowest_lr <= 1e-3  # smoothing moves it a little left
    picks = {rule: read(losses, rule) for rule in Rule}
    for rule, pick in picks.items():
        assert pick.lr is not None, rule
        assert falling_from(LRS, smoothed) <= pick.lr <= max(lowest_lr, picks[Rule.EDGE].lr), rule
        assert pick.reason and pick.minimum_lr == lowest_lr
    half_way = 1e-4  # the cosine falls fastest half-way, in log lr, between 1e-5 and 1e-3
    assert picks[Rule.STEEP].lr == pytest.approx(half_way, rel=0.4)
    assert picks[Rule.VALLEY].lr == pytest.approx(half_way, rel=0.6)
    assert picks[Rule.MINIMUM].lr == pytest.approx(lowest_lr / 10)
    assert lowest_lr < picks[Rule.EDGE].lr < 10 ** -2.5  # where the climb passes 10 % above the lowest loss


def test_a_rule_pointing_at_the_plateau_is_raised_to_where_the_loss_starts_to_fall():
    # the slide rule's slopes agree again where the plateau meets the fall, a rate the curve shows to be slow;
    # so does a tenth of the minimum when the fall is under a decade wide
    losses = valley_curve(fall_from=-4.0, fall_to=-3.5)
    smoothed = smooth(losses, HALF)
    for rule in (Rule.SLIDE, Rule.MINIMUM):
        pick = read(losses, rule)
        assert pick.lr == falling_from(LRS, smoothed), rule
        assert "barely begun to fall" in pick.reason
    assert smoothed[LRS.index(falling_from(LRS, smoothed))] < 0.99  # it does fall there


def test_a_noisy_plateau_has_no_clear_answer_under_any_rule():
    rng = np.random.default_rng(0)
    losses = list(0.69 + 0.03 * rng.standard_normal(70))
    for rule in Rule:
        pick = read(losses, rule, diverged=False)
        assert pick.lr is None, rule
        assert "never clearly fell" in pick.reason and "no clear answer" in pick.reason


def test_an_early_divergence_points_below_it_and_a_loss_rising_at_once_says_start_lower():
    # falls for ten steps from the 5th, then explodes: every answer lies within that short fall
    losses = [1.0] * 5 + [0.75 + 0.25 * math.cos(math.pi * i / 10) for i in range(10)] + \
        [0.5 * 1.6 ** i for i in range(1, 11)]
    lowest_lr = LRS[int(np.argmin(smooth(losses, HALF)))]
    for rule in Rule:
        pick = read(losses, rule)
        assert pick.lr is not None and LRS[4] <= pick.lr < LRS[16], rule  # below the explosion
        assert pick.lr <= lowest_lr or rule == Rule.EDGE, rule
    rising = [0.7 * 1.3 ** i for i in range(20)]
    for rule in Rule:
        pick = read(rising, rule)
        assert pick.lr is None and f"start the finder lower than {LRS[0]:.0e}" in pick.reason, rule


def test_a_flat_curve_that_then_diverges_has_only_an_edge():
    # fine-tuning at small batches: a few dozen steps at tiny rates barely move the loss, then it explodes
    rng = np.random.default_rng(1)
    losses = list(1.0 + 0.05 * rng.standard_normal(60)) + [1.0 * 1.5 ** i for i in range(1, 8)]
    for rule in Rule:
        pick = read(losses, rule)
        if rule == Rule.EDGE:
            assert LRS[50] <= pick.lr <= LRS[60], pick  # the end of the flat stretch, just before the climb
        else:
            assert pick.lr is None and f"the {rule.value} rule reads the fall" in pick.reason, rule


def test_a_curve_that_never_falls_has_no_suggestion():
    for losses, says in (([0.7] * 60, "never clearly fell"), ([0.7 + 0.002 * i for i in range(60)], "only rose")):
        for rule in Rule:
            pick = read(losses, rule, diverged=False)
            assert pick.lr is None and says in pick.reason and "no clear answer" in pick.reason, rule


def test_too_few_steps_say_so():
    pick = read([1.0, 0.9, 0.8, 0.7], DEFAULT_RULE, diverged=False)
    assert pick.lr is None and "give it more steps" in pick.reason


def fine_tune_like() -> list[float]:
    """A fine-tuning curve: from 0.72 the loss falls to about 0.03, where a noisy bump to 0.2 lies, still far
    below the start; it only climbs past the start much later."""
    losses = [0.7 * 0.9 ** i + 0.02 for i in range(40)]
    return losses + [0.2] * 5 + [0.03] * 10 + [0.03 * 1.4 ** i for i in range(1, 20)]


def test_fastais_stop_rule_ends_a_fine_tuning_curve_at_a_bump_and_the_labs_waits_for_a_real_rise():
    losses = fine_tune_like()
    early = stop_index(losses, StopRule.LOWEST, HALF)
    late = stop_index(losses, StopRule.START, HALF)
    assert early is not None and 40 <= early < 45  # 4x its lowest (about 0.03) is 0.13: the bump ends it
    assert late is not None and late > 55  # the lab's waits until the loss is back above where it began
    assert np.mean(losses[late - HALF:late + 1]) > np.mean(losses[:HALF + 1])
    assert np.mean(losses[late - 1 - HALF:late]) <= np.mean(losses[:HALF + 1])  # ...and not a step later
    assert stop_index([0.7, 0.6, float("nan"), 0.5], StopRule.START, HALF) == 2  # a NaN ends either
    assert stop_index([0.7] * 30, StopRule.LOWEST, HALF) is None


def test_read_curve_keeps_every_rules_answer_and_names_the_rule_that_chose():
    losses = valley_curve()
    curve = {"lrs": LRS[:len(losses)], "losses": losses, "steps": 100, "diverged": True}
    finding = read_curve(LrFinding(**curve), FinderSettings(rule="steep"))
    assert finding.rule == "steep" and finding.suggestion == finding.suggestions["steep"]
    assert set(finding.suggestions) == {rule.value for rule in Rule}
    assert finding.why().startswith("Chosen by the steep rule, where the loss falls fastest: ")
    assert f"per decade of lr at {finding.suggestion:.1e}" in finding.why()
    assert "valley" in finding.others() and "steep" not in finding.others()
    assert read_curve(LrFinding(**curve), FinderSettings()).why().endswith(f"because {CHOSEN_BECAUSE}.")


def test_a_short_runs_suggestion_is_raised_by_the_root_of_its_shortness_at_most_half_a_decade():
    lrs = list(np.logspace(-6, -1, 60))
    assert for_the_run(1e-4, LONG_RUN_STEPS, lrs).factor == 1.0  # a long run keeps the pick
    assert for_the_run(1e-4, 0, lrs).factor == 1.0  # an unknown length too
    lift = for_the_run(1e-4, LONG_RUN_STEPS // 4, lrs)
    assert lift.factor == pytest.approx(2.0) and lift.lr == pytest.approx(2e-4)
    assert f"only {LONG_RUN_STEPS // 4} optimiser steps" in lift.why
    assert for_the_run(1e-4, 3, lrs).factor == pytest.approx(MAX_LIFT)  # at most half a decade
    assert for_the_run(lrs[-3], 3, lrs).lr == pytest.approx(lrs[-1])  # never past the last rate tried
    assert for_the_run(lrs[-1], 3, lrs).factor == 1.0


def test_an_output_layer_alone_is_raised_half_a_decade_more_even_past_where_its_loss_gave_out():
    lrs = list(np.logspace(-6, -1, 60))
    alone = for_the_run(1e-4, LONG_RUN_STEPS, lrs, output_layer_only=True)
    assert alone.factor == pytest.approx(OUTPUT_LAYER_LIFT) and "output layer alone" in alone.why
    short = for_the_run(1e-4, 3, lrs, output_layer_only=True)
    assert short.factor == pytest.approx(OUTPUT_LAYER_LIFT * MAX_LIFT) and "only 3 optimiser steps" in short.why
    assert for_the_run(lrs[-1], 3, lrs, output_layer_only=True).lr == pytest.approx(lrs[-1] * 10)


def test_read_curve_lifts_the_chosen_rules_pick_for_a_short_run_and_says_so():
    losses = valley_curve()
    curve = {"lrs": LRS[:len(losses)], "losses": losses, "steps": 100, "diverged": True}
    long = read_curve(LrFinding(**curve), FinderSettings())
    short = read_curve(LrFinding(**curve, run_steps=20), FinderSettings())
    assert long.lift == 1.0 and long.suggestion == long.suggestions["edge"] and "raised" not in long.why()
    assert short.suggestion == pytest.approx(long.suggestion * short.lift) and 1.0 < short.lift <= MAX_LIFT
    assert "only 20 optimiser steps" in short.why() and short.suggestions == long.suggestions


def test_a_curve_still_falling_at_the_end_is_said_to_be():
    losses = [1.0 - 0.008 * i for i in range(100)]
    finding = read_curve(LrFinding(lrs=LRS, losses=losses, steps=100), FinderSettings(rule="edge"))
    assert finding.minimum_lr == LRS[-1] and finding.suggestion == LRS[-1]
    assert "still falling" in finding.note


def test_settings_are_checked_and_the_lr_rises_exponentially():
    settings = FinderSettings(steps=5, start_lr=1e-6, end_lr=1e-2)
    assert [settings.lr_at(i) for i in range(5)] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    for bad in (FinderSettings(steps=2), FinderSettings(start_lr=1.0, end_lr=0.1), FinderSettings(smoothing=-1)):
        with pytest.raises(FtcoreError):
            bad.validate()


# --------------------------------------------------------------------------------------------------
# The test on a model


def cpu_plan(config: TrainConfig) -> RunPlan:
    """The plan of a run of `config` on the CPU in fp32, each batch in one forward pass."""
    return RunPlan(config=config, device=torch.device("cpu"))


def test_range_test_leaves_the_model_the_optimiser_and_the_random_state_as_they_were():
    model, batches = linear_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    finding = range_test(model, optimizer, batches, cpu_plan(recipe("finetune", data="", lr=0.05)),
                         FinderSettings(steps=30))
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
    finding = range_test(model, optimizer, batches, cpu_plan(config), FinderSettings(steps=12, end_lr=1e-3),
                         sink=lambda step: seen.append([g["lr"] for g in optimizer.param_groups]))
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
    range_test(model, optimizer, [(torch.randn(4, 3, 32, 32), torch.randint(0, 2, (4,)))], cpu_plan(config),
               settings, sink=lambda step: seen.append(optimizer.param_groups[0]["lr"]))
    assert seen == pytest.approx([10 * settings.lr_at(i) for i in range(6)])  # the suggestion stays in lr's units


def test_settings_that_move_the_lr_are_named_when_they_differ():
    from ftcore.lr_find.finding import recipe_differences

    found_on = recipe("finetune", "resnet18", data="d")
    assert recipe_differences(found_on, recipe("finetune", "resnet18", data="d", seed=9, image_size=96)) == []
    assert recipe_differences(found_on, recipe("finetune", "resnet18", data="d", epochs=9)) == ["epochs 5 -> 9"]
    other = recipe("finetune", "resnet18", data="d", loss_reduction="mean", batch_size=64)
    assert recipe_differences(found_on, other) == ["loss reduction sum -> mean", "batch size 128 -> 64"]


def test_with_the_mean_loss_the_same_curve_sits_batch_size_times_further_right():
    # Without weight decay, SGD on the mean at lr * B takes exactly the steps SGD on the sum takes at lr: the
    # per-photo losses match, and so do the suggestions, a factor B apart.
    curves = {}
    for reduction, scale in (("sum", 1), ("mean", 16)):
        model, batches = linear_problem()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        curves[reduction] = range_test(model, optimizer, batches,
                                       cpu_plan(recipe("finetune", data="", lr=1.0, loss_reduction=reduction)),
                                       FinderSettings(steps=40, start_lr=1e-5 * scale, end_lr=10.0 * scale))
    n = min(len(curves["sum"].losses), len(curves["mean"].losses))
    assert n > 20
    assert curves["mean"].losses[:n] == pytest.approx(curves["sum"].losses[:n], rel=1e-4, abs=1e-5)
    assert curves["mean"].suggestion == pytest.approx(16 * curves["sum"].suggestion, rel=1e-6)


def test_on_a_tiny_generated_set_the_curve_falls_then_rises_and_the_suggestion_lies_inside_it(tiny_data):
    for reduction in ("sum", "mean"):
        # 60 steps: at 30, the mean's curve on a Xeon with AMX was still falling at the range's end
        finding = find_lr(tiny_config(tiny_data, loss_reduction=reduction), FinderSettings(steps=60))
        lowest = int(np.argmin(finding.smoothed))
        assert finding.smoothed[lowest] < 0.8 * finding.smoothed[0], reduction  # it falls...
        assert max(finding.smoothed[lowest:]) > 2 * finding.smoothed[lowest], reduction  # ...then rises
        assert finding.diverged and len(finding.lrs) < 60
        assert falling_from(finding.lrs, finding.smoothed) <= finding.suggestions["edge"] < finding.lrs[-1]
        assert finding.lrs[0] < finding.suggestion <= finding.lrs[-1]  # lifted for the short run, within the test
        assert finding.rule == DEFAULT_RULE and finding.why().startswith(f"Chosen by the {DEFAULT_RULE} rule, ")
        assert finding.passes > 1  # 16 photos per class: the set was cycled
        assert finding.loss_reduction == reduction and finding.batch_size == 8
        assert finding.run_steps == 5 * 4  # the book's 5 epochs of 4 batches: a short run, so lifted
        assert finding.suggestion == pytest.approx(finding.suggestions["edge"] * finding.lift) and finding.lift > 1


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


def test_an_output_layer_recipe_steps_that_layer_alone_on_cached_features(tiny_data, random_resnet18_file):
    config = recipe("finetune", "resnet18", "quick", data=str(tiny_data), image_size=32, batch_size=8,
                    weights=str(random_resnet18_file))
    seen = []
    rng = torch.get_rng_state()
    finding = find_lr(config, FinderSettings(steps=40), seen.append)
    assert finding.output_layer_only and len(seen) == len(finding.lrs) > 5
    assert finding.passes == pytest.approx(len(finding.lrs) / 4)  # 32 training photos in batches of 8
    assert finding.run_steps == 20 * 4  # the quick preset's 20 output-layer epochs of 4 batches
    assert finding.suggestion == pytest.approx(finding.suggestions["edge"] * OUTPUT_LAYER_LIFT * (300 / 80) ** 0.5)
    assert finding.lrs == pytest.approx([FinderSettings(steps=40).lr_at(i) for i in range(len(finding.lrs))])
    assert finding.suggestion is not None, finding.note  # blue against red: the output layer learns it at once
    assert falling_from(finding.lrs, finding.smoothed) <= finding.suggestions["edge"] < finding.lrs[-1]
    assert torch.equal(torch.get_rng_state(), rng)
    # the same features and batches: a second test draws the same curve
    assert find_lr(config, FinderSettings(steps=40)).losses == pytest.approx(finding.losses)


def test_feature_batches_cover_every_photo_once_per_pass_in_a_new_order():
    features, labels = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    batches = FeatureBatches(features, labels, 4, seed=0)
    assert len(batches) == 3
    passes = [torch.cat([y for _, y in batches]) for _ in range(2)]
    assert all(sorted(p.tolist()) == list(range(10)) for p in passes)
    assert not torch.equal(passes[0], passes[1])
    assert all(torch.equal(X.squeeze(1).long(), y) for X, y in batches)  # each label stays with its features


def test_the_chart_has_a_log_lr_axis_and_marks_the_suggestion_and_the_slider():
    finding = LrFinding(lrs=[1e-6, 1e-5, 1e-4], losses=[0.7, 0.5, 2.0], smoothed=[0.65, 0.9, 1.2], suggestion=1e-6)
    fig = charts.lr_finder_figure(finding.lrs, finding.losses, finding.smoothed, finding.suggestion, 5e-5, "mean")
    assert fig.layout.xaxis.type == "log"
    assert [shape.x0 for shape in fig.layout.shapes] == [1e-6, 5e-5]
    assert "mean loss" in fig.layout.xaxis.title.text
    assert [ann.text for ann in fig.layout.annotations] == ["suggested 1.0e-06", "slider 5.0e-05"]


def test_sweep_rates_from_the_finders_range():
    finding = LrFinding(suggestion=3.1e-4, minimum_lr=3.1e-5)
    assert finding.sweep_lrs() == [9.8e-5, 3.1e-4, 9.8e-4]
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
    lrs, smoothed = [float(row["lr"]) for row in rows], [float(row["smoothed"]) for row in rows]
    expected = suggest(lrs, smoothed, FinderSettings(steps=40).half_window, lrs[0]).lr  # the rule, on the curve
    expected = for_the_run(expected, 5 * 4, lrs).lr  # ...for the run's 5 epochs of 4 batches
    assert suggestion == pytest.approx(expected, rel=0.05)  # printed to 2 digits
    assert printed[1].startswith(f"Chosen by the {DEFAULT_RULE} rule, ") and CHOSEN_BECAUSE in printed[1]


def test_cli_json_prints_the_whole_finding(tiny_data, tmp_path, capsys):
    out = tmp_path / "curve.json"
    code = cli_main(["lr-find", "--data", str(tiny_data), "--mode", "scratch", "--batch-size", "8", "--image-size",
                     "32", "--precision", "fp32", "--steps", "20", "--json", "--out", str(out), "--rule", "steep",
                     "--stop-rule", "lowest"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["config"]["mode"] == "scratch" and len(printed["lrs"]) == len(printed["losses"])
    assert printed["rule"] == "steep" and printed["stop_rule"] == "lowest"
    assert printed["suggestion"] == pytest.approx(printed["suggestions"]["steep"] * printed["lift"])
    assert set(printed["suggestions"]) == set(Rule) and printed["run_steps"] == 5 * 4


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
    scheduler = LocalBackend(slots=1, check_memory=False)
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
    scheduler = LocalBackend(slots=1, check_memory=False)
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
    while not (at.success or any(w.value.startswith("no suggestion") for w in at.warning)):
        assert time.monotonic() < deadline, "the finder did not end"
        time.sleep(0.5)
        at.run(timeout=60)
    return at


def test_train_page_finds_a_rate_and_use_moves_the_slider(tiny_data):
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    at.radio(key="mode").set_value("scratch").run()
    at.select_slider(key="size").set_value(64).run()  # the smallest size the slider offers
    at.select_slider(key="batch").set_value(8).run()
    at.radio(key="precision").set_value("fp32").run()
    at.number_input(key="finder-steps").set_value(40).run()
    assert at.select_slider(key="size").value == 64 and at.select_slider(key="batch").value == 8
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
    at.switch_page("app_pages/experiments.py").run()
    assert any("ran on other settings (batch size 8 -> 128)" in c.value for c in at.caption)  # not offered
    at.selectbox(key="exp-batch").set_value(8).run()
    button = next(b for b in at.button if b.label.startswith("From the learning-rate finder"))
    button.click().run()
    lrs = at.multiselect(key="exp-lrs").value
    assert len(lrs) == 3 and suggested in lrs
    assert at.radio(key="exp-sweep-mode").value == "scratch"


def test_train_page_finds_a_rate_for_the_quick_recipe_in_seconds_and_says_which_rule_chose(
        tiny_data, random_resnet18_file):
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    at.radio(key="preset").set_value("quick").run()
    at.select_slider(key="size").set_value(64).run()  # the smallest size the slider offers
    at.select_slider(key="batch").set_value(8).run()
    at.text_input(key="weights").set_value(str(random_resnet18_file)).run()
    at.number_input(key="finder-steps").set_value(40).run()
    next(b for b in at.button if b.label == "Find a learning rate").click().run()
    assert not at.exception and not at.error
    wait_for_finder(at)
    assert any("the output layer alone on cached features" in c.value for c in at.caption)
    unclear = [w.value for w in at.warning if w.value.startswith("no suggestion")]
    if unclear:  # no clear answer: said so, and the slider keeps its rate
        assert "The slider keeps 5e-05" in unclear[0]
        return
    assert at.success[0].value.startswith("suggested lr: ")
    assert any(c.value.startswith(f"Chosen by the {DEFAULT_RULE} rule, ") and "Other rules on this curve" in c.value
               for c in at.caption)
    use = next(b for b in at.button if b.label.startswith("Use "))
    use.click().run()
    assert at.select_slider(key="lr-finetune-resnet18").value == float(use.label.removeprefix("Use "))
