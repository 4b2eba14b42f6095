"""The lesson in a minute: its settings against the book's recipe, runs submitted together sharing one slot, the
side-by-side experiment, the command line and the Train page's buttons. Its timings are in the benchmark
(benchmarks/speed/lesson.py), not here."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

from conftest import REPO, open_app, wait_until
from ftcore.config import PRESETS, recipe
from ftcore.lab import lesson
from ftcore.runs.local import LocalBackend
from ftcore.runs.series import Experiment
from ftcore.runs.steering import read_state

TIMEOUT = 240


def test_the_lesson_keeps_the_books_optimiser_loss_and_rates():
    book_ft, book_scratch = recipe("finetune", "resnet18", data="d"), recipe("scratch", "resnet18", data="d")
    ft, scratch = recipe("finetune", preset="lesson", data="d"), recipe("scratch", preset="lesson", data="d")
    assert ft.arch == scratch.arch == "mobilenet_v2"  # the preset's network when none is named
    assert (ft.lr, scratch.lr) == (book_ft.lr, book_scratch.lr) == (5e-5, 5e-4)  # the book's rates
    assert (ft.param_groups, ft.head_lr_mult, scratch.param_groups) == (True, 10.0, False)
    for config in (ft, scratch):  # the book's loss and SGD; what it scales down is smaller than the book's
        assert (config.loss_reduction, config.weight_decay, config.micro_batch) == ("sum", 1e-3, 0)
        assert config.image_size < 224 and config.epochs < 5 and config.batch_size < 128 and config.limit
        config.validate()
    assert recipe("finetune", "resnet18", "lesson", data="d").arch == "resnet18"  # a named network is kept


def test_the_lessons_rows_share_the_page_data_and_differ_in_one_setting_each(tiny_data):
    base = recipe("finetune", "resnet18", data=str(tiny_data), seed=7, val_fraction=0.25, weights="r18.pth")
    compare = lesson.compare_configs(base)
    assert [c.mode for c in compare] == ["finetune", "scratch"]
    for config in compare:
        assert (config.data, config.seed, config.val_fraction) == (str(tiny_data), 7, 0.25)
        assert config.weights is None  # a ResNet-18 file is no MobileNetV2 weights
    row = lesson.lr_row_configs(base, 5e-5)
    assert [c.lr for c in row] == [5e-6, 5e-5, 5e-4]
    assert {c.mode for c in row} == {"finetune"} and all(c.param_groups for c in row)
    on, off = lesson.groups_configs(base, 1e-4)
    assert (on.param_groups, off.param_groups) == (True, False) and on.lr == off.lr == 1e-4
    slider = dataclasses.replace(base, lr=1e-4)  # the page's buttons take the slider's rate from its settings
    assert [c.lr for c in lesson.LESSONS["lesson-lr"](slider)] == [1e-5, 1e-4, 1e-3]
    assert [c.param_groups for c in lesson.LESSONS["lesson-groups"](slider)] == [True, False]
    assert [c.mode for c in lesson.LESSONS["lesson"](slider)] == ["finetune", "scratch"]
    same_arch = dataclasses.replace(base, arch=PRESETS["lesson"]["arch"], weights="mnv2.pth")
    assert lesson.compare_configs(same_arch)[0].weights == "mnv2.pth"
    assert "96 px" in lesson.scaled_down_text() and "mobilenet_v2" in lesson.scaled_down_text()


def tiny_lesson(tiny_data, weights) -> list:
    """The lesson's fine-tune vs scratch on the tiny photos, one short epoch at 32 px."""
    base = recipe("finetune", "mobilenet_v2", data=str(tiny_data), weights=str(weights))
    return [dataclasses.replace(c, image_size=32, epochs=1, batch_size=8, precision="fp32")
            for c in lesson.compare_configs(base)]


def test_the_lesson_trains_its_runs_side_by_side_in_child_processes(tiny_data, shared_mobilenet, tmp_path):
    scheduler = LocalBackend(slots=1, check_memory=False)
    experiment = Experiment("lesson", tiny_lesson(tiny_data, shared_mobilenet), runs_dir=tmp_path / "runs",
                            backend=scheduler).start()
    seen = []
    while not experiment.snapshot().done:
        seen.append(tuple(job.status for job in experiment.snapshot().jobs))
        assert len(seen) < TIMEOUT * 20, "the lesson did not end"
        time.sleep(0.05)
    active = ("starting", "running")
    assert any(len(s) == 2 and s[0] in active and s[1] in active for s in seen)  # both at once
    snap = experiment.snapshot()
    assert [job.status for job in snap.jobs] == ["finished", "finished"]
    assert [job.config.mode for job in snap.jobs] == ["finetune", "scratch"]
    assert len(experiment.runs()) == 2 and all(run.history.final().test_acc is not None for run in experiment.runs())


def test_stopping_a_lesson_stops_every_run_and_keeps_their_models(tiny_data, shared_mobilenet, tmp_path):
    configs = [dataclasses.replace(c, epochs=200) for c in tiny_lesson(tiny_data, shared_mobilenet)]
    experiment = Experiment("lesson", configs, runs_dir=tmp_path / "runs",
                            backend=LocalBackend(slots=1, check_memory=False)).start()
    wait_until(lambda: len(experiment.snapshot().jobs) == 2
               and all(job.batches for job in experiment.snapshot().jobs), "both runs to train", TIMEOUT)
    experiment.stop()
    assert experiment.join(TIMEOUT)
    assert [job.status for job in experiment.snapshot().jobs] == ["stopped", "stopped"]
    assert len(experiment.runs()) == 2  # each kept what it had learned


def test_compare_preset_lesson_on_the_command_line(tiny_data, shared_mobilenet, tmp_path):
    out = tmp_path / "lesson"
    proc = subprocess.run([sys.executable, "-m", "ftcore", "compare", "--preset", "lesson", "--data", str(tiny_data),
                           "--weights", str(shared_mobilenet), "--image-size", "32", "--epochs", "1",
                           "--precision", "fp32", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "The lesson in a minute is" in proc.stderr and "the full recipe" in proc.stderr
    assert "(book)" not in proc.stdout  # the book's full-recipe numbers are not this recipe's
    for mode, lr in (("finetune", 5e-5), ("scratch", 5e-4)):
        saved = json.loads((out / mode / "metrics.json").read_text())["config"]
        assert (saved["arch"], saved["batch_size"], saved["limit"]) == ("mobilenet_v2", 32, 500)
        assert saved["lr"] == lr and saved["image_size"] == 32  # the flag wins over the preset


def test_the_train_pages_lesson_button_draws_both_runs_on_one_chart(tiny_data, shared_mobilenet, monkeypatch):
    monkeypatch.setenv("FTCORE_WEIGHTS", str(shared_mobilenet))
    monkeypatch.setitem(PRESETS, "lesson", {**PRESETS["lesson"], "image_size": 32, "epochs": 1})
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    assert "The lesson in a minute is" in " ".join(c.value for c in at.caption)
    at.button(key="start-lesson").click().run()
    assert not at.exception, [e.message for e in at.exception]
    experiment = at.session_state["experiment"]
    assert at.button(key="start").disabled and at.button(key="start-lesson-lr").disabled
    assert experiment.join(TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "lesson" in c.proto.spec)
    assert chart["layout"]["title"]["text"] == "The lesson in a minute: fine-tune vs scratch: a scaled-down recipe"
    assert "book fine-tune" not in json.dumps(chart)  # the book's full-recipe lines are not this recipe's
    names = {trace["name"] for trace in chart["data"]}
    assert {"fine-tune mobilenet_v2 lr 5e-05, head 10x", "scratch mobilenet_v2 lr 5e-04"} <= names
    assert len(at.session_state["runs"]) == 2


def test_the_lessons_runs_are_steered_all_at_once_and_each_keeps_its_own_rate(tiny_data, shared_mobilenet,
                                                                             monkeypatch):
    monkeypatch.setenv("FTCORE_WEIGHTS", str(shared_mobilenet))
    monkeypatch.setitem(PRESETS, "lesson", {**PRESETS["lesson"], "image_size": 32, "epochs": 30})
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    at.button(key="start-lesson").click().run()
    experiment = at.session_state["experiment"]
    jobs = []
    deadline = time.monotonic() + TIMEOUT
    while len(jobs) < 2 or not all(job.snapshot().steerable and read_state(job.folder) for job in jobs):
        assert time.monotonic() < deadline, "the lesson's runs did not start training"
        time.sleep(0.1)
        jobs = experiment.jobs()
    at.run()
    at.button(key="lesson-steer-Rates x10").click().run()
    assert not at.exception, [e.message for e in at.exception]
    while not all(job.snapshot().steering for job in jobs):
        assert time.monotonic() < deadline, "the change did not apply"
        time.sleep(0.1)
    experiment.stop()
    assert experiment.join(TIMEOUT)
    finetune, scratch = (job.snapshot().steering[0] for job in jobs)
    assert (finetune.lr, finetune.head_lr) == (5e-4, 5e-3)  # fine-tuning's 5e-5 x10, its output layer still at 10x
    assert (scratch.lr, scratch.head_lr) == (5e-3, 5e-3)  # scratch's 5e-4 x10, one rate for every layer
    at.run()
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "lesson" in c.proto.spec)
    assert sorted(a["text"] for a in chart["layout"]["annotations"] if a["text"].startswith("lr ")) == \
        ["lr 5e-3", "lr 5e-4"]
