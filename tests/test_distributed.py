"""torchrun: two CPU processes (gloo) train one model and match a single-process run in shape, learn, and take a
change of learning rates at the same batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO
from ftcore.cli.main import main

TRAIN_ARGS = ["--mode", "scratch", "--arch", "resnet18", "--epochs", "4", "--batch-size", "8", "--image-size", "32",
              "--lr", "5e-4", "--precision", "fp32"]


def run_cli(prefix: list[str], tiny_data, out, *more: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([*prefix, "-m", "ftcore", "train", "--data", str(tiny_data), *TRAIN_ARGS, "--out", str(out),
                           *more], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def test_two_processes_match_one_in_shape_and_learn(tiny_data, tmp_path, capsys):
    change = {"epoch": 1.5, "lr": 2e-4, "head_lr": 1e-3}  # the third of epoch 2's four steps: split into two groups
    (tmp_path / "steering.json").write_text(json.dumps([change]))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = run_cli(torchrun, tiny_data, tmp_path / "ddp", "--steering", str(tmp_path / "steering.json"))
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    # the single process is this one
    assert main(["train", "--data", str(tiny_data), *TRAIN_ARGS, "--out", str(tmp_path / "single"),
                 "--steering", str(tmp_path / "steering.json")]) == 0
    capsys.readouterr()

    two, one = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("ddp", "single"))
    assert two["classes"] == one["classes"] == ["blue", "red"]
    assert two["history"]["devices"] == ["cpu", "cpu"] and one["history"]["devices"] == ["cpu"]
    epochs2, epochs1 = two["history"]["epochs"], one["history"]["epochs"]
    assert [e["epoch"] for e in epochs2] == [e["epoch"] for e in epochs1] == [1, 2, 3, 4]
    assert all(e["examples"] == 32 for e in epochs2)  # both ranks' shares, summed: the whole training set
    assert epochs2[-1]["train_loss"] < epochs2[0]["train_loss"]  # it learns
    assert epochs2[-1]["test_acc"] >= 0.75
    # rank 0 read the change and every rank took it at the same batch, as the single process did
    assert two["history"]["steering"] == one["history"]["steering"] == [change]
    assert ddp.stderr.count("steered at epoch 1.50: lr 2e-4, output layer 1e-3") == 1
    # rank 0 alone speaks and writes: one line per epoch, one checkpoint
    assert ddp.stdout.count("epoch 1/4") == 1
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["checkpoint.pt", "metrics.json"]  # a replay:
    # not steered live, so no steered.json
