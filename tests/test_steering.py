"""Steering a run while it trains: what an ask comes to, the optimiser's groups changed between two batches, a
child process and `train --out` steered through their folders, the change kept when the run resumes, a replay that
matches the steered run, the Train page's live controls, and every error a person can cause."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import threading
import time

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from conftest import open_app, set_small_scratch_run, start_cli_training, wait_until
from ftcore.cli.main import main
from ftcore.config import PRESETS, recipe
from ftcore.errors import FtcoreError
from ftcore.records import StateCaptured, Status, Steered, SteerRecord
from ftcore.runs import folder as runlog
from ftcore.runs import steering
from ftcore.runs.folder import STATE_FILE
from ftcore.runs.process import ProcessJob
from ftcore.runs.saved import Run
from ftcore.runs.steering import (
    FolderSteering,
    Outcome,
    SteerState,
    ask,
    read_asks,
    read_state,
    wait_for_answer,
    write_state,
)
from ftcore.train.loop import fit
from ftcore.train.optim import make_optimizer
from ftcore.train.steering import Rates, Replay, current_rates, read_steering, set_rates, wanted_rates

TIMEOUT = 240


def tiny_config(data, epochs: int = 2, **overrides):
    """A small scratch run (no weights needed): ResNet-18 at 32 px on the tiny photos, one rate for every layer."""
    return recipe("scratch", "resnet18", data=str(data), epochs=epochs, batch_size=8, image_size=32,
                  precision="fp32", **overrides)


# ---- what an ask comes to


def test_an_ask_comes_to_the_rates_a_person_means():
    finetune = recipe("finetune", data="d")  # lr 5e-5, the output layer at 10x
    now = Rates(5e-5, 5e-4)
    assert wanted_rates(finetune, now, 5e-5, lr=2e-3) == Rates(2e-3, 2e-2)  # the output layer keeps its 10x
    assert wanted_rates(finetune, now, 5e-5, head_factor=1) == Rates(5e-5, 5e-5)  # one rate for every layer
    assert wanted_rates(finetune, now, 5e-5, head_factor=3) == Rates(5e-5, 1.5e-4)
    frozen = wanted_rates(finetune, now, 5e-5, freeze=True)
    assert frozen == Rates(0.0, 5e-4)  # the output layer goes on learning
    assert wanted_rates(finetune, frozen, 5e-5, freeze=False) == now  # back to the rate before
    assert wanted_rates(finetune, frozen, 5e-5, lr=1e-4) == Rates(0.0, 1e-3)  # frozen still, at 10x of the new one
    scratch = recipe("scratch", data="d")  # one rate for every layer
    assert wanted_rates(scratch, Rates(5e-4, 5e-4), 5e-4, head_factor=10) == Rates(5e-4, 5e-3)


@pytest.mark.parametrize(("config", "ask_for", "words"), [
    (recipe("finetune", data="d"), {"lr": -1.0}, "the learning rate must be a number above 0 (got -1.0)"),
    (recipe("finetune", data="d"), {"lr": 0.0}, "the learning rate must be a number above 0"),
    (recipe("finetune", data="d"), {"head_factor": 0.0}, "the output layer's factor must be a number above 0"),
    (recipe("finetune", data="d", freeze_body=True), {"freeze": False}, "froze its copied layers from its start"),
    (recipe("finetune", preset="quick", data="d"), {"lr": 1e-3}, "trains the output layer alone"),
])
def test_an_ask_that_cannot_be_is_one_sentence(config, ask_for, words):
    with pytest.raises(FtcoreError, match=words.replace("(", r"\(").replace(")", r"\)")):
        wanted_rates(config, Rates(config.lr, config.head_lr), config.lr, **ask_for)


def test_one_group_for_every_layer_is_split_copied_layers_then_output_layer_and_steps_at_the_new_rates(tiny_data):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2)
    optimizer = make_optimizer(net, tiny_config(tiny_data))  # scratch: the book's one group, at 5e-4
    assert len(optimizer.param_groups) == 1 and current_rates(optimizer) == Rates(5e-4, 5e-4)
    set_rates(optimizer, net.fc.parameters(), Rates(2e-3, 2e-2))
    body, head = optimizer.param_groups
    assert (body["name"], body["lr"], head["name"], head["lr"]) == ("copied layers", 2e-3, "output layer", 2e-2)
    assert [id(p) for p in head["params"]] == [id(p) for p in net.fc.parameters()]
    assert [id(p) for p in body["params"]] == [id(p) for n, p in net.named_parameters() if not n.startswith("fc.")]
    assert head["weight_decay"] == body["weight_decay"] == 1e-3 and head["momentum"] == 0
    # the next step is plain SGD at the new rates: p - lr * (grad + weight_decay * p)
    before = {"conv1": net.conv1.weight.detach().clone(), "fc": net.fc.weight.detach().clone()}
    optimizer.zero_grad()
    net(torch.randn(4, 3, 32, 32)).sum().backward()
    grads = {"conv1": net.conv1.weight.grad.clone(), "fc": net.fc.weight.grad.clone()}
    optimizer.step()
    for name, lr in (("conv1", 2e-3), ("fc", 2e-2)):
        weight = net.conv1.weight if name == "conv1" else net.fc.weight
        assert torch.allclose(weight, before[name] - lr * (grads[name] + 1e-3 * before[name]), atol=1e-7)
    set_rates(optimizer, net.fc.parameters(), Rates(0.0, 2e-2))  # frozen: the copied layers' group at 0
    assert current_rates(optimizer) == Rates(0.0, 2e-2) and len(optimizer.param_groups) == 2


def test_a_replay_applies_the_records_changes_at_their_points_and_the_optimiser_trains_at_them(tiny_data):
    events = []
    record = SteerRecord(epoch=0.5, lr=2e-3, head_lr=2e-2)  # before the third of the four batches of epoch 1
    result = fit(tiny_config(tiny_data), events.append, capture_state=True, steering=Replay([record]))
    steered = [e for e in events if isinstance(e, Steered)]
    assert [e.record for e in steered] == [record] == result.history.steering
    batches_before = [i for i, e in enumerate(events) if type(e).__name__ == "BatchEnded"]
    assert events.index(steered[0]) == batches_before[1] + 1  # right after the second batch
    state = [e for e in events if isinstance(e, StateCaptured)][-1].state  # read back from the run's own record
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [2e-3, 2e-2]


def test_a_run_split_into_two_groups_and_set_back_to_one_rate_resumes_as_it_would_have_gone_on(tiny_data):
    config = tiny_config(tiny_data)
    changes = [SteerRecord(epoch=0.25, lr=2e-3, head_lr=2e-2), SteerRecord(epoch=0.5, lr=2e-3, head_lr=2e-3)]
    events = []
    whole = fit(config, events.append, capture_state=True, steering=Replay(changes))
    state = next(e for e in events if isinstance(e, StateCaptured) and e.epoch == 1).state
    assert len(state["optimizer"]["param_groups"]) == 2  # two groups, at one rate again
    resumed = fit(config, resume_from=state, steering=Replay(changes))
    assert resumed.history.steering == whole.history.steering == changes  # the record keeps its changes
    assert [b.loss for b in resumed.history.batches] == [b.loss for b in whole.history.batches]
    assert Replay(changes + [SteerRecord(epoch=0.3, lr=1e-3, head_lr=1e-3)]).missed(changes, 2.0) == \
        [SteerRecord(epoch=0.3, lr=1e-3, head_lr=1e-3)]  # no batch of this run starts at 0.3: said, not applied


def test_a_steering_file_is_a_runs_metrics_or_a_list_of_changes(tmp_path):
    changes = [{"epoch": 1.25, "lr": 1e-3, "head_lr": 1e-2}]
    (tmp_path / "list.json").write_text(json.dumps(changes))
    (tmp_path / "metrics.json").write_text(json.dumps({"history": {"steering": changes}}))
    expected = [SteerRecord(1.25, 1e-3, 1e-2)]
    assert read_steering(tmp_path / "list.json") == read_steering(tmp_path / "metrics.json") == expected
    (tmp_path / "bad.json").write_text('{"history": {"steering": [{"lr": 1}]}}')
    with pytest.raises(FtcoreError, match="holds no list of changes"):
        read_steering(tmp_path / "bad.json")
    with pytest.raises(FtcoreError, match="cannot be read"):
        read_steering(tmp_path / "missing.json")
    (tmp_path / "negative.json").write_text('[{"epoch": 1.0, "lr": -1e-3, "head_lr": 1e-2}]')
    with pytest.raises(FtcoreError, match="holds a change that cannot be"):
        read_steering(tmp_path / "negative.json")


# ---- real runs


def test_a_child_process_takes_a_change_at_its_next_batch_keeps_it_when_resumed_and_a_replay_matches_it(
        tiny_data, tmp_path, capsys):
    config = tiny_config(tiny_data, epochs=12)
    job = ProcessJob(config, tmp_path / "runs").start()
    wait_until(lambda: read_state(job.folder) is not None, "the run to listen", TIMEOUT)
    asked, wanted, before = ask(job.folder, lr=2e-3, head_factor=10)
    assert before.rates == Rates(5e-4, 5e-4) and wanted == Rates(2e-3, 2e-2) and asked.seq == 1
    answer = wait_for_answer(job.folder, asked.seq, 60)
    assert answer is not None and answer.outcome == Outcome.APPLIED and read_state(job.folder).rates == wanted
    applied = SteerRecord(answer.epoch, 2e-3, 2e-2)
    assert answer.epoch == pytest.approx(round(answer.epoch * 4) / 4)  # between two batches (4 an epoch)
    wait_until(lambda: sum(e["type"] == "epoch" and e["record"]["epoch"] > answer.epoch
                           for e in runlog.read_events(job.folder)[0]) >= 1, "an epoch at the new rates", TIMEOUT)
    job.stop()
    assert job.join(60) and job.snapshot().status == "stopped"
    assert job.snapshot().steering == [applied]  # the page's copy, from the run's events
    state = torch.load(job.folder / STATE_FILE, weights_only=True)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [2e-3, 2e-2]  # the optimiser's own rates
    with pytest.raises(FtcoreError, match=r"has ended \(stopped\); steer a run while it trains"):
        ask(job.folder, lr=1e-3)

    again = ProcessJob.resumed(job.folder).start()
    assert again.join(TIMEOUT) and again.snapshot().status == "finished"
    steered = json.loads((job.folder / "metrics.json").read_text())["history"]
    assert steered["steering"] == [vars(applied)]  # a resumed run keeps its steering

    flags = ["--mode", "scratch", "--arch", "resnet18", "--epochs", "12", "--batch-size", "8", "--image-size", "32",
             "--precision", "fp32", "--data", str(tiny_data)]
    replay = tmp_path / "replay"
    assert main(["train", *flags, "--steering", str(job.folder / "metrics.json"), "--out", str(replay)]) == 0
    assert f"steered at epoch {applied.epoch:.2f}: lr 2e-3, output layer 2e-2" in capsys.readouterr().err
    replayed = json.loads((replay / "metrics.json").read_text())["history"]
    assert replayed["steering"] == steered["steering"]
    losses, again_losses = ([b["loss"] for b in h["batches"]] for h in (steered, replayed))
    assert len(losses) == len(again_losses) == 12 * 4
    assert max(abs(a - b) for a, b in zip(losses, again_losses, strict=True)) <= 1e-4


def test_train_out_is_steered_by_the_steer_command(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli-run"
    proc = start_cli_training(tiny_data, out, epochs=30)
    try:
        wait_until(lambda: read_state(out) is not None, "the run to listen", TIMEOUT)
        assert main(["steer", str(out), "--lr", "2e-3", "--head-factor", "10"]) == 0
        said = capsys.readouterr().out.strip()
        epoch = float(said.removeprefix("applied at epoch ").split(":")[0])
        assert said == f"applied at epoch {epoch:.2f}: lr 2e-3, output layer 2e-2"
        assert main(["steer", str(out), "--lr", "2e-3"]) == 0  # the same again: nothing to do
        assert capsys.readouterr().out.strip() == "the run already trains at lr 2e-3, output layer 2e-2; nothing " \
                                                  "to change"
        assert main(["steer", str(out), "--freeze"]) == 0
        assert capsys.readouterr().out.strip().endswith("copied layers frozen, output layer 2e-2")
        wait_until(lambda: (out / STATE_FILE).is_file(), "a finished epoch", TIMEOUT)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: it stops after its batch and saves, as a person would end it
        out_text, err_text = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err_text[-2000:]
    assert [line for line in out_text.splitlines() if line.startswith("epoch 1/30")]  # the book's lines
    steering = json.loads((out / "metrics.json").read_text())["history"]["steering"]
    assert [(s["lr"], s["head_lr"]) for s in steering] == [(2e-3, 2e-2), (0.0, 2e-2)]
    assert steering[0]["epoch"] == pytest.approx(epoch) and steering[1]["epoch"] >= epoch
    assert main(["steer", str(out), "--lr", "1e-3"]) == 2  # it has ended
    assert capsys.readouterr().err.strip() == f"error: the run in {out} has ended; steer a run while it trains"


@pytest.mark.parametrize(("argv", "words"), [
    (["--lr", "abc"], "error: argument --lr: invalid float value: 'abc'"),
    (["--lr", "-1"], "error: the learning rate must be a number above 0 (got -1.0); e.g. 2e-3"),
    (["--head-factor", "0"], "error: the output layer's factor must be a number above 0 (got 0.0)"),
    ([], "error: say what to change: --lr, --head-factor, --no-param-groups, --freeze or --unfreeze"),
    (["--freeze", "--unfreeze"], "error: argument --unfreeze: not allowed with argument --freeze"),
])
def test_steer_mistakes_are_one_error_line(tmp_path, capsys, argv, words):
    write_state(tmp_path, SteerState(running=True, pid=os.getpid(), host=socket.gethostname(),
                                     config=recipe("finetune", data="d").to_dict(), rates=Rates(5e-5, 5e-4),
                                     unfrozen_lr=5e-5))
    try:
        status = main(["steer", str(tmp_path), *argv])
    except SystemExit as e:  # argparse's own errors end the parse
        status = e.code
    assert status == 2
    assert capsys.readouterr().err.startswith(words)


def test_an_ask_made_before_the_last_one_was_taken_builds_on_it_and_the_run_says_it_replaced_it(tmp_path, capsys):
    # a batch of the book's recipe takes seconds on a CPU: the slider, then the toggle, both before the next batch
    run = FolderSteering(tmp_path, recipe("finetune", data="d"))  # the run's side, as its loop drives it
    first, wanted, _ = ask(tmp_path, lr=2e-3)
    assert wanted == Rates(2e-3, 2e-2) and read_asks(tmp_path)[0] == [first]
    second, wanted, _ = ask(tmp_path, head_factor=1)
    assert wanted == Rates(2e-3, 2e-3) and second.seq == first.seq + 1  # the new rate kept, not the one in force
    assert ask(tmp_path, lr=2e-3, head_factor=1)[0] is None  # what is asked for already: nothing written
    assert main(["steer", str(tmp_path), "--lr", "2e-3", "--no-param-groups"]) == 0
    assert capsys.readouterr().out.strip() == "the run is already asked for lr 2e-3, output layer 2e-3; it takes " \
                                              "them at its next batch"
    back, wanted, _ = ask(tmp_path, lr=5e-5, head_factor=10)  # back to the rates in force: asked, so it wins
    assert wanted == Rates(5e-5, 5e-4) and [a.seq for a in read_asks(tmp_path)[0]] == [1, 2, 3]
    assert run.poll(0.25, Rates(5e-5, 5e-4)) is None  # the run at its next batch: already at them
    answers = {seq: wait_for_answer(tmp_path, seq, 1) for seq in (1, 2, 3)}
    assert [answers[seq].outcome for seq in (1, 2, 3)] == [Outcome.REPLACED, Outcome.REPLACED, Outcome.UNCHANGED]
    assert answers[1].text() == "replaced: ask 3 came before the next batch"
    assert answers[3].text() == "unchanged at epoch 0.25"


def test_two_asks_at_once_are_both_kept_in_order_and_the_later_builds_on_the_earlier(tmp_path, monkeypatch):
    FolderSteering(tmp_path, recipe("finetune", data="d"))
    real_read_asks = steering.read_asks

    def slow_read_asks(*args, **kwargs):  # each asker takes its time between reading the log and writing its ask
        asks = real_read_asks(*args, **kwargs)
        time.sleep(0.3)
        return asks

    monkeypatch.setattr(steering, "read_asks", slow_read_asks)
    barrier = threading.Barrier(2)

    def asker(change: dict) -> None:
        barrier.wait()
        ask(tmp_path, **change)

    threads = [threading.Thread(target=asker, args=(change,)) for change in ({"lr": 2e-3}, {"head_factor": 1.0})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asks = read_asks(tmp_path)[0]
    assert [a.seq for a in asks] == [1, 2] and not any(a.problem for a in asks)
    # whichever came first, the second was made on top of it: both changes hold in the end
    assert asks[-1].rates == Rates(2e-3, 2e-3)
    assert asks[0].rates in (Rates(2e-3, 2e-2), Rates(5e-5, 5e-5))


def test_a_rate_asked_while_frozen_is_where_unfreezing_goes(tmp_path):
    run = FolderSteering(tmp_path, recipe("finetune", data="d"))
    now = Rates(5e-5, 5e-4)
    for position, change, expected in [(0.25, {"freeze": True}, Rates(0.0, 5e-4)),
                                       (0.5, {"lr": 1e-4}, Rates(0.0, 1e-3)),  # frozen still; 10x of the new rate
                                       (0.75, {"freeze": False}, Rates(1e-4, 1e-3))]:  # back at the rate asked
        asked, wanted, _ = ask(tmp_path, **change)
        assert wanted == expected and run.poll(position, now) == expected
        run.applied(SteerRecord(epoch=position, lr=wanted.lr, head_lr=wanted.head_lr))
        now = wanted
        answer = wait_for_answer(tmp_path, asked.seq, 1)
        assert (answer.outcome, answer.epoch) == (Outcome.APPLIED, position) and read_state(tmp_path).rates == expected


@pytest.mark.parametrize(("line", "reason"), [
    ('{"lr": NaN, "head_lr": 1e-3}', "the copied layers' learning rate nan is not a finite number"),
    ('{"lr": 1e-3, "head_lr": Infinity}', "the output layer's learning rate inf is not a finite number"),
    ('{"lr": -1e-3, "head_lr": 1e-2}', "the copied layers' learning rate -0.001 is not above 0"),
    ('{"lr": 1e-3, "head_lr": 0}', "the output layer's learning rate 0 is not above 0"),
    ('{"lr": 1e300, "head_lr": 1e300}', "the copied layers' learning rate 1e+300 is above 10, the most a run takes"),
    ('{"lr": "fast", "head_lr": 1e-3}', "the line holds no learning rates"),
    ("not json at all", "the line holds no learning rates"),
])
def test_the_run_itself_refuses_a_rate_written_into_the_log_by_hand_and_says_why(tmp_path, line, reason):
    run = FolderSteering(tmp_path, recipe("finetune", data="d"))
    now = Rates(5e-5, 5e-4)
    with open(tmp_path / runlog.STEER_FILE, "a") as log:
        log.write(line + "\n")
    assert run.poll(0.25, now) is None  # nothing applied: the run trains on at its rates
    answer = read_state(tmp_path).answer(1)
    assert (answer.outcome, answer.reason) == (Outcome.REFUSED, reason)
    asked, _, _ = ask(tmp_path, lr=2e-3)  # the next ask builds on the rates in force, not on the refused line
    assert asked.seq == 2 and asked.rates == Rates(2e-3, 2e-2) and run.poll(0.5, now) == asked.rates


def test_a_log_that_cannot_be_read_is_read_again_at_the_next_batch(tmp_path, monkeypatch):
    run = FolderSteering(tmp_path, recipe("finetune", data="d"))
    asked, wanted, _ = ask(tmp_path, lr=2e-3)
    real_read = steering.read_asks
    monkeypatch.setattr(steering, "read_asks", lambda *a, **k: (_ for _ in ()).throw(PermissionError("busy")))
    assert run.poll(0.25, Rates(5e-5, 5e-4)) is None  # this batch could not read it
    monkeypatch.setattr(steering, "read_asks", real_read)
    assert run.poll(0.5, Rates(5e-5, 5e-4)) == wanted  # the next one does
    run.applied(SteerRecord(epoch=0.5, lr=wanted.lr, head_lr=wanted.head_lr))
    assert read_state(tmp_path).answer(asked.seq).epoch == 0.5


def test_steering_a_folder_that_holds_no_run_or_a_run_not_started_is_refused(tmp_path, capsys):
    assert main(["steer", str(tmp_path), "--lr", "1e-3"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path} holds no run; give a run's folder (one in the runs "
                                               "folder), or the folder a training writes its checkpoint to")
    assert main(["steer", str(tmp_path / "nothing"), "--lr", "1e-3"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    queued = ProcessJob(recipe("finetune", data="d"), tmp_path / "runs")
    queued.prepare(None)  # its request is written; no process has started
    with pytest.raises(FtcoreError, match="has not started yet; steer it once it trains"):
        ask(queued.folder, lr=1e-3)
    write_state(tmp_path, SteerState(running=True, pid=2**22 + 7, host=socket.gethostname(), config={}, unfrozen_lr=1,
                                     rates=Rates(1, 1)))  # a process that died without a word
    with pytest.raises(FtcoreError, match="has ended; steer a run while it trains"):
        ask(tmp_path, lr=1e-3)
    write_state(queued.folder, SteerState(running=True, pid=1, host="a-node-of-the-cluster", unfrozen_lr=5e-5,
                                          config=queued.config.to_dict(), rates=Rates(5e-5, 5e-4)))
    # its node was lost: the server wrote the run's end, and the process cannot say it ended
    runlog.EventLog(queued.folder).end(Status.FAILED, "the run's machine left the cluster")
    with pytest.raises(FtcoreError, match=r"has ended \(failed\); steer a run while it trains"):
        ask(queued.folder, lr=1e-3)
    runlog.EventLog(queued.folder).resumed(1)  # resumed on another node: it trains again
    assert ask(queued.folder, lr=1e-3)[0] is not None


# ---- the Train page


def test_the_slider_and_the_toggle_steer_the_tabs_running_run_and_the_charts_mark_it(tiny_data):
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    set_small_scratch_run(at, 40)
    at.button(key="start").click().run()
    job = at.session_state["job"]
    wait_until(lambda: read_state(job.folder) is not None and job.snapshot().steerable, "the run to listen", TIMEOUT)
    at.run()  # the page now holds its controls to the run, and its slider steers it
    assert at.radio(key="mode").disabled and at.select_slider(key="size").disabled
    at.select_slider(key="lr-scratch-resnet18").set_value(2e-3).run()
    assert read_asks(job.folder)[0][-1].rates == Rates(2e-3, 2e-3)  # asked of the run itself, through its folder
    wait_until(lambda: job.snapshot().steering, "the change to apply", TIMEOUT)
    at.toggle(key="groups-scratch").set_value(True).run()  # the output layer at 10x, from the next batch
    wait_until(lambda: len(job.snapshot().steering) == 2, "the second change", TIMEOUT)
    asked, _, _ = ask(job.folder, lr=1e-3, head_factor=1)  # from the command line, beside the page
    wait_for_answer(job.folder, asked.seq, TIMEOUT)
    at.run()  # the slider and the toggle show what the run trains at now
    assert at.select_slider(key="lr-scratch-resnet18").value == 1e-3 and not at.toggle(key="groups-scratch").value
    job.stop()
    assert job.join(60)
    first, second, third = job.snapshot().steering
    assert [(r.lr, r.head_lr) for r in (first, second, third)] == [(2e-3, 2e-3), (2e-3, 2e-2), (1e-3, 1e-3)]
    assert first.epoch <= second.epoch <= third.epoch
    at.run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    batches = next(c for c in charts if c["layout"]["title"]["text"] == "Per batch")
    assert [s["x0"] for s in batches["layout"]["shapes"]] == [first.epoch, second.epoch, third.epoch]
    assert [a["text"] for a in batches["layout"]["annotations"]] == ["lr 2e-3, output layer 2e-3",
                                                                     "lr 2e-3, output layer 2e-2",
                                                                     "lr 1e-3, output layer 1e-3"]
    assert any(c.value.startswith("Steered at epoch") for c in at.caption)
    said = [c.value for c in at.caption if c.value.startswith("Ask ")]  # this tab's asks, each with its outcome
    assert said == [f"Ask 1, lr 2e-3, output layer 2e-3: applied at epoch {first.epoch:.2f}.",
                    f"Ask 2, lr 2e-3, output layer 2e-2: applied at epoch {second.epoch:.2f}."]


def test_a_tab_cannot_steer_a_run_that_is_not_its_own(tiny_data):
    owner = open_app("app_pages/train.py", data_root=str(tiny_data))  # a tab whose run trains
    set_small_scratch_run(owner, 40)
    owner.button(key="start").click().run()
    job = owner.session_state["job"]
    wait_until(lambda: read_state(job.folder) is not None and job.snapshot().steerable, "the run to listen", TIMEOUT)

    def other_tab(folder: str):  # AppTest runs this function's source alone as the page, so it imports what it uses
        import streamlit as st

        from app import steering, tab
        from ftcore.errors import FtcoreError
        from ftcore.runs.steering import ask

        tab.attach_tab()
        for attempt in (lambda: steering.steer(lr=1e-3), lambda: ask(folder, lr=1e-3, owner=tab.owner())):
            try:
                attempt()
            except FtcoreError as e:
                st.error(str(e))

    stranger = AppTest.from_function(other_tab, args=(str(job.folder),), default_timeout=120).run()
    assert [e.value for e in stranger.error] == [
        "this tab has no run training now, so there is nothing to steer; only the tab that started a run steers it, "
        "while it trains",
        f"the run in {job.folder} is not this tab's; only the tab that started a run steers it"]
    assert read_asks(job.folder)[0] == []  # nothing reached the run
    owner.run()  # its own tab, now holding its controls to the run
    owner.select_slider(key="lr-scratch-resnet18").set_value(2e-3).run()  # its own tab steers it
    assert [a.rates for a in read_asks(job.folder)[0]] == [Rates(2e-3, 2e-3)]
    job.stop()
    assert job.join(60)


def test_steer_a_run_starts_the_engines_steer_recipe_with_the_controls_held_to_it(tiny_data):
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    page = (at.radio(key="mode").value, at.radio(key="arch").value, at.number_input(key="epochs").value)
    at.button(key="start-steer").click().run()
    job = at.session_state["job"]
    job.stop()  # its settings are what this test is about, not its training
    steer = PRESETS["steer"]
    assert (job.config.mode, job.config.arch, job.config.epochs, job.config.batch_size, job.config.image_size) == \
        ("finetune", steer["arch"], steer["epochs"], steer["batch_size"], steer["image_size"])
    assert page != ("finetune", steer["arch"], steer["epochs"])  # not the page's own settings
    assert (at.radio(key="mode").value, at.radio(key="arch").value) == ("finetune", steer["arch"])
    assert at.select_slider(key=f"lr-finetune-{steer['arch']}").value == job.config.lr == recipe(
        "finetune", steer["arch"], data="d").lr
    job.join(60)


def test_the_steering_caption_and_the_runs_table_say_what_was_done(tiny_data):
    result = fit(tiny_config(tiny_data), steering=Replay([SteerRecord(0.5, 2e-3, 2e-2), SteerRecord(1.25, 0, 2e-2)]))
    assert [(s.lr, s.head_lr) for s in result.history.steering] == [(2e-3, 2e-2), (0.0, 2e-2)]

    row = Run("r", "scratch", result.config, result.history, result).table_row()
    assert row["steered"] == "at epoch 0.50: lr 2e-3, output layer 2e-2; at epoch 1.25: copied layers frozen, " \
                             "output layer 2e-2"
    assert math.isclose(result.history.steering[1].epoch, 1.25)


def test_frozen_copied_layers_keep_their_batchnorm_statistics(tiny_data, random_resnet18_file):
    start = torch.load(random_resnet18_file, weights_only=True)
    config = recipe("finetune", "resnet18", data=str(tiny_data), weights=str(random_resnet18_file), epochs=2,
                    batch_size=8, image_size=32, precision="fp32", freeze_body=True)
    kept = fit(config).model.state_dict()
    assert all(torch.equal(kept[name], start[name]) for name in start if "running_" in name)  # frozen: kept
    moving = fit(dataclasses.replace(config, frozen_batchnorm="train")).model.state_dict()
    assert not torch.equal(moving["bn1.running_mean"], start["bn1.running_mean"])  # the other choice: they follow
    events = []  # frozen mid-run by a steer: the statistics stay where the first epoch left them
    steered = fit(dataclasses.replace(config, freeze_body=False), events.append, capture_state=True,
                  steering=Replay([SteerRecord(epoch=1.0, lr=0.0, head_lr=config.head_lr)])).model.state_dict()
    after_one = next(e for e in events if isinstance(e, StateCaptured) and e.epoch == 1).state["model"]
    assert not torch.equal(after_one["bn1.running_mean"], start["bn1.running_mean"])  # the first epoch moved them
    assert all(torch.equal(steered[name], after_one[name]) for name in after_one if "running_" in name)


def test_steer_a_run_that_cannot_start_says_why_under_its_button(tiny_data, monkeypatch):
    from app import jobs

    def refuse(config):
        raise FtcoreError("this run cannot start here; free some memory")

    monkeypatch.setattr(jobs, "start_job", refuse)
    at = open_app("app_pages/train.py", data_root=str(tiny_data))
    at.button(key="start-steer").click().run()
    assert "this run cannot start here; free some memory" in [e.value for e in at.error]
