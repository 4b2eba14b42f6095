"""`python -m ftcore bench`: both sides run in their own processes and the table compares them."""

from __future__ import annotations

import json

import pytest

from benchmarks.speed.predict_latency import predict_latency
from ftcore.cli import bench as bench_command
from ftcore.cli.main import main
from ftcore.lab import bench
from ftcore.lab.bench import (
    SideResult,
    batchnorm_suffix,
    format_seed_summary,
    format_speed_table,
    format_tta_table,
    run_time_to_accuracy,
    speed_rows,
)


def epoch(n: int, acc: float, at: float, stage: str = "full") -> dict:
    return {"epoch": n, "stage": stage, "examples": 100, "test_examples": 50, "seconds": 10.0, "wall_seconds": 20.0,
            "eval_seconds": 5.0, "test_acc": acc, "at": at}


def test_rates_time_to_target_and_ratios_from_hand_made_results():
    ref = SideResult("reference", [epoch(1, 0.8, 30.0), epoch(2, 0.91, 60.0)], peak_rss_mb=1000, wall_seconds=61)
    fast = SideResult("ftcore", [epoch(1, 0.9, 5.0, "head"), epoch(2, 0.93, 12.0)], peak_rss_mb=1500,
                      wall_seconds=13)
    fast.epochs[1]["seconds"] = 2.5  # 4x the reference's training speed
    assert ref.rate("seconds") == 10.0 and ref.rate("wall_seconds") == 5.0 and ref.rate("eval_seconds",
                                                                                         "test_examples") == 10.0
    assert fast.rate("seconds") == 40.0  # head-only epochs are not training throughput
    assert ref.first_reaching(0.9) == 60.0 and fast.first_reaching(0.9) == 5.0 and ref.first_reaching(0.95) is None
    assert fast.best_acc() == 0.93
    rows = {name: (r, f) for name, r, f, _ in speed_rows([ref], [fast])}
    assert rows["train images/sec (compute, the book's timer)"] == (10.0, 40.0)
    table = format_speed_table(speed_rows([ref], [fast]), "bf16")
    assert "4.00x" in table and "1.50x" in table  # training speed and peak memory ratios
    tta = format_tta_table([ref, fast], 0.9)
    assert "60 s" in tta and "5 s" in tta and "0.930" in tta


def test_seed_summary_gives_mean_and_range_per_kind_of_run():
    runs = [SideResult("book recipe, reference loop, seed 1", [epoch(1, 0.80, 30.0), epoch(2, 0.90, 60.0)],
                       wall_seconds=60),
            SideResult("ftcore preset book, micro-batch 128, seed 1", [epoch(1, 0.85, 9.0), epoch(2, 0.84, 18.0)],
                       wall_seconds=20),
            SideResult("book recipe, reference loop, seed 2", [epoch(1, 0.86, 30.0), epoch(2, 0.84, 60.0)],
                       wall_seconds=70),
            SideResult("ftcore preset book, micro-batch 128, seed 2", [epoch(1, 0.87, 9.0), epoch(2, 0.88, 18.0)],
                       wall_seconds=22)]
    rows = format_seed_summary(runs).splitlines()[1:]
    assert [r.split("  ")[0] for r in rows] == ["book recipe, reference loop", "ftcore preset book, micro-batch 128"]
    # reference: best 0.90 and 0.86 -> mean 0.880; final 0.90 and 0.84 -> mean 0.870; wall (60 + 70) / 2
    assert rows[0].split()[-7:] == ["2", "0.880", "(0.860-0.900)", "0.870", "(0.840-0.900)", "65", "s"]
    # ftcore: best 0.85 and 0.88 -> 0.865; final 0.84 and 0.88 -> 0.860; wall 21
    assert rows[1].split()[-7:] == ["2", "0.865", "(0.850-0.880)", "0.860", "(0.840-0.880)", "21", "s"]


def test_bench_runs_both_sides_and_writes_json(tiny_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--data", str(tiny_data), "--arch", "resnet18", "--mode", "scratch", "--limit", "8",
                     "--epochs", "1", "--repeats", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "reference" in printed and "ftcore/ref" in printed and "eval images/sec" in printed
    report = json.loads(out.read_text())
    assert len(report["reference"]) == len(report["ftcore"]) == 1
    for side in ("reference", "ftcore"):
        run = report[side][0]
        assert run["peak_rss_mb"] > 0 and len(run["epochs"]) == 1 and run["epochs"][0]["examples"] == 16
    # ftcore's run says what BatchNorm saw: the whole batch of 128 (all 16 photos), as the book's loop
    assert report["ftcore"][0]["micro_batch"] == 128 and report["ftcore"][0]["side"] == "ftcore, whole batch"


def test_time_to_accuracy_times_presets_from_process_start(tiny_data, tmp_path, random_resnet18_file, capsys):
    out = tmp_path / "tta.json"
    code = main(["bench", "--time-to-accuracy", "--data", str(tiny_data), "--arch", "resnet18", "--weights",
                     str(random_resnet18_file), "--presets", "quick", "--no-reference", "--limit", "8",
                     "--target", "0.0", "--json", str(out)])
    assert code == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["side"] for r in runs] == ["ftcore preset quick"]
    epochs = runs[0]["epochs"]
    assert len(epochs) == 20 and all(e["stage"] == "head" for e in epochs)
    assert 0 < epochs[0]["at"] <= epochs[-1]["at"] <= runs[0]["wall_seconds"]  # seconds since the launch
    assert "ftcore preset quick" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["--presets", "fastest"], "unknown preset 'fastest'"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--micro-batch", "-1"], "--limit and --micro-batch must be 0 or more"),
    (["--time-to-accuracy", "--seeds", "1,two"], "--seeds must be whole numbers separated by commas (got '1,two')"),
    (["--time-to-accuracy", "--seeds", ","], "--seeds must name at least one seed, each once (got ',')"),
    (["--time-to-accuracy", "--seeds", "1,1"], "--seeds must name at least one seed, each once (got '1,1')"),
    (["--seeds", "1,2"], "--seeds applies to --time-to-accuracy only"),
])
def test_bench_bad_flags_are_one_error_line(tiny_data, capsys, argv, words):
    assert main(["bench", "--data", str(tiny_data), "--mode", "scratch", *argv]) == 2
    assert words in capsys.readouterr().err


def test_predict_latency_classifies_a_1024_photo():
    figures = predict_latency("resnet18", repeats=2)
    assert 0 < figures["min_ms"] <= figures["median_ms"]


@pytest.mark.parametrize("argv,limit", [([], 100), (["--time-to-accuracy"], None), (["--limit", "0"], None),
                                        (["--time-to-accuracy", "--limit", "8"], 8)])
def test_speed_table_defaults_to_100_photos_per_class_and_time_to_accuracy_to_all(tiny_data, random_resnet18_file,
                                                                                  monkeypatch, argv, limit):
    seen = {}
    # the limit is run_bench's 6th and run_time_to_accuracy's 7th argument
    monkeypatch.setattr(bench_command, "run_bench", lambda *a, **k: seen.update(limit=a[5]) or {})
    monkeypatch.setattr(bench_command, "run_time_to_accuracy", lambda *a, **k: seen.update(limit=a[6]) or {})
    assert main(["bench", "--data", str(tiny_data), "--arch", "resnet18", "--weights",
                 str(random_resnet18_file), *argv]) == 0
    assert seen["limit"] == limit


def test_combining_tta_files_names_runs_by_seed_and_lets_a_later_file_replace_a_run(tmp_path):
    from benchmarks.speed.combine_tta import load_runs

    def report(path, seeds, runs, micro_batch=None):
        runs = [SideResult(side, eps, devices=["cpu"], micro_batch=micro_batch).__dict__ for side, eps in runs]
        for run in runs:
            if micro_batch is None:
                del run["micro_batch"]  # saved before runs recorded BatchNorm's batch
        path.write_text(json.dumps({"seeds": seeds, "runs": runs} if seeds else {"runs": runs}))  # older: no seeds
        return str(path)

    first = report(tmp_path / "a.json", None, [("ftcore preset book", [epoch(1, 0.80, 9.0)]),
                                               ("book recipe, reference loop", [epoch(1, 0.85, 30.0)])])
    again = report(tmp_path / "b.json", [0], [("ftcore preset book", [epoch(1, 0.82, 9.0)])])
    asked = report(tmp_path / "c.json", [1], [("ftcore preset book, micro-batch 128", [epoch(1, 0.83, 9.0)]),
                                              ("ftcore preset quick", [epoch(1, 0.9, 1.0, "head")])])
    seeds = report(tmp_path / "d.json", [1, 2], [("ftcore preset book, whole batch, seed 1", [epoch(1, 0.84, 9.0)]),
                                                  ("ftcore preset book, whole batch, seed 2", [epoch(1, 0.86, 9.0)])],
                   micro_batch=128)
    runs = load_runs([first, again, asked, seeds])
    # older runs are named by what BatchNorm saw: 16 photos by default in fp32 on a CPU, or what was asked for
    assert [(r.side, r.best_acc()) for r in runs] == [
        ("book recipe, reference loop, seed 0", 0.85), ("ftcore preset book, micro-batch 16, seed 0", 0.82),
        ("ftcore preset book, whole batch, seed 1", 0.84), ("ftcore preset book, whole batch, seed 2", 0.86),
        ("ftcore preset quick, seed 1", 0.9)]


def test_time_to_accuracy_runs_every_preset_once_per_seed_with_its_seed(monkeypatch):
    specs = []

    def fake_launch(spec, timeout=None):  # a run of every layer names itself by BatchNorm's batch, as run_ftcore
        specs.append(spec)
        acc = 0.8 + spec["seed"] / 100
        suffix = batchnorm_suffix(spec["micro_batch"], 128) if spec.get("preset") == "book" else ""
        return SideResult(spec.get("label", "ftcore") + suffix, [epoch(1, acc, 10.0)], wall_seconds=12)

    monkeypatch.setattr(bench, "launch", fake_launch)
    monkeypatch.setattr(bench, "test_size", lambda data, limit: 50)
    lines = []
    report = run_time_to_accuracy("DATA", "mobilenet_v2", None, 0.9, ["book", "quick"], True, None, "cpu",
                                  seeds=[3, 5], micro_batch=128, out=lines.append)
    assert [(s["side"], s.get("preset"), s["seed"], s["micro_batch"]) for s in specs] == [
        ("reference", None, 3, 128), ("ftcore", "book", 3, 128), ("ftcore", "quick", 3, 128),
        ("reference", None, 5, 128), ("ftcore", "book", 5, 128), ("ftcore", "quick", 5, 128)]
    assert [r["side"] for r in report["runs"]] == [
        "book recipe, reference loop, seed 3", "ftcore preset book, whole batch, seed 3",
        "ftcore preset quick, seed 3",  # output-layer epochs only: micro-batches do not apply
        "book recipe, reference loop, seed 5", "ftcore preset book, whole batch, seed 5",
        "ftcore preset quick, seed 5"]
    assert report["seeds"] == [3, 5]
    summary = lines[-1].splitlines()
    assert len(summary) == 4 and summary[1].split()[-7:] == ["2", "0.840", "(0.830-0.850)", "0.840",
                                                              "(0.830-0.850)", "12", "s"]
