"""Jobs: training in a process of its own, observed through snapshots of its folder, stoppable."""

from __future__ import annotations

import time

from conftest import contract_breaches, write_tiny_imagefolder
from ftcore.config import recipe
from ftcore.records import BatchRecord, EpochRecord
from ftcore.runs.process import ProcessJob
from ftcore.runs.snapshot import JobSnapshot, run_label


def wait_until(predicate, timeout: float = 120.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def test_job_runs_in_a_process_of_its_own_and_its_history_grows(tiny_data, tmp_path):
    config = recipe("scratch", "resnet18", data=str(tiny_data), epochs=6, batch_size=4, image_size=32)
    job = ProcessJob(config, tmp_path / "runs").start()
    sizes = []
    while not job.snapshot().done:
        sizes.append(len(job.snapshot().batches))
        time.sleep(0.02)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.error is None and snap.progress == 1.0
    assert len(snap.batches) == 48 and len(snap.epochs) == 6 and snap.steps_per_epoch == 8
    assert sizes == sorted(sizes) and len(set(sizes)) > 2  # seen growing while it ran
    assert snap.devices == ["cpu"] and snap.classes == ["blue", "red"] and snap.train_size == 32
    run = job.to_run()  # from its folder: its model loads from the checkpoint the run wrote
    assert run.id == job.id and run.history.final().epoch == 6 and run.path == job.folder
    assert run.label == "scratch resnet18 lr 5e-04" and run.trained.classes == ["blue", "red"]


def test_stop_ends_the_job_within_a_batch_and_keeps_the_model(tiny_data, tmp_path):
    config = recipe("scratch", "resnet18", data=str(tiny_data), epochs=50, batch_size=4, image_size=32)
    job = ProcessJob(config, tmp_path / "runs").start()
    wait_until(lambda: len(job.snapshot().batches) >= 2)
    job.stop()
    stopped_at = len(job.snapshot().batches)
    assert job.join(timeout=60)
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.has_model
    assert stopped_at <= len(snap.batches) <= stopped_at + 1
    assert job.to_run().history.stopped


def test_a_broken_photo_fails_the_job_with_one_line_even_from_a_worker_process(tmp_path):
    root = write_tiny_imagefolder(tmp_path / "d", {"train": 4, "test": 2})
    (root / "train" / "red" / "002.png").write_bytes(b"broken")
    config = recipe("scratch", data=str(root), batch_size=4, image_size=32, num_workers=1)
    job = ProcessJob(config, tmp_path / "runs").start()
    assert job.join(timeout=120)
    snap = job.snapshot()
    assert snap.status == "failed" and "\n" not in snap.error
    assert snap.error.startswith(str(root / "train" / "red" / "002.png")) and "remove or replace" in snap.error


def test_a_user_error_fails_the_job_with_one_readable_line(tmp_path):
    job = ProcessJob(recipe("scratch", data=str(tmp_path / "nowhere")), tmp_path / "runs").start()
    assert job.join(timeout=60)
    snap = job.snapshot()
    assert snap.status == "failed" and not snap.has_model
    assert snap.error.startswith("data folder") and "\n" not in snap.error


def test_snapshots_are_copies_that_do_not_change_later(tiny_data, tmp_path):
    config = recipe("scratch", data=str(tiny_data), epochs=4, batch_size=8, image_size=32)
    job = ProcessJob(config, tmp_path / "runs").start()
    wait_until(lambda: len(job.snapshot().batches) >= 1)
    first = job.snapshot()
    seen = len(first.batches)
    job.join(timeout=120)
    assert seen < 16 and len(first.batches) == seen and len(job.snapshot().batches) == 16


def test_run_label_names_mode_arch_lr_and_groups():
    assert run_label(recipe("finetune", "resnet18", data="d")) == "fine-tune resnet18 lr 5e-05, head 10x"
    assert run_label(recipe("scratch", "mobilenet_v2", data="d", lr=1e-3)) == "scratch mobilenet_v2 lr 1e-03"


def test_the_status_line_says_what_a_run_does_between_its_last_batch_and_its_end():
    def snap(batches: list[float], epochs: list[float], status: str = "running") -> JobSnapshot:
        return JobSnapshot(
            id="r", label="run", config=recipe("finetune", data="d", epochs=2), status=status,
            epochs=[EpochRecord(epoch=e, train_loss=0.5, train_acc=0.8, test_acc=0.8, examples=8, seconds=1.0)
                    for e in epochs],
            batches=[BatchRecord(epoch=b, loss=0.5, acc=0.8) for b in batches], examples_per_sec=10.0,
            devices=["cpu"], weights="", classes=["a", "b"], train_size=8, test_size=8, steps_per_epoch=2,
            elapsed=12.0, heldout="val")

    assert snap([0.5], []).status_line().startswith("running: epoch 1/2 (50%); 10.0 examples/sec on cpu")
    assert snap([0.5, 1.0], []).status_line().startswith("running: epoch 1/2 trained; measuring it on the val photos")
    assert snap([0.5, 1.0, 1.5], [1.0]).status_line().startswith("running: epoch 2/2 (50%)")
    assert snap([1.0, 2.0], [1.0, 2.0]).status_line().startswith("running: all 2 epochs trained; writing its results")
    assert snap([1.0, 2.0], [1.0, 2.0], "finished").status_line().startswith("finished: epoch 2/2 (100%)")
    assert snap([0.5], [0.5], "stopped").status_line().startswith("stopped: epoch 1/2 (50%)")


def test_every_kind_of_job_keeps_the_queued_run_contract(tmp_path):
    from ftcore.records import ENDED, KEPT, Status
    from ftcore.runs.process import FinderJob
    from ftcore.runs.queue import QueuedRun

    config = recipe("scratch", data=str(tmp_path), epochs=1)
    for job in (ProcessJob(config, tmp_path), FinderJob(config, tmp_path)):
        assert contract_breaches(QueuedRun, type(job), job) == [], type(job).__name__
    assert {status for status in Status if status.ended} == ENDED and KEPT < ENDED
    assert not Status.RUNNING.ended and Status("cancelled") is Status.CANCELLED
