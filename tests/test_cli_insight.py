"""The insight commands: `evaluate`, `export`, `sweep`, and the book's exercises as train/compare flags."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

from conftest import write_tiny_imagefolder
from ftcore.cli.main import main
from ftcore.config import recipe
from ftcore.insight import export
from ftcore.insight.evaluation import evaluate_photos
from ftcore.models.checkpoint import load_checkpoint
from ftcore.runs.saved import save_run
from ftcore.train.loop import fit

QUICK = ["--epochs", "1", "--batch-size", "8", "--image-size", "32"]


@pytest.fixture(scope="module")
def checkpoint_file(tiny_data, tmp_path_factory):
    result = fit(recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=32))
    path, _ = save_run(result, tmp_path_factory.mktemp("cli-insight"))
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_prints_the_table_accuracy_matrix_and_worst_photos(checkpoint_file, tiny_data, capsys):
    code, out, _ = run(["evaluate", "--checkpoint", str(checkpoint_file), "--data", str(tiny_data), "--top", "3"],
                       capsys)
    loaded = load_checkpoint(checkpoint_file)
    expected = evaluate_photos(loaded.model, loaded.classes, loaded.eval_transform, str(tiny_data))
    assert code == 0
    assert out.splitlines()[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert (f"accuracy {expected.accuracy:.3f}, balanced accuracy {expected.balanced_accuracy:.3f} (the mean of "
            "the classes' recalls) on 16 test photos") in out
    assert f"accuracy {loaded.history.final().test_acc:.3f}" in out  # what training measured
    assert "confusion matrix (rows: true class, columns: predicted class)" in out
    assert len(re.findall(r"^\S+\.png: true (blue|red), predicted (blue|red) p [01]\.\d{3}", out, re.M)) == 3


def test_evaluate_json_defaults_to_the_runs_own_data(checkpoint_file, capsys):
    code, out, _ = run(["evaluate", "--checkpoint", str(checkpoint_file), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["photos"] == 16 and report["classes"] == ["blue", "red"]
    assert sum(map(sum, report["confusion"]["matrix"])) == 16 and len(report["worst"]) == 8
    assert [m["support"] for m in report["per_class"]] == [8, 8]


def test_export_torchscript_predicts_like_the_checkpoint(checkpoint_file, tmp_path, capsys):
    target = tmp_path / "exported.pt"
    code, out, _ = run(["export", "--checkpoint", str(checkpoint_file), "--out", str(target)], capsys)
    assert code == 0 and out.startswith(f"wrote {target} (torchscript)") and "N x 3 x 32 x 32" in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(target))
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), load_checkpoint(checkpoint_file).model(x),
                                   atol=1e-4, rtol=1e-4)


def test_export_onnx_goes_beside_the_checkpoint_by_default(checkpoint_file, capsys):
    pytest.importorskip("onnx")
    code, out, _ = run(["export", "--checkpoint", str(checkpoint_file), "--format", "onnx"], capsys)
    assert code == 0 and (checkpoint_file.parent / "model.onnx").stat().st_size > 1000


def test_sweep_prints_final_test_accuracy_per_lr_and_survives_divergence(tiny_data, tmp_path, capsys):
    code, out, err = run(["sweep", "--data", str(tiny_data), "--mode", "scratch", "--lrs", "5e-4,1e6", *QUICK,
                          "--out", str(tmp_path / "sweep")], capsys)
    assert code == 0, err
    header, *table = out.splitlines()[-3:]
    assert header.split() == ["lr", "test", "acc"]
    assert re.fullmatch(r"\s+5e-04\s+[01]\.\d{3}", table[0]) and re.fullmatch(r"\s+1e\+06\s+diverged.*", table[1])
    assert (tmp_path / "sweep" / "lr-0.0005" / "checkpoint.pt").is_file()


def test_train_freeze_body_is_stored_and_compare_applies_it_to_fine_tuning_only(tiny_data, random_resnet18_file,
                                                                                   tmp_path, capsys):
    code, _, err = run(["compare", "--data", str(tiny_data), "--weights", str(random_resnet18_file), *QUICK,
                        "--freeze-body", "--out", str(tmp_path / "cmp")], capsys)
    assert code == 0, err
    finetune = json.loads((tmp_path / "cmp" / "finetune" / "metrics.json").read_text())["config"]
    scratch = json.loads((tmp_path / "cmp" / "scratch" / "metrics.json").read_text())["config"]
    assert finetune["freeze_body"] is True and scratch["freeze_body"] is False


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "TINY", "--mode", "scratch", "--freeze-body"],
     "freezing the copied layers needs copied layers; use it with fine-tuning"),
    (["train", "--data", "TINY", "--weights", "WEIGHTS", "--head-init", "imagenet", *QUICK],
     "none of the classes (blue, red) is an ImageNet category"),
    (["train", "--data", "TINY", "--head-init", "hotdog"], "invalid choice"),
    (["sweep", "--data", "TINY", "--lrs", "1e-5,fast"], "learning rate 'fast' is not a number"),
    (["evaluate", "--checkpoint", "CHECKPOINT", "--data", "OTHER"], "but the model was trained on blue, red"),
    (["evaluate", "--checkpoint", "NOWHERE"], "does not exist"),
    (["export", "--checkpoint", "CHECKPOINT", "--format", "tflite"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_error_line(argv, words, tiny_data, random_resnet18_file, checkpoint_file,
                                               tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    other = write_tiny_imagefolder(tmp_path / "other", {"train": 1, "test": 1})
    for split in ("train", "test"):
        (other / split / "red").rename(other / split / "green")
    substitutes = {"TINY": str(tiny_data), "WEIGHTS": str(random_resnet18_file), "CHECKPOINT": str(checkpoint_file),
                   "OTHER": str(other), "NOWHERE": str(tmp_path / "none.pt")}
    code, _, err = run([substitutes.get(a, a) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and words in lines[-1], err
    assert "Traceback" not in err


def test_onnx_export_without_onnx_says_what_to_install(checkpoint_file, monkeypatch, capsys):
    monkeypatch.setattr(export, "onnx_available", lambda: False)
    code, _, err = run(["export", "--checkpoint", str(checkpoint_file), "--format", "onnx"], capsys)
    assert code == 2 and err.startswith("error: ONNX export needs the onnx package; install it")
