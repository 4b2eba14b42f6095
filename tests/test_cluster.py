"""Runs on a Ray cluster: a real one, two nodes on this machine (conftest.ray_cluster), spoken to only through
Ray's Jobs API as the app does. The address checks and the packing rule are checked without Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, wait_until
from ftcore.cli.main import main
from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.records import Status, SteerRecord
from ftcore.runs import folder as runlog
from ftcore.runs.address import check_address
from ftcore.runs.cluster import METADATA_ASK, Node, RayBackend, place_jobs
from ftcore.runs.folder import STATE_FILE
from ftcore.runs.process import ProcessJob
from ftcore.runs.steering import Outcome, ask, read_state, wait_for_answer
from ftcore.runs.worker import check_folder
from ftcore.train.steering import Rates

TIMEOUT = 240


def tiny_config(data, epochs: int = 2, **overrides):
    """A small scratch run (no weights needed): ResNet-18 at 32 px on the tiny photos."""
    return recipe("scratch", "resnet18", data=str(data), epochs=epochs, batch_size=8, image_size=32,
                  precision="fp32", **overrides)


def epochs_logged(job: ProcessJob) -> int:
    events, _ = runlog.read_events(job.folder)
    return sum(e["type"] == "epoch" for e in events)


# ---- without Ray


@pytest.mark.parametrize("address,url", [("127.0.0.1", "http://127.0.0.1:8265"),
                                         ("localhost:9000", "http://localhost:9000"),
                                         ("http://10.1.2.3:8265", "http://10.1.2.3:8265"),
                                         ("192.168.0.7", "http://192.168.0.7:8265"),
                                         ("[::1]:8265", "http://::1:8265")])
def test_loopback_and_private_heads_are_accepted(address, url, monkeypatch):
    monkeypatch.delenv("FTCORE_RAY_ALLOW_REMOTE", raising=False)
    assert check_address(address) == url


def test_a_public_head_is_refused_unless_allowed(monkeypatch):
    monkeypatch.delenv("FTCORE_RAY_ALLOW_REMOTE", raising=False)
    with pytest.raises(FtcoreError, match=r"^the Ray head 8\.8\.8\.8 \(8\.8\.8\.8\) is not on this machine or a "
                                          r"private network.*FTCORE_RAY_ALLOW_REMOTE=1"):
        check_address("8.8.8.8:8265")
    with pytest.raises(FtcoreError, match="Ray Client address"):
        check_address("ray://10.0.0.1:10001")
    monkeypatch.setenv("FTCORE_RAY_ALLOW_REMOTE", "1")
    assert check_address("8.8.8.8:8265") == "http://8.8.8.8:8265"


def test_active_jobs_fill_the_nodes_and_a_run_fits_only_where_room_is_left():
    nodes = [Node(id="a", ip="10.0.0.1", total={"CPU": 2, "GPU": 0, "memory": 8e9}),
             Node(id="b", ip="10.0.0.2", total={"CPU": 4, "GPU": 1, "memory": 16e9})]
    asks = [{"CPU": 2, "memory": 2e9}, {"CPU": 1, "GPU": 0.25, "memory": 1e9}, {"CPU": 4}]
    # as Ray lists runs of the lab; the ended one holds nothing
    jobs = [{"status": status, "metadata": {METADATA_ASK: json.dumps(ask)}}
            for status, ask in zip(("RUNNING", "PENDING", "SUCCEEDED"), asks, strict=True)]
    jobs.append({"status": "RUNNING", "metadata": None})  # a job submitted otherwise: its ask is unknown
    place_jobs(nodes, jobs)
    assert nodes[1].used == {"CPU": 1, "GPU": 0.25, "memory": 1e9}  # the GPU job can only go to b
    assert nodes[0].used == {"CPU": 2, "GPU": 0, "memory": 2e9}  # the 2-CPU one, best fit: a, which it fills
    assert [node.fits({"CPU": 2, "memory": 1e9}) for node in nodes] == [False, True]
    assert not any(node.fits({"CPU": 1, "GPU": 0.8}) for node in nodes)  # 0.75 of b's GPU is left


def test_the_worker_names_its_folder_and_machine_when_it_cannot_use_it(tmp_path):
    problem = check_folder(tmp_path / "nowhere")
    assert problem.startswith(f"the run folder {tmp_path / 'nowhere'} is not on ") and "FTCORE_RUNS_DIR" in problem
    answer = subprocess.run([sys.executable, "-m", "ftcore.runs.worker", str(tmp_path / "nowhere")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert answer.returncode == 2 and answer.stderr.strip() == f"error: {problem}"


# ---- on the two-node cluster


@pytest.mark.slow
def test_runs_queue_here_until_a_node_has_room_then_train_and_read_back(ray_cluster, tiny_data, tmp_path):
    backend = RayBackend(ray_cluster.address, tmp_path / "runs")
    jobs = [ProcessJob(tiny_config(tiny_data, seed=seed), tmp_path / "runs").start(backend) for seed in range(3)]
    # two nodes of 2 CPUs, a run asks for 2: the third waits in our queue, not in Ray's
    wait_until(lambda: all(job.snapshot().status != Status.QUEUED for job in jobs[:2]), "two runs on the cluster",
               TIMEOUT)
    assert [job.snapshot().status for job in jobs[:2]] in ([Status.STARTING] * 2, [Status.RUNNING] * 2,
                                                            [Status.STARTING, Status.RUNNING],
                                                            [Status.RUNNING, Status.STARTING]), \
        [job.snapshot().status_line() for job in jobs]
    third = jobs[2].snapshot()
    assert third.status == Status.QUEUED and third.queue_note.startswith(
        "queued: next in line; starts when a machine of the cluster has 2 CPUs")
    assert not any(jobs[2].id in sid for sid in backend._jobs)  # Ray has not seen it
    for job in jobs:
        assert job.join(TIMEOUT), job.snapshot().status_line()
    for job in jobs:
        snap = job.snapshot()
        assert snap.status == Status.FINISHED and [e.epoch for e in snap.epochs] == [1.0, 2.0]
        assert snap.saved_to == str(job.folder) and job.to_run().history.final().epoch == 2
        metrics = json.loads((job.folder / "metrics.json").read_text())
        assert metrics["history"]["epochs"][-1]["train_loss"] == snap.epochs[-1].train_loss
    ours = [sid for sid in backend._jobs if any(job.id in sid for job in jobs)]
    wait_until(lambda: {backend.job_info(sid)["status"] for sid in ours} == {"SUCCEEDED"}, "Ray's word", 30)
    assert len(ours) == 3


@pytest.mark.slow
def test_stop_ends_a_run_on_the_cluster_and_a_restarted_server_still_sees_it(ray_cluster, tiny_data, tmp_path):
    first = RayBackend(ray_cluster.address, tmp_path / "runs")
    job = ProcessJob(tiny_config(tiny_data, epochs=60), tmp_path / "runs").start(first)
    wait_until(lambda: epochs_logged(job) >= 1, "the first epoch", TIMEOUT)
    first.shutdown()  # the server goes away: its runs on the cluster go on
    restarted = RayBackend(ray_cluster.address, tmp_path / "runs")
    wait_until(lambda: [j.folder for j in restarted.list()] == [job.folder], "the run found again", 30)
    adopted = restarted.list()[0]
    assert adopted.snapshot().status == Status.RUNNING and len(adopted.snapshot().epochs) >= 1
    restarted.stop(adopted)
    assert adopted.join(60)
    snap = adopted.snapshot()
    assert snap.status == Status.STOPPED and snap.has_model and snap.resumable
    assert epochs_logged(job) < 60


@pytest.mark.slow
def test_a_run_on_the_cluster_is_steered_through_its_folder_as_a_child_process_is(ray_cluster, tiny_data, tmp_path):
    backend = RayBackend(ray_cluster.address, tmp_path / "runs")
    job = ProcessJob(tiny_config(tiny_data, epochs=60), tmp_path / "runs").start(backend)
    wait_until(lambda: read_state(job.folder) is not None, "the run to listen", TIMEOUT)
    asked, wanted, _ = ask(job.folder, lr=2e-3, head_factor=10)
    answer = wait_for_answer(job.folder, asked.seq, 120)
    assert answer is not None and answer.outcome == Outcome.APPLIED
    assert read_state(job.folder).rates == wanted == Rates(2e-3, 2e-2)
    wait_until(lambda: any(e["type"] == "epoch" and e["record"]["epoch"] > answer.epoch
                           for e in runlog.read_events(job.folder)[0]), "an epoch at the new rates", TIMEOUT)
    backend.stop(job)
    assert job.join(60)
    assert job.snapshot().steering == [SteerRecord(answer.epoch, 2e-3, 2e-2)]  # the run's record, read back
    state = torch.load(job.folder / STATE_FILE, weights_only=True)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [2e-3, 2e-2]  # what its optimiser trained at
    backend.shutdown()


@pytest.mark.slow
def test_the_worker_sentence_reaches_the_page_when_a_node_cannot_see_the_folder(ray_cluster, tiny_data, tmp_path):
    backend = RayBackend(ray_cluster.address, tmp_path / "runs")
    job = ProcessJob(tiny_config(tiny_data), tmp_path / "elsewhere")  # its request never written: as on a node
    with backend._lock:                                                # that does not see the runs folder
        backend._launch(job)
    assert job.join(TIMEOUT)
    snap = job.snapshot()
    assert snap.status == Status.FAILED and snap.error == check_folder(job.folder)


@pytest.mark.slow
def test_train_cluster_on_the_command_line_prints_the_books_lines(ray_cluster, tiny_data, tmp_path, capsys,
                                                                 monkeypatch):
    out = tmp_path / "runs" / "cli"
    code = main(["train", "--cluster", ray_cluster.address, "--data", str(tiny_data), "--mode", "scratch",
                     "--arch", "resnet18", "--epochs", "2", "--batch-size", "8", "--image-size", "32",
                     "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = printed.out.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    metrics = json.loads((out / "metrics.json").read_text())
    last = metrics["history"]["epochs"][-1]
    assert lines[2] == f"loss {last['train_loss']:.3f}, train acc {last['train_acc']:.3f}, test acc " \
                       f"{last['test_acc']:.3f}"
    assert lines[3].endswith("examples/sec on [device(type='cpu')]")
    assert (out / "checkpoint.pt").is_file()
    monkeypatch.delenv("FTCORE_RAY_ALLOW_REMOTE", raising=False)
    assert main(["train", "--cluster", "8.8.8.8", "--data", str(tiny_data), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: the Ray head 8.8.8.8")


@pytest.mark.slow
def test_the_train_page_trains_on_the_cluster(ray_cluster, tiny_data, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import jobs

    monkeypatch.setenv("FTCORE_RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("FTCORE_RUNS_DIR", str(tmp_path / "runs"))
    jobs.backend.clear()  # the server's backend is made once per process: this "server" uses the cluster
    try:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120)
        at.session_state["data_root"] = str(tiny_data)
        at.switch_page("app_pages/train.py")
        at.run()
        at.radio(key="mode").set_value("scratch").run()
        at.number_input(key="epochs").set_value(2).run()
        at.select_slider(key="batch").set_value(8).run()
        at.select_slider(key="size").set_value(64).run()
        assert any(f"Ray cluster at {ray_cluster.address}," in c.value for c in at.caption)
        at.button(key="start").click().run()
        assert not at.exception, [e.message for e in at.exception]
        job = at.session_state["job"]
        assert job.join(TIMEOUT), job.snapshot().status_line()
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert job.snapshot().status == Status.FINISHED and job.folder.parent == tmp_path / "runs"
        assert at.session_state["runs"][0].history.final().epoch == 2
    finally:
        jobs.backend.clear()


def test_a_public_address_is_one_sentence_on_the_page(tiny_data, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import jobs

    monkeypatch.setenv("FTCORE_RAY_ADDRESS", "8.8.8.8:8265")
    monkeypatch.delenv("FTCORE_RAY_ALLOW_REMOTE", raising=False)
    jobs.backend.clear()
    try:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120)
        at.session_state["data_root"] = str(tiny_data)
        at.switch_page("app_pages/train.py")
        at.run()
        at.button(key="start").click().run()
        assert not at.exception, [e.message for e in at.exception]
        assert any(e.value.startswith("the Ray head 8.8.8.8 (8.8.8.8) is not on this machine") for e in at.error)
    finally:
        jobs.backend.clear()


@pytest.mark.slow
def test_a_node_that_leaves_mid_run_is_reported_and_resumed_on_another(ray_cluster, tiny_data, tmp_path):
    backend = RayBackend(ray_cluster.address, tmp_path / "runs")
    jobs = [ProcessJob(tiny_config(tiny_data, epochs=6, seed=seed), tmp_path / "runs").start(backend)
            for seed in range(2)]  # one on each node
    wait_until(lambda: all((job.folder / STATE_FILE).is_file() for job in jobs), "both runs' first saved state",
               TIMEOUT)
    ray_cluster.kill_node(len(ray_cluster.groups) - 1)  # the last node added, not the head (the fixture
    # replaces it for the next test that needs the cluster)
    wait_until(lambda: any(job.snapshot().status == Status.FAILED for job in jobs), "the lost run reported", 60)
    lost = next(job for job in jobs if job.snapshot().status == Status.FAILED)
    survivor = next(job for job in jobs if job is not lost)
    snap = lost.snapshot()
    last = [e for e in runlog.read_events(lost.folder)[0] if e["type"] == "batch"][-1]
    assert snap.error == (
        f"the run's machine (127.0.0.1) left the cluster at epoch {last['epoch']}, batch {last['step']}; its "
        "curves are kept, and Resume continues it on another machine")
    assert snap.resumable and 1 <= len(snap.epochs) < 6
    survivor.stop()  # the head's run went on: it ends stopped, or finished if it got there first
    assert survivor.join(60) and survivor.snapshot().status in (Status.STOPPED, Status.FINISHED)
    again = ProcessJob.resumed(lost.folder).start(backend)  # on the head, the one machine left
    assert again.join(TIMEOUT), again.snapshot().status_line()
    resumed = again.snapshot()
    assert resumed.status == Status.FINISHED and [e.epoch for e in resumed.epochs] == [
        float(e) for e in range(1, 7)]
