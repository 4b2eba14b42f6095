"""Faults during training: divergence, Stop, running out of memory, leaving or refreshing the page, a crash."""

from __future__ import annotations

import io
import json
import math
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import REPO, set_small_scratch_run
from ftcore.config import recipe
from ftcore.records import BatchEnded
from ftcore.runs import folder as runlog
from ftcore.runs import worker
from ftcore.runs.process import ProcessJob

HOME = REPO / "streamlit_app.py"
TRAIN, PREDICT = "app_pages/train.py", "app_pages/predict.py"
DIVERGED = re.compile(r"training diverged at epoch (\d+), batch (\d+) \(loss (nan|inf|-inf)\); lower the learning "
                      r"rate and start again")
OUT_OF_MEMORY = ("out of memory on cpu while training at batch size 8 and image size 32; choose a smaller batch size "
                 "or image size and start again")


def app(page: str | None = None, query: dict | None = None, **state) -> AppTest:
    """The app on `page`; with `query`, through Home first, as a browser loading that URL would run it
    (AppTest runs a page switched to before the first run without the entry script)."""
    at = AppTest.from_file(str(HOME), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    if query is not None:
        at.query_params.update(query)
        checked(at.run())
    if page is not None:
        at.switch_page(page)
    return checked(at.run())


def checked(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start_from_the_page(at: AppTest, epochs: int) -> ProcessJob:
    """Set a small scratch run on the Train page and press Start; returns the job it started."""
    set_small_scratch_run(at, epochs)
    button(at, "Start").click().run().run()  # the second run: the rerun that Start asks for
    checked(at)
    return at.session_state["job"]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def png(color) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), color, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def failing_fit(error: BaseException, times: int = 1):
    """worker.fit, except that the first `times` runs raise `error` right after their first batch."""
    real_fit = worker.fit
    left = [times]

    def fit(config, callback=None, stop=None, *args, **kwargs):
        if left[0] <= 0:
            return real_fit(config, callback, stop, *args, **kwargs)
        left[0] -= 1

        def on_event(event):
            callback(event)
            if isinstance(event, BatchEnded):
                raise error

        return real_fit(config, on_event, stop)

    return fit


def ran_here(config, folder, monkeypatch, error: BaseException) -> ProcessJob:
    """A run whose worker runs in this process, its `fit` raising `error` after the first batch; returns the server's
    job reading the run's folder."""
    runlog.write_request(folder, config)
    monkeypatch.setattr(worker, "fit", failing_fit(error))
    assert worker.run(folder) == 1  # the child's side: it reports, it does not crash
    return ProcessJob(config, folder.parent, folder.name)


# --------------------------------------------------------------------------------------------------
# Divergence.


def test_divergence_stops_the_run_names_epoch_and_batch_and_keeps_the_history(tiny_data, tmp_path):
    config = recipe("scratch", data=str(tiny_data), lr=1000.0, epochs=3, batch_size=8, image_size=32)
    job = ProcessJob(config, tmp_path / "runs").start()
    assert job.join(timeout=120)
    snap = job.snapshot()
    match = DIVERGED.fullmatch(snap.error)
    assert snap.status == "failed" and match and not snap.has_model
    epoch, batch = int(match.group(1)), int(match.group(2))
    assert len(snap.batches) == (epoch - 1) * snap.steps_per_epoch + batch - 1 > 0  # every batch before it
    assert all(math.isfinite(b.loss) for b in snap.batches) and len(snap.epochs) == epoch - 1
    assert not (job.folder / "checkpoint.pt").exists()  # nothing to reuse is saved

    at = app(TRAIN, data_root=str(tiny_data), job=job)
    assert snap.error in [e.value for e in at.error]
    epochs_chart, batches_chart = charts(at)[:2]
    assert len(batches_chart["data"][0]["x"]) == len(snap.batches)  # the history so far, plotted
    assert sum(len(trace["x"]) for trace in epochs_chart["data"] if trace.get("name") == "train loss") == epoch - 1
    assert not button(at, "Start").disabled and at.session_state["runs"] == []


# --------------------------------------------------------------------------------------------------
# Stop.


def test_stop_ends_within_a_batch_and_the_run_is_usable_on_predict(tiny_data):
    at = app(TRAIN, data_root=str(tiny_data))
    job = start_from_the_page(at, epochs=50)
    wait_until(lambda: len(job.snapshot().batches) >= 2)
    button(at, "Stop").click().run()
    stopped_at = len(job.snapshot().batches)
    assert job.join(timeout=60)
    snap = job.snapshot()
    assert snap.status == "stopped" and stopped_at <= len(snap.batches) <= stopped_at + 1
    checked(at.run())
    (run,) = at.session_state["runs"]
    assert run.id == job.id and run.history.stopped and len(run.history.batches) == len(snap.batches)
    assert (run.path / "checkpoint.pt").is_file()  # kept on disk as well
    at.switch_page(PREDICT).run()
    at.file_uploader[0].upload("red.png", png((220, 30, 30)), "image/png").run()
    checked(at)
    (chart,) = charts(at)
    assert sorted(chart["data"][0]["y"]) == ["blue", "red"] and sum(chart["data"][0]["x"]) == pytest.approx(1)


# --------------------------------------------------------------------------------------------------
# A runs folder this machine cannot write.


def test_a_runs_folder_that_cannot_be_written_is_said_at_start_naming_it_and_the_machine(tiny_data, tmp_path,
                                                                                      monkeypatch):
    import socket

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FTCORE_RUNS_DIR", str(blocker / "runs"))  # no folder can be made under a file (root too)
    at = app(TRAIN, data_root=str(tiny_data))
    at.select_slider(key="batch").set_value(8).run()
    at.button(key="start").click().run()
    assert not at.exception
    message = at.error[-1].value
    assert message.startswith(f"the run's folder {blocker / 'runs'}/") and f"cannot be written on " \
        f"{socket.gethostname()} (Not a directory); point $FTCORE_RUNS_DIR" in message, message
    assert "job" not in at.session_state  # nothing queued, nothing written


# --------------------------------------------------------------------------------------------------
# Out of memory.


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 1073741824 bytes."),  # what PyTorch 2.14 raises when the CPU runs out
    MemoryError(),
], ids=["torch", "cpu-allocator", "python"])
def test_out_of_memory_suggests_a_smaller_batch_or_image(error, tiny_data, tmp_path, monkeypatch):
    job = ran_here(recipe("scratch", data=str(tiny_data), batch_size=8, image_size=32), tmp_path / "runs" / "r",
                   monkeypatch, error)
    snap = job.snapshot()
    assert (snap.status, snap.error, snap.has_model) == ("failed", OUT_OF_MEMORY, False)
    assert len(snap.batches) == 1  # what it did before memory ran out is still shown


def test_after_running_out_of_memory_the_app_keeps_working(tiny_data, tmp_path, monkeypatch):
    config = recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=64)
    job = ran_here(config, tmp_path / "runs" / "oom-run", monkeypatch, torch.OutOfMemoryError("CUDA out of memory"))
    at = app(TRAIN, data_root=str(tiny_data), job=job)
    assert any(e.value.startswith("out of memory on cpu while training at batch size 8 and image size 64; choose a "
                                  "smaller batch size or image size") for e in at.error)
    assert not button(at, "Start").disabled
    second = start_from_the_page(at, epochs=1)  # the same settings again: this time memory suffices
    assert second is not job and second.join(timeout=120)
    checked(at.run())
    assert second.snapshot().status == "finished" and [r.id for r in at.session_state["runs"]] == [second.id]


# --------------------------------------------------------------------------------------------------
# Leaving the page, refreshing the browser.


def progress_text(at: AppTest) -> str:
    """The run's status line: the words of the polite live region under its progress bar."""
    line = next(h.value for h in at.get("html") if 'role="status"' in h.value)
    return re.sub(r"<[^>]+>", "", line)


def test_leaving_the_train_page_keeps_the_run_going_and_coming_back_shows_it(tiny_data):
    at = app(TRAIN, data_root=str(tiny_data))
    job = start_from_the_page(at, epochs=50)
    wait_until(lambda: len(job.snapshot().batches) >= 1)
    at.switch_page(PREDICT).run()
    before = len(job.snapshot().batches)
    wait_until(lambda: len(job.snapshot().batches) > before)  # it trains while the tab is elsewhere
    at.switch_page(TRAIN).run()
    checked(at)
    # its status line, which changes at most every few seconds (a screen reader reads each change)
    assert at.session_state["job"] is job and re.match(r"(starting|running): epoch \d+/50", progress_text(at))
    assert not button(at, "Stop").disabled
    job.stop()
    assert job.join(timeout=60)


def test_a_refreshed_tab_finds_its_running_job_again(tiny_data):
    first = app(TRAIN, query={}, data_root=str(tiny_data))
    tab = first.query_params["tab"]
    assert re.fullmatch(r"[0-9a-f]{32}", tab)
    job = start_from_the_page(first, epochs=50)
    wait_until(lambda: len(job.snapshot().batches) >= 1)
    refreshed = app(TRAIN, query={"tab": tab})  # a new session, same URL
    assert refreshed.session_state["job"] is job and refreshed.session_state["data_root"] == str(tiny_data)
    assert re.match(r"(starting|running): epoch \d+/50", progress_text(refreshed))
    assert refreshed.query_params["tab"] == tab
    stranger = app(TRAIN, query={"tab": "0" * 32})  # an id this server never gave out: a tab of its own
    assert "job" not in stranger.session_state and stranger.query_params["tab"] != tab
    button(refreshed, "Stop").click().run()
    assert job.join(timeout=60) and job.snapshot().status == "stopped"


# --------------------------------------------------------------------------------------------------
# A crashed run.


@pytest.mark.parametrize("error, message", [
    (ZeroDivisionError("division by zero"), "the run failed unexpectedly (ZeroDivisionError: division by zero); "),
    (SystemExit(3), "the run failed unexpectedly (SystemExit: 3); "),
], ids=["bug", "exit"])
def test_a_crashed_run_is_reported_on_the_page(error, message, tiny_data, tmp_path, monkeypatch):
    job = ran_here(recipe("scratch", data=str(tiny_data), batch_size=8, image_size=32), tmp_path / "runs" / "r",
                   monkeypatch, error)
    message += f"{job.folder / 'worker.log'} has the details"  # the traceback is there
    assert (job.snapshot().status, job.snapshot().error) == ("failed", message)
    at = app(TRAIN, data_root=str(tiny_data), job=job)
    assert message in [e.value for e in at.error] and not button(at, "Start").disabled
