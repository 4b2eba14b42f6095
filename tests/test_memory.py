"""ftcore.train.memory: the estimate of a run's peak memory against the measured table, and admission helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ftcore.config import TrainConfig, recipe
from ftcore.train import memory
from ftcore.train.features import feature_batch_size
from ftcore.util.paths import REPO_ROOT

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "memory-table-cpu.json"
CASES = json.loads(RESULTS.read_text())["cases"]


def config_of(case: dict) -> TrainConfig:
    """The config a measured case trained (its data folder never read: photos are counted by the caller)."""
    common = {"data": "unused", "epochs": 1, "limit": case["per_class"], "precision": case["precision"],
              "micro_batch": case["micro"], "image_size": case["image_size"], "decode_once": case["decode_once"],
              "device": "cpu"}
    if case["quick"]:
        return recipe("finetune", case["arch"], preset="quick", **{**common, "head_epochs": 2, "epochs": 0})
    return recipe("scratch", case["arch"], **common)


def label(case: dict) -> str:
    kind = f"fb{case['feature_batch']}" if case["quick"] else f"micro{case['micro']}"
    source = "once" if case["decode_once"] else "disk"
    return f"{case['arch']}-{case['precision']}-{kind}-{case['image_size']}px-{source}"


# The output-layer-only cases that ran the frozen layers as many photos at a time as a CPU run does.
FITTED = [c for c in CASES if not c["quick"] or c["feature_batch"] == feature_batch_size(torch.device("cpu"))]


def test_every_architecture_has_measured_figures():
    archs = {c["arch"] for c in CASES}
    assert archs <= set(memory.MEASURED)
    for figures in memory.MEASURED.values():
        assert set(figures) == {"base", "fp32_photo", "bf16_photo", "inference_base", "inference_photo"}
        assert all(v > 0 for v in figures.values())


def test_estimate_grows_with_micro_batch_and_image_size():
    base = TrainConfig(data="unused", mode="scratch", arch="resnet18", precision="fp32", epochs=1)
    by_micro = [memory.estimate_run_bytes(TrainConfig(**{**base.to_dict(), "micro_batch": m}), train_photos=2000)
                for m in (8, 16, 32, 64, 128)]
    assert by_micro == sorted(by_micro) and len(set(by_micro)) == len(by_micro)
    by_size = [memory.estimate_run_bytes(TrainConfig(**{**base.to_dict(), "micro_batch": 16, "image_size": s}),
                                         train_photos=2000) for s in (112, 160, 224, 320)]
    assert by_size == sorted(by_size) and len(set(by_size)) == len(by_size)
    more_photos = memory.estimate_run_bytes(TrainConfig(**{**base.to_dict(), "micro_batch": 16}), train_photos=4000)
    assert more_photos > by_micro[1]


PEAK_OF_A_RUN = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""  # a run's peak resident memory, measured by the kernel, in bytes: nothing else runs under this parent


@pytest.mark.parametrize(("arch", "micro"), [("resnet18", 16), ("mobilenet_v2", 0)])
def test_the_estimate_holds_for_a_run_measured_now(arch, micro, tiny_data, tmp_path):
    # not the table the figures were fitted on: a fresh run of this machine, its peak measured by the kernel
    config = recipe("scratch", arch, data=str(tiny_data), epochs=1, batch_size=16, image_size=64, micro_batch=micro,
                    precision="fp32", device="cpu")
    command = [sys.executable, "-m", "ftcore", "train", "--data", str(tiny_data), "--mode", "scratch", "--arch", arch,
               "--epochs", "1", "--batch-size", "16", "--image-size", "64", "--micro-batch", str(micro),
               "--precision", "fp32", "--device", "cpu", "--out", str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", PEAK_OF_A_RUN, *command], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=600)
    code, peak = (int(x) for x in done.stdout.split())
    assert code == 0, done.stderr[-2000:]
    estimate = memory.estimate_run_bytes(config)
    assert peak <= estimate <= 2 * peak, (peak, estimate)  # admitted with room to spare, not refused for want of it


@pytest.mark.parametrize("case", FITTED, ids=label)
def test_estimate_fits_each_measured_case(case):
    estimate = memory.estimate_run_bytes(config_of(case), train_photos=case["train_photos"])
    modelled = estimate / (1 + memory.SAFETY_MARGIN)  # the model itself, before the margin
    assert 0.75 <= modelled / case["peak_bytes"] <= 1.25
    assert estimate >= case["peak_bytes"]  # with the margin, no measured run needed more than admitted


def test_bf16_and_fp32_ordered_as_measured():
    for arch in {c["arch"] for c in CASES}:
        for micro in (16, 64):
            rows = {c["precision"]: c for c in CASES if c["arch"] == arch and not c["quick"] and c["decode_once"]
                    and c["micro"] == micro and c["image_size"] == 224}
            if set(rows) != {"fp32", "bf16"}:
                continue
            measured = rows["bf16"]["peak_bytes"] < rows["fp32"]["peak_bytes"]
            estimated = [memory.estimate_run_bytes(config_of(rows[p]), train_photos=128) for p in ("bf16", "fp32")]
            assert (estimated[0] < estimated[1]) == measured


def test_precision_override_and_auto_follow_fit(monkeypatch):
    config = TrainConfig(data="unused", mode="scratch", arch="mobilenet_v2", precision="auto", epochs=1)
    assert memory.training_precision(config) == "fp32"  # MobileNetV2 never trains in bf16 under auto
    assert memory.training_precision(config, "bf16") == "bf16"
    # the whole batch where it fits; bf16's smaller activations fit where fp32's do not
    fp32_whole = memory.estimate_run_bytes(TrainConfig(**{**config.to_dict(), "micro_batch": 128}), 0, "fp32")
    monkeypatch.setattr(memory, "total_bytes", lambda: round(fp32_whole / memory.FITS_SHARE) - 1)
    assert memory.cpu_micro_batch(config, "fp32") == 64 and memory.cpu_micro_batch(config, "bf16") == 128
    assert memory.estimate_run_bytes(config, 100, precision="fp32") == memory.estimate_run_bytes(
        TrainConfig(**{**config.to_dict(), "precision": "fp32"}), 100)


def test_decoded_photos_follow_decode_once_and_the_cap():
    config = TrainConfig(data="unused", mode="scratch", arch="resnet18", precision="fp32", epochs=1, micro_batch=16)
    streamed = TrainConfig(**{**config.to_dict(), "decode_once": False})
    assert memory.estimate_run_bytes(config, 2000) > memory.estimate_run_bytes(streamed, 2000)
    # past MAX_DECODED_BYTES the run streams from disk, and so does the estimate
    huge = 10**6
    assert memory.estimate_run_bytes(config, huge) == memory.estimate_run_bytes(streamed, huge)


def test_photos_counted_from_the_dataset(tiny_data):
    config = TrainConfig(data=str(tiny_data), mode="scratch", arch="resnet18", epochs=1, limit=5)
    counts = memory.photo_counts(config)
    assert counts == memory.PhotoCounts(train=10, evaluation=10)
    assert memory.estimate_run_bytes(config) == memory.estimate_from_counts(config, counts)


def test_largest_fitting_micro_batch_picks_the_largest_that_fits(tiny_data):
    config = TrainConfig(data=str(tiny_data), mode="scratch", arch="resnet50", precision="fp32", epochs=1)
    counts = memory.photo_counts(config)

    def need(micro: int) -> int:
        return memory.estimate_from_counts(TrainConfig(**{**config.to_dict(), "micro_batch": micro}), counts)

    assert memory.largest_fitting_micro_batch(config, (need(32) + need(64)) // 2) == 32
    assert memory.largest_fitting_micro_batch(config, need(64)) == 64
    assert memory.largest_fitting_micro_batch(config, need(128) + 1) == 128
    assert memory.largest_fitting_micro_batch(config, need(8)) == 8
    assert memory.largest_fitting_micro_batch(config, need(8) - 1) is None
    small = TrainConfig(**{**config.to_dict(), "batch_size": 24})  # never more photos per pass than the batch
    assert memory.largest_fitting_micro_batch(small, 10**15) == 24


def test_too_big_message_names_what_to_lower(monkeypatch):
    monkeypatch.setattr(memory, "total_bytes", lambda: 64 * memory.GB)  # auto takes the whole batch here
    config = TrainConfig(data="unused", arch="resnet50", precision="bf16", epochs=5)
    text = memory.too_big_message(config, int(11.2 * 1024**3), 8 * 1024**3)
    assert text == ("this run needs about 11.2 GB (resnet50, batch 128 in one pass at 224 px) but this machine has "
                    "8.0 GB; lower the batch size, the photos per forward pass or the image size")
    chunked = TrainConfig(data="unused", arch="resnet18", precision="fp32", epochs=5, image_size=320, micro_batch=16)
    text = memory.too_big_message(chunked, 5 * 1024**3, 4 * 1024**3)
    assert "(resnet18, batch 128 in passes of 16 at 320 px)" in text
    quick = recipe("finetune", "mobilenet_v2", preset="quick", data="unused")
    assert "output layer only" in memory.too_big_message(quick, 3 * 1024**3, 2 * 1024**3)


def test_the_machines_memory_is_read_from_meminfo_in_bytes(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20480000 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    assert memory.total_bytes() == 24576000 * 1024
    assert memory.available_bytes() == 20480000 * 1024
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    meminfo.write_text("MemTotal:       24576000 kB\n")  # kernels before 3.14 have no MemAvailable
    assert memory.available_bytes() == pages
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "missing")  # no /proc: macOS
    assert memory.total_bytes() == memory.available_bytes() == pages


@pytest.mark.skipif(not memory.MEMINFO.is_file(), reason="Linux's /proc/meminfo")
def test_on_linux_the_total_is_the_kernels_count_of_physical_pages():
    assert memory.total_bytes() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < memory.available_bytes() <= memory.total_bytes()
