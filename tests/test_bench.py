"""`python -m ftcore bench`: both sides run in their own processes and the table compares them."""

from __future__ import annotations

import json

import pytest

from ftcore import bench, cli
from ftcore.bench import SideResult


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
    rows = {name: (r, f) for name, r, f, _ in bench.speed_rows([ref], [fast])}
    assert rows["train images/sec (compute, the book's timer)"] == (10.0, 40.0)
    table = bench.format_speed_table(bench.speed_rows([ref], [fast]), "bf16")
    assert "4.00x" in table and "1.50x" in table  # training speed and peak memory ratios
    tta = bench.format_tta_table([ref, fast], 0.9)
    assert "60 s" in tta and "5 s" in tta and "0.930" in tta


def test_bench_runs_both_sides_and_writes_json(tiny_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--data", str(tiny_data), "--arch", "resnet18", "--mode", "scratch", "--limit", "8",
                     "--epochs", "1", "--repeats", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "reference" in printed and "ftcore/ref" in printed and "eval images/sec" in printed
    report = json.loads(out.read_text())
    assert len(report["reference"]) == len(report["ftcore"]) == 1
    for side in ("reference", "ftcore"):
        run = report[side][0]
        assert run["peak_rss_mb"] > 0 and len(run["epochs"]) == 1 and run["epochs"][0]["examples"] == 16


def test_time_to_accuracy_times_presets_from_process_start(tiny_data, tmp_path, random_resnet18_file, capsys):
    out = tmp_path / "tta.json"
    code = cli.main(["bench", "--time-to-accuracy", "--data", str(tiny_data), "--arch", "resnet18", "--weights",
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
])
def test_bench_bad_flags_are_one_error_line(tiny_data, capsys, argv, words):
    assert cli.main(["bench", "--data", str(tiny_data), "--mode", "scratch", *argv]) == 2
    assert words in capsys.readouterr().err


def test_predict_latency_classifies_a_1024_photo():
    figures = bench.predict_latency("resnet18", repeats=2)
    assert 0 < figures["min_ms"] <= figures["median_ms"]
