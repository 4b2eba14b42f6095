"""A run's process (runs.child): forked from the standard library's fork server, the same run as a fresh process,
in a process group of its own, with the environment the server has when the run starts."""

from __future__ import annotations

import json
import os

import pytest

from conftest import wait_until
from ftcore.config import recipe
from ftcore.runs import child
from ftcore.runs.process import ProcessJob

pytestmark = pytest.mark.skipif(child.FORKSERVER is None, reason="runs are forked where multiprocessing has a "
                                                                  "fork server")
TIMEOUT = 120


def tiny_config(data, mode: str = "scratch", epochs: int = 2, **overrides):
    return recipe(mode, "resnet18", data=str(data), epochs=epochs, batch_size=8, image_size=32, precision="fp32",
                  **overrides)


def history(job: ProcessJob) -> list[dict]:
    return json.loads((job.folder / "metrics.json").read_text())["history"]["epochs"]


def test_a_forked_run_is_the_run_a_fresh_process_trains(tiny_data, tmp_path, monkeypatch):
    forked = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start()
    assert forked._handle.forked
    wait_until(lambda: not forked._handle.running() or os.getpgid(forked._handle.pid) == forked._handle.pid,
               "the run to lead a process group of its own", TIMEOUT)
    assert forked.join(TIMEOUT) and forked.snapshot().status == "finished"
    assert (forked.folder / "worker.log").is_file()  # its output, in its folder

    monkeypatch.setattr(child, "FORKSERVER", None)  # as on a system without a fork server
    fresh = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start()
    assert not fresh._handle.forked
    assert fresh.join(TIMEOUT) and fresh.snapshot().status == "finished"
    for a, b in zip(history(forked), history(fresh), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6) and a["test_acc"] == b["test_acc"]


def test_a_forked_run_gets_the_environment_the_server_has_when_it_starts(tiny_data, random_resnet18_file,
                                                                         tmp_path, monkeypatch):
    child.warm()  # started before the weights were named
    monkeypatch.setenv("FTCORE_WEIGHTS", str(random_resnet18_file))
    job = ProcessJob(tiny_config(tiny_data, mode="finetune"), tmp_path / "runs").start()
    assert job._handle.forked
    assert job.join(TIMEOUT) and job.snapshot().status == "finished", job.snapshot().status_line()
    saved = json.loads((job.folder / "metrics.json").read_text())
    assert str(random_resnet18_file) in json.dumps(saved)  # the weights it was given, found through the variable
