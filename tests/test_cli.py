"""Command line: the book's output format, the files it writes, and `error: ...` + exit 2 on bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error

import pytest
import torch

from conftest import REPO, write_tiny_imagefolder
from ftcore.cli.main import main

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+): loss \d+\.\d{3}, train acc [01]\.\d{3}, test acc [01]\.\d{3}$")
QUICK = ["--epochs", "1", "--batch-size", "8", "--image-size", "32"]


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    """One CLI training run on the tiny data, in a subprocess as a user would run it."""
    out = tmp_path_factory.mktemp("cli-run")
    proc = subprocess.run([sys.executable, "-m", "ftcore", "train", "--data", str(tiny_data), "--mode", "scratch",
                           "--epochs", "2", "--batch-size", "8", "--image-size", "32", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    return proc, out


def test_train_prints_the_books_lines_and_writes_the_run(trained_run):
    proc, out = trained_run
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [EPOCH_LINE.match(line).groups() for line in lines[:2]] == [("1", "2"), ("2", "2")]
    assert lines[2] == lines[1].split(": ", 1)[1]  # `loss ..., train acc ..., test acc ...` of the last epoch
    assert re.fullmatch(r"\d+\.\d examples/sec on \[device\(type='cpu'\)\]", lines[3])
    assert len(lines) == 4 and "Traceback" not in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["lr"] == 5e-4 and metrics["config"]["param_groups"] is False
    assert metrics["classes"] == ["blue", "red"] and len(metrics["history"]["epochs"]) == 2
    assert (out / "checkpoint.pt").is_file()


def test_predict_lines_and_json(trained_run, tiny_data, capsys):
    _, out = trained_run
    photos = [str(tiny_data / "test" / "red" / "000.png"), str(tiny_data / "test" / "blue" / "000.png")]
    assert main(["predict", "--checkpoint", str(out / "checkpoint.pt"), *photos]) == 0
    lines = capsys.readouterr().out.splitlines()
    for photo, line in zip(photos, lines, strict=True):
        m = re.fullmatch(rf"{re.escape(photo)}: (\w+) ([01]\.\d{{3}}), (\w+) ([01]\.\d{{3}})", line)
        assert m and {m[1], m[3]} == {"blue", "red"} and float(m[2]) >= float(m[4])
        assert float(m[2]) + float(m[4]) == pytest.approx(1, abs=0.002)
    assert main(["predict", "--checkpoint", str(out / "checkpoint.pt"), "--json", *photos]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in records] == photos
    assert all(sum(r["probabilities"].values()) == pytest.approx(1) for r in records)


def test_data_prints_the_summary(tiny_data, capsys):
    assert main(["data", "--root", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "classes: blue, red" in out and "train: 32 images (blue 16 (50%), red 16 (50%))" in out


def test_compare_prints_both_runs_beside_the_book(tiny_data, random_resnet18_file, tmp_path, capsys):
    code = main(["compare", "--data", str(tiny_data), "--weights", str(random_resnet18_file), "--limit", "4",
                 "--out", str(tmp_path), *QUICK])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"^finetune \(resnet18, here\) +\d\.\d{3} +[01]\.\d{3} +[01]\.\d{3}", out, re.M)
    assert re.search(r"^scratch \(resnet18, here\) ", out, re.M)
    assert re.search(r"^finetune \(book\) +0\.220 +0\.915 +0\.939 +999\.1$", out, re.M)
    assert re.search(r"^scratch \(book\) +0\.374 +0\.839 +0\.843 +1623\.8$", out, re.M)
    assert (tmp_path / "finetune" / "checkpoint.pt").is_file() and (tmp_path / "scratch" / "metrics.json").is_file()


def test_help_says_which_defaults_are_the_books(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "resnet18      5e-05 / 0.0005  (the book's (d2l 13.2))" in out and "book: 128" in out


# --------------------------------------------------------------------------------------------------
# Bad input: exit 2, one line starting `error:`, no traceback.


def offline(monkeypatch):
    def fail(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    monkeypatch.setattr("urllib.request.urlopen", fail)


def bad_inputs(tiny_data, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(b"x")
    bad_checkpoint = tmp_path / "bad.pt"
    bad_checkpoint.write_bytes(b"garbage")
    return {
        "missing folder": (["train", "--data", str(tmp_path / "missing")], "does not exist"),
        "not an ImageFolder tree": (["train", "--data", str(flat)], "has 0 class folder(s)"),
        "unreadable checkpoint": (["predict", "--checkpoint", str(bad_checkpoint), str(text)], "cannot be read"),
        "not an image": (["predict", "--checkpoint", "CHECKPOINT", str(text)], "is not an image"),
        "offline download": (["data", "--download", "--root", str(tmp_path / "dl")], "could not download"),
        "offline weights": (["train", "--data", str(tiny_data), *QUICK], "could not download ImageNet weights"),
        "missing weights file": (["train", "--data", str(tiny_data), "--weights", str(tmp_path / "w.pth")],
                                 "does not exist"),
        "unwritable out": (["train", "--data", str(tiny_data), "--mode", "scratch", "--out", str(text / "run")],
                           "cannot create the output folder"),
        "broken photo from a worker": (["train", "--data", "BROKEN", "--mode", "scratch", "--workers", "1", *QUICK],
                                       "remove or replace that file"),
        "unknown arch": (["train", "--data", str(tiny_data), "--arch", "efficentnet_b0"],
                         "unknown architecture 'efficentnet_b0': torchvision has no classification network of that "
                         "name; did you mean efficientnet_b0"),
        "a size the network cannot take": (["train", "--data", str(tiny_data), "--arch", "vit_b_16", "--image-size",
                                            "160"], "vit_b_16 takes 224 x 224 photos only (got 160)"),
        "bad number": (["train", "--lr", "fast"], "invalid float value"),
        "bad epochs": (["train", "--data", str(tiny_data), "--epochs", "0"], "epochs must add up to at least 1"),
        "bad device": (["train", "--data", str(tiny_data), "--device", "tpu"], "unknown device"),
        "views without output-layer epochs": (["train", "--data", str(tiny_data), "--head-views", "2"],
                                              "give --head-epochs N too"),
        "negative views": (["train", "--data", str(tiny_data), "--head-views", "-1"],
                           "augmented views must be 0 or more"),
        "views from scratch": (["train", "--data", str(tiny_data), "--mode", "scratch", "--head-views", "2"],
                               "fine-tuning only"),
        "no command": ([], "required"),
    }


@pytest.mark.parametrize("case", ["missing folder", "not an ImageFolder tree", "unreadable checkpoint",
                                  "not an image", "offline download", "offline weights", "missing weights file",
                                  "unwritable out", "broken photo from a worker",
                                  "unknown arch", "a size the network cannot take",
                                  "bad number", "bad epochs", "bad device",
                                  "views without output-layer epochs", "negative views", "views from scratch",
                                  "no command"])
def test_bad_input_exits_2_with_one_error_line(case, tiny_data, trained_run, tmp_path, monkeypatch, capsys):
    offline(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the default runs/ folder goes here, not into the checkout
    argv, words = bad_inputs(tiny_data, tmp_path)[case]
    if "BROKEN" in argv:
        broken = write_tiny_imagefolder(tmp_path / "broken", {"train": 2, "test": 1})
        (broken / "train" / "red" / "001.png").write_bytes(b"not a png")
    substitutes = {"CHECKPOINT": str(trained_run[1] / "checkpoint.pt"), "BROKEN": str(tmp_path / "broken")}
    argv = [substitutes.get(a, a) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        code = e.code
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()  # a run that got going may have said what it loaded first
    assert code == 2
    assert lines[-1].startswith("error: ") and words in lines[-1], err
    assert [line for line in lines if "error" in line.lower()] == lines[-1:] and "Traceback" not in err


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ftcore", "train", "--data", str(tmp_path / "nope")],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: data folder") and len(proc.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written for a run that could not start


def test_head_views_reach_the_config_and_override_the_preset(tiny_data):
    from ftcore.cli.args import config_from_args
    from ftcore.cli.main import build_parser

    def config(*flags: str):
        args = build_parser().parse_args(["train", "--data", str(tiny_data), *flags])
        return config_from_args(args, args.mode)

    assert (config("--preset", "best").head_views, config("--preset", "quick").head_views) == (2, 0)
    assert config("--preset", "quick", "--head-views", "5").head_views == 5
    assert config("--preset", "best", "--head-views", "0").head_views == 0  # 0 overrides the preset's 2
    book_plus = config("--head-epochs", "3", "--head-views", "1")  # the book recipe plus both
    assert (book_plus.head_epochs, book_plus.head_views, book_plus.epochs) == (3, 1, 5)
    args = build_parser().parse_args(["compare", "--data", str(tiny_data), "--preset", "best", "--head-views", "3"])
    assert (config_from_args(args, "finetune").head_views, config_from_args(args, "scratch").head_views) == (3, 0)
