"""Runs that only their owner holds: a tab lists, steers, stops and resumes its own runs only; where the server
shares runs, another tab's interrupted run goes on as a new run of one's own; an ask pending at Stop is applied at
the resume, never dropped; and run files follow the umask, private on a server others reach."""

from __future__ import annotations

import os
import stat

import pytest
from streamlit.testing.v1 import AppTest

from app import jobs
from conftest import REPO, set_small_scratch_run, wait_until
from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.records import EpochRecord, History, Status, SteerRecord
from ftcore.runs.folder import EVENTS_FILE, read_owner
from ftcore.runs.process import ProcessJob
from ftcore.runs.steering import FolderSteering, Outcome, ask, ask_text, read_asks, read_state
from ftcore.train.steering import Rates

HOME = REPO / "streamlit_app.py"
TRAIN = "app_pages/train.py"
TIMEOUT = 240


def tab_on_train(tiny_data) -> AppTest:
    """A new browser tab on the Train page, on the tiny photos."""
    at = AppTest.from_file(str(HOME), default_timeout=120)
    at.session_state["data_root"] = str(tiny_data)
    at.run()
    at.switch_page(TRAIN).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def expander_labels(at: AppTest) -> list[str]:
    return [e.label for e in at.expander]


def test_a_tab_cannot_list_steer_stop_or_resume_another_tabs_run(tiny_data, monkeypatch):
    owner, other = tab_on_train(tiny_data), tab_on_train(tiny_data)
    set_small_scratch_run(owner, 40)
    owner.button(key="start").click().run()
    job = owner.session_state["job"]
    wait_until(lambda: job.snapshot().epochs, "an epoch, saved to resume from", TIMEOUT)
    other.run()
    assert other.button(key="stop").disabled and "job" not in other.session_state  # nothing of its own to stop
    owner.button(key="stop").click().run()
    assert job.join(60) and job.snapshot().status == Status.STOPPED and job.snapshot().resumable
    owner.run()
    other.run()
    assert owner.button(key="live-resume").label.startswith("Resume from epoch ")  # its own run, resumable
    assert not any(label.startswith(("Interrupted runs", "Saved runs")) for label in expander_labels(other))
    other_tab = other.session_state["tab"]
    monkeypatch.setenv(jobs.SHARE_ENV, "1")  # where the server shares runs, the other tab would list it
    other.run()
    assert "Interrupted runs on this server (1)" in expander_labels(other)
    monkeypatch.delenv(jobs.SHARE_ENV)
    assert other.session_state["tab"] == other_tab
    events = (job.folder / EVENTS_FILE).read_bytes()

    def as_other(action):  # what the other tab's session would call
        monkeypatch.setattr(jobs.tab, "owner", lambda: "someone-else")
        try:
            return action()
        finally:
            monkeypatch.undo()

    with pytest.raises(FtcoreError, match="is not this tab's, and this server does not share runs"):
        as_other(lambda: jobs.resume_job(job.folder))
    with pytest.raises(FtcoreError, match="is not this tab's; only the tab that started a run steers it"):
        ask(job.folder, lr=1e-3, owner="someone-else")
    assert (job.folder / EVENTS_FILE).read_bytes() == events and read_owner(job.folder) == job.owner


def test_where_runs_are_shared_another_tabs_run_goes_on_as_a_new_run_of_ones_own(tiny_data, tmp_path, monkeypatch):
    config = recipe("scratch", data=str(tiny_data), epochs=40, batch_size=8, image_size=32, precision="fp32")
    job = ProcessJob(config, jobs.runs_dir(), owner="the-owner").start()
    wait_until(lambda: len(job.snapshot().epochs) >= 1, "an epoch", TIMEOUT)
    job.stop()
    assert job.join(60) and job.snapshot().resumable
    before = {name: (job.folder / name).read_bytes() for name in ("request.json", EVENTS_FILE, "resume.pt")}
    monkeypatch.setenv(jobs.SHARE_ENV, "1")
    other = tab_on_train(tiny_data)
    assert "Interrupted runs on this server (1)" in expander_labels(other)
    other.button(key="resume-interrupted").click().run()
    assert not other.exception, [e.message for e in other.exception]
    mine = other.session_state["job"]
    assert mine.folder != job.folder and read_owner(mine.folder) == mine.owner != "the-owner"
    mine.stop()
    assert mine.join(120)
    assert {name: (job.folder / name).read_bytes() for name in before} == before  # the original keeps its record
    assert read_owner(job.folder) == "the-owner"


def history_to(epoch: float) -> History:
    return History(epochs=[EpochRecord(epoch=epoch, train_loss=0.5, train_acc=0.8, test_acc=0.8, examples=8,
                                       seconds=1.0)])


def test_an_ask_pending_at_stop_is_applied_where_the_resumed_run_would_have_taken_it(tmp_path):
    config = recipe("finetune", data="d")
    run = FolderSteering(tmp_path, config)
    now = Rates(5e-5, 5e-4)
    first, _, _ = ask(tmp_path, lr=2e-3)
    assert run.poll(1.25, now) == first.rates  # applied in epoch 2, after the state saved at epoch 1
    run.applied(SteerRecord(epoch=1.25, lr=2e-3, head_lr=2e-2))
    run.poll(1.5, first.rates)  # the last batch it starts before Stop
    second, _, _ = ask(tmp_path, freeze=True)  # asked during that batch
    run.close(finished=False)  # stopped: the ask is still unread
    assert ask_text(second, read_state(tmp_path), running=False) == (
        "Ask 2, copied layers frozen, output layer 2e-2: not applied yet: the run stopped before its next batch, "
        "and Resume applies it")

    resumed = FolderSteering(tmp_path, config, history_to(1.0))  # goes on after epoch 1, at the rates of then
    assert resumed.poll(1.0, now) is None
    assert resumed.poll(1.25, now) == first.rates  # the change the resume went back before, where it was
    resumed.applied(SteerRecord(epoch=1.25, lr=2e-3, head_lr=2e-2))
    assert resumed.poll(1.5, first.rates) is None  # the batch it had trained when it stopped
    assert resumed.poll(1.75, first.rates) == second.rates  # the next one: where the pending ask applies
    resumed.applied(SteerRecord(epoch=1.75, lr=0.0, head_lr=2e-2))
    answers = read_state(tmp_path)
    assert [(a.seq, a.outcome, a.epoch) for a in answers.answers] == [(1, Outcome.APPLIED, 1.25),
                                                                       (2, Outcome.APPLIED, 1.75)]


def test_an_ask_a_finished_run_never_reached_is_answered_as_not_applied(tmp_path):
    run = FolderSteering(tmp_path, recipe("finetune", data="d"))
    asked, _, _ = ask(tmp_path, lr=2e-3)
    run.close(finished=True)
    answer = read_state(tmp_path).answer(asked.seq)
    assert (answer.outcome, answer.text()) == (Outcome.NOT_APPLIED, "not applied: the run finished before its next "
                                                                    "batch")
    assert read_asks(tmp_path)[0] == [asked]


def test_a_runs_files_follow_a_private_umask(tiny_data, tmp_path):
    previous = os.umask(0o077)
    try:
        config = recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=32, precision="fp32")
        job = ProcessJob(config, tmp_path / "runs").start()  # forked: from a fork server started under umask 022
        assert job.join(TIMEOUT) and job.snapshot().status == Status.FINISHED
    finally:
        os.umask(previous)
    made = [job.folder, *job.folder.rglob("*")]
    assert {p.name for p in made} >= {job.id, "checkpoint.pt", "metrics.json", "events.jsonl", "request.json"}
    readable = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in made if p.stat().st_mode & 0o077}
    assert readable == {}  # nothing another account can read, write or enter


def test_a_server_that_others_reach_keeps_its_files_private(tiny_data, monkeypatch):
    from app import paths

    previous = os.umask(0o022)
    try:
        monkeypatch.setattr(paths, "served_on_network", lambda: True)
        monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tiny_data.parent))
        AppTest.from_file(str(HOME), default_timeout=120).run()
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(previous)
