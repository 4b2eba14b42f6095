"""The local backend: runs queued in order, admitted by slots, cores, host memory and GPU memory; the backend
contract it keeps. Jobs here are stand-ins that record how they were launched; real child processes are
tests/test_runs.py's."""

from __future__ import annotations

import os
import time

import pytest

from conftest import contract_breaches, wait_until
from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.runs.cluster import RayBackend
from ftcore.runs.local import LocalBackend
from ftcore.runs.process import ProcessJob
from ftcore.runs.queue import QueuedRun, QueueingBackend
from ftcore.train import memory
from ftcore.train.memory import GB


class FakeJob:
    """What the local backend asks of a job, recording the environment it was launched with."""

    def __init__(self, name: str, data: str = "d"):
        self.id = self.group = name
        self.config = recipe("finetune", data=data)
        self.procs, self.max_procs, self.estimate, self.gpu_estimate = 1, 1, 0, 0
        self.env: dict | None = None
        self.running = self.trained = False

    def started_training(self) -> bool:
        return self.trained

    def prepare(self, scheduler) -> None:
        self.scheduler = scheduler

    def launch(self, env: dict) -> None:
        self.env, self.running = env, True

    def alive(self) -> bool:
        return self.running

    def rss_bytes(self) -> int:
        return 0

    def cancel(self) -> None:
        self.running = False

    def terminate(self) -> None:
        self.running = False


def test_runs_submitted_together_start_together_in_one_slot_and_share_its_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    scheduler = LocalBackend(slots=1, check_memory=False)
    pair, single = [FakeJob("a"), FakeJob("b")], FakeJob("c")
    scheduler.submit(*pair)
    scheduler.submit(single)
    wait_until(lambda: all(job.env is not None for job in pair), "the pair to start")
    assert [job.env["FTCORE_THREADS"] for job in pair] == ["2", "2"]  # the slot's 4 cores, halved
    assert {job.group for job in pair} == {"a"}
    time.sleep(0.6)  # two scheduler rounds: the single run waits for the pair's slot
    assert single.env is None and scheduler._queue.place(single) == 1
    assert scheduler.queue_note(single).startswith("queued: next in line; starts when one of the 1 run(s)")
    pair[0].running = False
    time.sleep(0.6)
    assert single.env is None  # half the pair still trains
    pair[1].running = False
    wait_until(lambda: single.env is not None, "the single run to start")
    assert single.env["FTCORE_THREADS"] == "4"
    scheduler.shutdown()


def test_a_group_on_a_one_gpu_machine_shares_the_gpu(monkeypatch):
    scheduler = LocalBackend(slots=1, check_memory=False, gpu_memory=lambda gpu: (80 * GB, 80 * GB))
    scheduler.gpus = 1  # as on a machine with one GPU
    pair = [FakeJob("a"), FakeJob("b")]
    scheduler.submit(*pair)
    wait_until(lambda: all(job.env is not None for job in pair), "the pair to start")
    assert [job.env["CUDA_VISIBLE_DEVICES"] for job in pair] == ["0", "0"]
    scheduler.shutdown()


@pytest.mark.parametrize(("protocol", "implementation"), [(QueueingBackend, LocalBackend),
                                                          (QueueingBackend, RayBackend), (QueuedRun, ProcessJob)])
def test_every_backend_and_queued_run_keeps_its_contract_call_for_call(protocol, implementation):
    # a method missing, renamed, or taking other parameters than the contract says breaks the callers that speak to
    # the contract only
    made = implementation(recipe("finetune", data="d"), "runs") if implementation is ProcessJob else None
    assert contract_breaches(protocol, implementation, made) == []


def test_a_contract_check_notices_a_method_with_other_parameters():
    class Renamed:
        def cancel(self, run):  # QueueingBackend.cancel takes `job`
            return False

    assert contract_breaches(QueueingBackend, Renamed) == ["Renamed.cancel"] + [
        f"Renamed.{name} is missing" for name in ("check_fits", "size", "waits_for", "finder_root", "refresh",
                                                  "submit", "queue_note", "snapshot", "stop", "list", "running",
                                                  "shutdown")]


def test_on_a_gpu_machine_runs_are_packed_by_their_gpu_memory_not_one_per_gpu(tiny_data):
    free = {0: 10 * GB, 1: 6 * GB}  # what torch.cuda.mem_get_info would say of each GPU
    backend = LocalBackend(slots=8, gpu_memory=lambda gpu: (free[gpu], 80 * GB))
    backend.gpus = 2
    jobs = {name: FakeJob(name, str(tiny_data)) for name in "abcd"}
    for job in jobs.values():
        backend.submit(job)
    need = memory.estimate_gpu_bytes(jobs["a"].config)  # the book's ResNet-18: about 4 GB
    assert 3 * GB < need < 5 * GB and all(job.gpu_estimate == need for job in jobs.values())
    wait_until(lambda: all(jobs[n].env is not None for n in "abc"), "three runs to start on two GPUs")
    # a: the most room (GPU 0); b: then GPU 1 has more; c: GPU 0 again, its room less a's reservation
    assert [jobs[n].env["CUDA_VISIBLE_DEVICES"] for n in "abc"] == ["0", "1", "0"]
    assert jobs["d"].env is None and backend.queue_note(jobs["d"]).startswith(
        f"queued: next in line; starts when a GPU has {need / 1e9:.1f} GB free")
    free[0] -= 4 * GB  # a trains: its memory is taken, no longer reserved
    jobs["a"].trained = True
    time.sleep(0.6)
    assert jobs["d"].env is None  # GPU 0: 6 GB free, c's reservation still held
    jobs["c"].running = False  # c ends before it trained a batch
    wait_until(lambda: jobs["d"].env is not None, "the fourth run to start where c was")
    assert jobs["d"].env["CUDA_VISIBLE_DEVICES"] == "0"
    assert [job.id for job in backend.list()] == ["a", "b", "d"]
    backend.shutdown()


def test_a_run_too_big_for_every_gpu_is_refused_before_anything_is_written(tiny_data, tmp_path):
    from ftcore.runs.process import ProcessJob

    backend = LocalBackend(slots=2, gpu_memory=lambda gpu: (2 * GB, 2 * GB))
    backend.gpus = 1
    job = ProcessJob(recipe("finetune", data=str(tiny_data)), tmp_path / "runs")
    with pytest.raises(FtcoreError, match=r"GPU memory \(resnet18, batch 128 at 224 px\) but the largest GPU here has "
                       r"2\.0 GB; lower the batch size"):
        job.start(backend)
    assert not job.folder.exists() and backend.list() == []


def test_the_gpu_estimate_grows_with_the_batch_and_image_and_splits_over_processes():
    book = recipe("finetune", "resnet18", data="d")
    smaller = recipe("finetune", "resnet18", data="d", batch_size=32, image_size=112)
    bf16 = recipe("finetune", "resnet18", data="d", precision="bf16")
    assert memory.estimate_gpu_bytes(smaller) < memory.estimate_gpu_bytes(bf16) < memory.estimate_gpu_bytes(book)
    assert memory.estimate_gpu_bytes(book, procs=2) < memory.estimate_gpu_bytes(book)
    quick = recipe("finetune", "resnet18", "quick", data="d")
    assert memory.CUDA_CONTEXT_BYTES < memory.estimate_gpu_bytes(quick) < memory.estimate_gpu_bytes(book)
