"""Runs in child processes: the queue, a killed child, cancelling, resuming, and torchrun as the child.

The server side here is this test process: it launches ProcessJobs through a LocalBackend exactly as the app
does, and must outlive every child it starts."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from conftest import open_app, start_cli_training
from ftcore.cli.main import main
from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.runs import folder as runlog
from ftcore.runs.folder import STATE_FILE
from ftcore.runs.local import LocalBackend
from ftcore.runs.process import ProcessJob
from ftcore.train import memory

TIMEOUT = 240


def tiny_config(data, epochs: int = 2, **overrides):
    """A small scratch run (no weights needed): ResNet-18 at 32 px on the tiny photos."""
    return recipe("scratch", "resnet18", data=str(data), epochs=epochs, batch_size=8, image_size=32,
                  precision="fp32", **overrides)


def metrics(job: ProcessJob) -> dict:
    return json.loads((job.folder / "metrics.json").read_text())


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def epochs_logged(job: ProcessJob) -> int:
    events, _ = runlog.read_events(job.folder)
    return sum(e["type"] == "epoch" for e in events)


def test_two_runs_started_at_once_train_one_after_the_other_in_order(tiny_data, tmp_path):
    scheduler = LocalBackend(slots=1, check_memory=False)
    first = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start(scheduler)
    second = ProcessJob(tiny_config(tiny_data, seed=1), tmp_path / "runs").start(scheduler)
    assert scheduler._queue.place(second) in (1, 2)
    seen = []  # (first's status, second's status) at each poll
    while not (first.snapshot().done and second.snapshot().done):
        seen.append((first.snapshot().status, second.snapshot().status))
        assert len(seen) < TIMEOUT * 20, "the runs did not end"
        time.sleep(0.05)
    active = ("starting", "running")
    assert not any(a in active and b in active for a, b in seen)  # never both at once
    assert any(b == "queued" and a in active for a, b in seen)  # the second waited for the first
    assert second.snapshot().status == "finished" and first.snapshot().status == "finished"
    for job, seed in ((first, 0), (second, 1)):  # nothing lost: each run's own config, curves and checkpoint
        saved = metrics(job)
        assert saved["config"]["seed"] == seed and len(saved["history"]["epochs"]) == 2
        assert (job.folder / "checkpoint.pt").is_file() and not (job.folder / STATE_FILE).exists()
        assert [e.epoch for e in job.snapshot().epochs] == [1.0, 2.0]


def test_a_queued_run_says_its_place_and_can_be_cancelled(tiny_data, tmp_path):
    scheduler = LocalBackend(slots=1, check_memory=False)
    first = ProcessJob(tiny_config(tiny_data, epochs=4), tmp_path / "runs").start(scheduler)
    second = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start(scheduler)
    third = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start(scheduler)
    wait_until(lambda: first.snapshot().status in ("starting", "running"), "the first run to start")
    assert second.snapshot().status_line().startswith("queued: next in line; starts when one of the 1 run(s)")
    assert third.snapshot().status_line().startswith("queued: 2nd in line")
    second.stop()  # Stop on a queued run cancels it
    snap = second.snapshot()
    assert snap.status == "cancelled" and snap.done and not snap.has_model
    assert scheduler._queue.place(third) == 1
    assert first.join(TIMEOUT) and third.join(TIMEOUT)
    assert first.snapshot().status == third.snapshot().status == "finished"
    assert not second.folder.exists()  # it never ran, and left nothing behind


def test_a_child_killed_by_the_system_leaves_the_server_and_its_curves(tiny_data, tmp_path):
    job = ProcessJob(tiny_config(tiny_data, epochs=30), tmp_path / "runs").start()
    wait_until(lambda: (job.folder / STATE_FILE).is_file(), "the first saved state")
    os.kill(job._handle.pid, signal.SIGKILL)  # what the kernel's OOM killer does
    assert job.join(30)
    snap = job.snapshot()
    last = [e for e in runlog.read_events(job.folder)[0] if e["type"] == "batch"][-1]
    assert snap.status == "failed" and snap.error == (
        f"the run was killed by the system (probably out of memory) at epoch {last['epoch']}, batch {last['step']}; "
        "its curves up to then are kept")
    assert len(snap.epochs) >= 1 and len(snap.batches) >= 4 and snap.resumable
    assert (job.folder / STATE_FILE).is_file() and (job.folder / runlog.EVENTS_FILE).is_file()
    page = open_app("app_pages/train.py", data_root=str(tiny_data), job=job)  # the page says it, and offers Resume
    assert snap.error in [e.value for e in page.error]
    assert any(b.label.startswith("Resume from epoch ") for b in page.button)


def test_a_run_resumed_after_a_kill_ends_where_an_uninterrupted_run_does(tiny_data, tmp_path):
    config = tiny_config(tiny_data, epochs=3)
    whole = ProcessJob(config, tmp_path / "runs").start()
    assert whole.join(TIMEOUT) and whole.snapshot().status == "finished"

    cut = ProcessJob(config, tmp_path / "runs").start()
    wait_until(lambda: (cut.folder / STATE_FILE).is_file(), "the first saved state")
    os.kill(cut._handle.pid, signal.SIGKILL)
    assert cut.join(30) and cut.snapshot().status == "failed" and cut.snapshot().resumable
    again = ProcessJob.resumed(cut.folder).start()
    assert again.join(TIMEOUT)
    snap = again.snapshot()
    assert snap.status == "finished" and [e.epoch for e in snap.epochs] == [float(e) for e in range(1, 4)]

    expected, resumed = metrics(whole)["history"]["epochs"], metrics(again)["history"]["epochs"]
    for a, b in zip(expected, resumed, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5) and a["test_acc"] == b["test_acc"]
    w1 = torch.load(whole.folder / "checkpoint.pt", weights_only=True)["state_dict"]
    w2 = torch.load(again.folder / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(w1[k].float(), w2[k].float(), atol=1e-5) for k in w1)


def test_stop_ends_the_run_after_its_batch_and_keeps_the_model(tiny_data, tmp_path):
    job = ProcessJob(tiny_config(tiny_data, epochs=5), tmp_path / "runs").start()  # stopped long before its end
    wait_until(lambda: epochs_logged(job) >= 1, "the first epoch")
    job.stop()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.has_model and snap.resumable
    assert job.to_run().history.stopped and job.to_run().trained.model is not None
    again = ProcessJob.resumed(job.folder).start()  # the stopped model stays usable until the new one replaces it
    assert not again.snapshot().has_model and (job.folder / "checkpoint.pt").is_file()
    assert again.join(TIMEOUT)
    snap = again.snapshot()
    assert snap.status == "finished" and snap.has_model and [e.epoch for e in snap.epochs] == \
        [float(e) for e in range(1, 6)]
    assert not again.to_run().history.stopped and len(again.to_run().history.epochs) == 5


def test_a_run_too_big_for_the_machine_is_refused_naming_what_to_lower(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "total_bytes", lambda: 2 * 1024**3)
    config = recipe("scratch", "resnet50", data=str(tiny_data), micro_batch=128, batch_size=128)
    with pytest.raises(FtcoreError, match=r"^this run needs about [\d.]+ GB \(resnet50, batch 128 in one pass at 224 "
                       r"px\) but this machine has 2\.0 GB; lower the batch size, the photos per forward pass"):
        ProcessJob(config, tmp_path / "runs").start(LocalBackend(slots=1))
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_torchrun_runs_as_the_child_with_two_cpu_processes(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FTCORE_WORKER_PROCS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = ProcessJob(tiny_config(tiny_data), tmp_path / "runs").start(LocalBackend(slots=1, check_memory=False))
    assert job.join(TIMEOUT), (job.folder / runlog.LOG_FILE).read_text()[-2000:]
    snap = job.snapshot()
    assert snap.status == "finished", (job.folder / runlog.LOG_FILE).read_text()[-2000:]
    assert metrics(job)["history"]["devices"] == ["cpu", "cpu"]
    assert all(e["examples"] == 32 for e in metrics(job)["history"]["epochs"])  # both shares: every photo


def test_the_cli_resumes_an_interrupted_run(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli-run"
    proc = start_cli_training(tiny_data, out, epochs=4)
    wait_until(lambda: (out / STATE_FILE).is_file(), "the first saved state")
    proc.kill()
    proc.communicate()
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0  # in this process: the interrupted one was a real one
    resumed = capsys.readouterr()
    assert resumed.err.startswith(f"resuming {out} after epoch "), resumed.err
    assert resumed.out.splitlines()[-3].startswith("epoch 4/4: ")
    assert len(json.loads((out / "metrics.json").read_text())["history"]["epochs"]) == 4
    assert not (out / STATE_FILE).exists()
