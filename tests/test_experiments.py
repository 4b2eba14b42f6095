"""Experiments: lr sweeps and fine-tune vs scratch as a series of runs, each in a process of its own."""

from __future__ import annotations

import time

import pytest

from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.lab.experiments import finetune_vs_scratch_configs, lr_sweep_configs, parse_lrs
from ftcore.models.output_layer import head_init_status
from ftcore.runs.local import LocalBackend
from ftcore.runs.series import Experiment, sweep_points
from ftcore.train.loop import fit


def tiny(tiny_data, mode="scratch", **overrides):
    settings = {"epochs": 1, "batch_size": 8, "image_size": 32, **overrides}
    return recipe(mode, data=str(tiny_data), **settings)


def test_parse_lrs_keeps_order_and_names_bad_values():
    assert parse_lrs("1e-5, 5e-5,0.001") == [1e-5, 5e-5, 1e-3]
    with pytest.raises(FtcoreError, match="learning rate 'fast' is not a number"):
        parse_lrs("1e-5,fast")
    with pytest.raises(FtcoreError, match="learning rate -1 must be positive"):
        parse_lrs("-1")


def test_sweep_configs_change_only_the_lr(tiny_data):
    base = tiny(tiny_data, "finetune", seed=4)
    configs = lr_sweep_configs(base, [1e-5, 1e-3])
    assert [c.lr for c in configs] == [1e-5, 1e-3]
    assert all({**c.to_dict(), "lr": base.lr} == base.to_dict() for c in configs)


def test_finetune_vs_scratch_are_the_books_two_recipes_with_shared_settings(tiny_data):
    base = tiny(tiny_data, "finetune", seed=9, freeze_body=True, limit=3)
    finetune, scratch = finetune_vs_scratch_configs(base)
    assert (finetune.mode, finetune.lr, finetune.param_groups, finetune.freeze_body) == ("finetune", 5e-5, True, True)
    assert (scratch.mode, scratch.lr, scratch.param_groups, scratch.freeze_body) == ("scratch", 5e-4, False, False)
    assert all((c.seed, c.limit, c.image_size, c.epochs) == (9, 3, 32, 1) for c in (finetune, scratch))


def test_head_init_status_explains_when_the_imagenet_rows_can_be_used(random_resnet18_file, shared_mobilenet):
    ok, sentence = head_init_status("resnet18", str(random_resnet18_file), ["hotdog", "not-hotdog"])
    assert ok and sentence.startswith("hotdog = ImageNet row 934")
    ok, sentence = head_init_status("resnet18", str(random_resnet18_file), ["blue", "red"])
    assert not ok and "none of the classes (blue, red) is an ImageNet category" in sentence
    ok, sentence = head_init_status("mobilenet_v2", str(shared_mobilenet), ["hotdog", "not-hotdog"])
    assert not ok and "have no ImageNet output layer" in sentence


def test_head_init_status_without_weights_says_so(monkeypatch):
    monkeypatch.setattr("ftcore.models.weights.shared_dir", lambda: None)
    ok, sentence = head_init_status("resnet18", None, ["hotdog"])
    assert not ok and "no ImageNet weights for resnet18 on this machine" in sentence


def test_a_series_runs_one_after_another_and_keeps_every_run(tiny_data, tmp_path):
    configs = lr_sweep_configs(tiny(tiny_data), [5e-4, 1e-3])
    experiment = Experiment("sweep", configs, tmp_path / "runs", LocalBackend(check_memory=False)).start()
    assert experiment.join(timeout=120)
    snap = experiment.snapshot()
    assert snap.status == "finished" and snap.done and snap.progress == 1.0 and snap.title == "learning-rate sweep"
    assert [job.status for job in snap.jobs] == ["finished", "finished"]
    assert [job.config.lr for job in snap.jobs] == [5e-4, 1e-3]
    runs = experiment.runs()
    assert [run.config.lr for run in runs] == [5e-4, 1e-3] and len({run.id for run in runs}) == 2
    points = sweep_points(snap)
    assert [p.heldout_acc for p in points] == [run.history.final().test_acc for run in runs]


def test_a_diverging_lr_fails_its_run_and_the_sweep_goes_on(tiny_data, tmp_path):
    configs = lr_sweep_configs(tiny(tiny_data), [1e6, 5e-4])
    experiment = Experiment("sweep", configs, tmp_path / "runs", LocalBackend(check_memory=False)).start()
    assert experiment.join(timeout=120)
    first, second = sweep_points(experiment.snapshot())
    assert (first.lr, first.heldout_acc, first.status) == (1e6, None, "failed") and "diverged" in first.error
    assert second.status == "finished" and second.heldout_acc is not None
    assert [run.config.lr for run in experiment.runs()] == [5e-4]


def test_stop_ends_the_current_run_and_starts_no_more(tiny_data, tmp_path):
    configs = lr_sweep_configs(tiny(tiny_data, epochs=20), [5e-4, 1e-3])
    experiment = Experiment("sweep", configs, tmp_path / "runs", LocalBackend(check_memory=False)).start()
    deadline = time.monotonic() + 60
    while not experiment.snapshot().jobs or not experiment.snapshot().jobs[0].batches:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    experiment.stop()
    assert experiment.join(timeout=60)
    snap = experiment.snapshot()
    assert snap.status == "stopped" and len(snap.jobs) == 1 and snap.jobs[0].status == "stopped"


def test_an_unknown_kind_is_refused(tmp_path):
    with pytest.raises(FtcoreError, match="experiment must be one of sweep, compare"):
        Experiment("grid", [], tmp_path, LocalBackend(check_memory=False))


def test_rerunning_a_runs_config_reproduces_its_history(tiny_data):
    """'Re-run this' starts the stored config again; on the CPU the same seed gives the same curves."""
    first = fit(tiny(tiny_data, seed=11))
    again = fit(type(first.config).from_dict(first.config.to_dict()))
    assert again.history.batches == first.history.batches
    assert [(e.train_loss, e.train_acc, e.test_acc) for e in again.history.epochs] == \
        [(e.train_loss, e.train_acc, e.test_acc) for e in first.history.epochs]
