"""Runs forked from the warm fork server (runs.forkserver): the same run as a fresh process, with the environment
of the moment, and a fresh process whenever the fork server cannot serve."""

from __future__ import annotations

import json
import os
import signal

import pytest

from conftest import wait_until
from ftcore.config import recipe
from ftcore.runs import forkserver
from ftcore.runs.process import ProcessJob

pytestmark = pytest.mark.skipif(not forkserver.supported(), reason="runs are forked only on Linux")
TIMEOUT = 120


def tiny_config(data, mode: str = "scratch", epochs: int = 2, **overrides):
    return recipe(mode, "resnet18", data=str(data), epochs=epochs, batch_size=8, image_size=32, precision="fp32",
                  **overrides)


def history(job: ProcessJob) -> list[dict]:
    return json.loads((job.folder / "metrics.json").read_text())["history"]["epochs"]


def warm_and_ready() -> None:
    forkserver.warm()
    wait_until(forkserver.ready, "the fork server's imports", TIMEOUT)


def test_a_run_starts_fresh_while_the_fork_server_is_gone_and_its_replacement_forks_the_same_run(tiny_data,
                                                                                               tmp_path):
    warm_and_ready()
    os.kill(forkserver._SERVER.pid, signal.SIGKILL)
    wait_until(lambda: not forkserver.ready(), "the fork server's end")
    fresh = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start()
    assert fresh._handle.proc is not None  # a fresh process; a new fork server is importing meanwhile
    assert fresh.join(TIMEOUT) and fresh.snapshot().status == "finished"

    warm_and_ready()  # the new one forks the next run
    forked = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start()
    assert forked._handle.proc is None  # forked, followed through its pidfd
    assert os.getpgid(forked._handle.pid) == forked._handle.pid or not forked._handle.running()  # its own group
    assert forked.join(TIMEOUT) and forked.snapshot().status == "finished"
    for a, b in zip(history(forked), history(fresh), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6) and a["test_acc"] == b["test_acc"]


def test_a_forked_run_gets_the_environment_the_server_has_when_it_starts(tiny_data, random_resnet18_file,
                                                                         tmp_path, monkeypatch):
    warm_and_ready()  # started before the weights were named
    monkeypatch.setenv("FTCORE_WEIGHTS", str(random_resnet18_file))
    job = ProcessJob(tiny_config(tiny_data, mode="finetune"), tmp_path / "runs").start()
    assert job._handle.proc is None
    assert job.join(TIMEOUT) and job.snapshot().status == "finished", job.snapshot().status_line()
    saved = json.loads((job.folder / "metrics.json").read_text())
    assert str(random_resnet18_file) in json.dumps(saved)  # the weights it was given, found through the variable
