"""Benchmark: the book's loop (`lab.reference`) against ftcore's trainer, side by side on one machine.

`python -m ftcore bench` runs both on the same data, architecture, hyperparameters and device, each in a
fresh process (so peak memory and warm caches are each its own), alternating reference / ftcore for
`--repeats` rounds, and prints the median of each figure with the ratio ftcore / reference.

`python -m ftcore bench --time-to-accuracy` instead runs the book's recipe through the reference loop and
each ftcore preset once per `--seeds` seed, and reports the wall seconds from process start until the test
accuracy first reaches `--target`, plus the best accuracy each reached (over several seeds: mean and range).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from ..config import PRESETS, TrainConfig, recipe
from ..data.dataset import check_image_folder, open_split
from ..devices.machine import ISA_CAPS, kernels_description, machine_description
from ..devices.placement import resolve_devices
from ..errors import FtcoreError
from ..models.build import build_model
from ..records import EpochEnded
from ..train.loop import fit
from ..train.plan import micro_batch_size
from .reference import train_fine_tuning

# What each side reports after its run (one JSON line on stdout).


@dataclass
class SideResult:
    """One run of one side: its epochs and its resource use."""

    side: str  # "reference" or "ftcore" or a preset name
    epochs: list[dict] = field(default_factory=list)  # epoch, stage, train_loss, train_acc, test_acc, timings, at
    peak_rss_mb: float = 0.0  # the process's peak resident memory
    peak_gpu_mb: float | None = None  # torch.cuda.max_memory_allocated, on GPU runs
    precision: str = "fp32"
    devices: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0  # from process start (as the parent launched it) to the end of the run
    micro_batch: int | None = None  # photos per forward pass of an ftcore run of every layer: BatchNorm's batch
    aten_kernels: str = ""  # the vectorised kernels ATen ran (torch.backends.cpu.get_cpu_capability)

    def rate(self, key: str, count: str = "examples") -> float:
        """Images per second over the run's full-training epochs by the `key` timer."""
        rows = [e for e in self.epochs if e.get("stage", "full") == "full"]
        seconds = sum(e[key] for e in rows)
        return sum(e[count] for e in rows) / seconds if seconds else 0.0

    def first_reaching(self, target: float) -> float | None:
        """Seconds from process start until test accuracy first reached `target`, or None."""
        return next((e["at"] for e in self.epochs if e["test_acc"] is not None and e["test_acc"] >= target), None)

    def best_acc(self) -> float:
        """The best test accuracy over the run."""
        return max((e["test_acc"] for e in self.epochs if e["test_acc"] is not None), default=0.0)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


# --------------------------------------------------------------------------------------------------
# The child side: one run, reported as JSON.


def run_reference(spec: dict, launched: float) -> SideResult:
    """The book's loop on `spec` (its recipe: lr, param groups from config.recipe)."""
    config = recipe(spec["mode"], spec["arch"], data=spec["data"], weights=spec.get("weights"),
                    batch_size=spec.get("batch_size"))
    torch.manual_seed(spec.get("seed", 0))
    classes = check_image_folder(spec["data"])
    net, _ = build_model(config.arch, len(classes), pretrained=config.mode == "finetune", weights_file=config.weights)
    devices = resolve_devices(spec.get("device", "auto"))  # "auto" is d2l.try_all_gpus(), plus MPS
    result = SideResult("reference", devices=[str(d) for d in devices])

    def on_epoch(e) -> None:
        result.epochs.append({**asdict(e), "stage": "full", "test_examples": spec["test_size"],
                              "at": time.time() - launched})

    train_fine_tuning(net, spec["data"], config.arch, config.lr, config.batch_size, spec["epochs"],
                      config.param_groups, config.image_size, spec.get("limit"), on_epoch, devices)
    return result


def run_ftcore(spec: dict, launched: float) -> SideResult:
    """ftcore's trainer on `spec` with `spec["preset"]` (default: the book's recipe)."""
    overrides = {"epochs": spec.get("epochs"), "limit": spec.get("limit"), "device": spec.get("device", "auto"),
                 "precision": spec.get("precision"), "seed": spec.get("seed", 0),
                 "micro_batch": spec.get("micro_batch") or None, "batch_size": spec.get("batch_size")}
    config = recipe(spec["mode"], spec["arch"], spec.get("preset", "book"), data=spec["data"],
                    weights=spec.get("weights"), **overrides)
    result = SideResult(spec.get("label", "ftcore"))

    def on_event(event) -> None:
        if isinstance(event, EpochEnded):
            result.epochs.append({**asdict(event.record), "test_examples": spec["test_size"],
                                  "at": time.time() - launched})

    history = fit(config, on_event).history
    result.precision, result.devices = history.precision, history.devices
    if config.epochs:
        result.micro_batch = micro_batch_size(config, torch.device(history.devices[0]), history.precision)
        result.side += batchnorm_suffix(result.micro_batch, config.batch_size)
    return result


def child_main(spec_json: str) -> None:
    """Entry of a benchmark child process: run one side, print its SideResult as JSON."""
    spec = json.loads(spec_json)
    launched = spec["launched"]
    result = run_reference(spec, launched) if spec["side"] == "reference" else run_ftcore(spec, launched)
    result.wall_seconds = time.time() - launched
    result.peak_rss_mb = peak_rss_mb()
    result.aten_kernels = torch.backends.cpu.get_cpu_capability()
    if torch.cuda.is_available():
        result.peak_gpu_mb = torch.cuda.max_memory_allocated() / 1024**2
    print("BENCH-RESULT " + json.dumps(asdict(result)), flush=True)


# --------------------------------------------------------------------------------------------------
# The parent side: launch, collect, tabulate.


def launch(spec: dict, timeout: float | None = None) -> SideResult:
    """Run one side in a fresh Python process (its kernels capped as spec["isa"] says) and return what it
    reported."""
    spec = {**spec, "launched": time.time()}
    cmd = [sys.executable, "-m", "ftcore.lab.bench", json.dumps(spec)]
    env = {**os.environ, **ISA_CAPS[spec.get("isa", "native")]}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FtcoreError(f"benchmark run {spec['side']} failed ({tail})")
    data = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    return SideResult(**data)


def speed_rows(ref: list[SideResult], fast: list[SideResult]) -> list[tuple[str, float, float, str]]:
    """(figure, reference median, ftcore median, format) rows of the side-by-side table."""
    def med(results: list[SideResult], fn) -> float:
        return statistics.median(fn(r) for r in results)

    return [
        ("train images/sec (compute, the book's timer)", med(ref, lambda r: r.rate("seconds")),
         med(fast, lambda r: r.rate("seconds")), ".1f"),
        ("train images/sec (wall, data loading included)", med(ref, lambda r: r.rate("wall_seconds")),
         med(fast, lambda r: r.rate("wall_seconds")), ".1f"),
        ("eval images/sec", med(ref, lambda r: r.rate("eval_seconds", "test_examples")),
         med(fast, lambda r: r.rate("eval_seconds", "test_examples")), ".1f"),
        ("peak RSS (MB)", med(ref, lambda r: r.peak_rss_mb), med(fast, lambda r: r.peak_rss_mb), ".0f"),
        *([("peak GPU memory (MB)", med(ref, lambda r: r.peak_gpu_mb or 0), med(fast, lambda r: r.peak_gpu_mb or 0),
            ".0f")] if ref[0].peak_gpu_mb is not None else []),
        ("last test accuracy", med(ref, lambda r: r.epochs[-1]["test_acc"]),
         med(fast, lambda r: r.epochs[-1]["test_acc"]), ".3f"),
        ("whole process, wall seconds", med(ref, lambda r: r.wall_seconds), med(fast, lambda r: r.wall_seconds),
         ".1f"),
    ]


def format_speed_table(rows: list[tuple[str, float, float, str]], precision: str) -> str:
    """The side-by-side table with ratios."""
    lines = [f"{'':48s} {'reference':>10s} {'ftcore':>10s} {'ftcore/ref':>10s}"]
    for name, ref, fast, fmt in rows:
        ratio = f"{fast / ref:.2f}x" if ref else "n/a"
        lines.append(f"{name:48s} {ref:>10{fmt}} {fast:>10{fmt}} {ratio:>10s}")
    lines.append(f"(ftcore precision: {precision}; reference: fp32 NCHW, DataLoader decoding every epoch)")
    return "\n".join(lines)


def format_tta_table(results: list[SideResult], target: float) -> str:
    """Time-to-accuracy: seconds from process start to `target`, best accuracy, total wall."""
    lines = [f"{'run':44s} {'reaches ' + format(target, '.2f') + ' at':>16s} {'best acc':>9s} {'total wall':>11s}"]
    for r in results:
        lines.append(f"{r.side:44s} {reached_text(r, target):>16s} {r.best_acc():9.3f} {r.wall_seconds:9.0f} s")
    return "\n".join(lines)


def reached_text(result: SideResult, target: float) -> str:
    """When `result` first reached `target` test accuracy, as "N s" from its process start, or "never"."""
    reached = result.first_reaching(target)
    return f"{reached:.0f} s" if reached is not None else "never"


def test_size(data: str, limit: int | None) -> int:
    """Photos in the test split after `limit` (what each evaluation pass covers)."""
    return len(open_split(data, "test", None, limit))


def run_bench(data: str, arch: str, weights: str | None, mode: str, epochs: int, limit: int | None, repeats: int,
              device: str, precision: str | None, micro_batch: int = 0, out=print, batch_size: int | None = None,
              isa: str = "native") -> dict:
    """The speed comparison: alternate reference / ftcore `repeats` times; print and return the table."""
    base = {"data": data, "arch": arch, "weights": weights, "mode": mode, "epochs": epochs, "limit": limit,
            "device": device, "precision": precision, "micro_batch": micro_batch, "test_size": test_size(data, limit),
            "batch_size": batch_size, "isa": isa}
    kernels = kernels_description(isa)
    out(f"benchmark on {machine_description()}: {arch} {mode}, book recipe, {epochs} epoch(s), "
        f"batch {batch_size or TrainConfig.default('batch_size')}, limit {limit or 'none'}, {repeats} round(s), "
        f"ftcore micro-batch {micro_batch or 'auto'}; {kernels}")
    ref, fast = [], []
    for round_ in range(1, repeats + 1):
        ref.append(launch({**base, "side": "reference"}))
        out(f"  round {round_}: reference {ref[-1].rate('seconds'):.1f} img/s")
        fast.append(launch({**base, "side": "ftcore"}))
        out(f"  round {round_}: ftcore    {fast[-1].rate('seconds'):.1f} img/s ({fast[-1].precision})")
    rows = speed_rows(ref, fast)
    out(format_speed_table(rows, fast[0].precision))
    return {"machine": machine_description(), "kernels": kernels, "spec": base, "rows": [r[:3] for r in rows],
            "reference": [asdict(r) for r in ref], "ftcore": [asdict(r) for r in fast]}


def run_time_to_accuracy(data: str, arch: str, weights: str | None, target: float, presets: list[str],
                         reference: bool, limit: int | None, device: str, seeds: list[int] | None = None,
                         micro_batch: int = 0, out=print, isa: str = "native") -> dict:
    """Each run in its own process: the book's loop (5 epochs) and each ftcore preset, once per seed (in that
    order, seed after seed); print the table (and, over several seeds, its summary) and return every run."""
    seeds = seeds or [0]
    base = {"data": data, "arch": arch, "weights": weights, "mode": "finetune", "limit": limit, "device": device,
            "micro_batch": micro_batch, "test_size": test_size(data, limit), "isa": isa}
    out(f"time to accuracy on {machine_description()}: {arch} fine-tune, target {target:.2f}, "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; {kernels_description(isa)}")
    results = []
    for seed in seeds:
        seed_name = f", seed {seed}" if len(seeds) > 1 else ""
        if reference:
            results.append(launch({**base, "side": "reference", "epochs": 5, "seed": seed}))
            results[-1].side = "book recipe, reference loop" + seed_name
            out(f"  {results[-1].side}: best {results[-1].best_acc():.3f} in {results[-1].wall_seconds:.0f} s")
        for preset in presets:
            results.append(launch({**base, "side": "ftcore", "preset": preset, "seed": seed,
                                   "label": f"ftcore preset {preset}"}))
            results[-1].side += seed_name  # after the BatchNorm suffix run_ftcore adds to its name
            out(f"  {results[-1].side}: best {results[-1].best_acc():.3f} in {results[-1].wall_seconds:.0f} s")
    out(format_tta_table(results, target))
    if len(seeds) > 1:
        out(format_seed_summary(results))
    return {"machine": machine_description(), "target": target, "seeds": seeds, "spec": base,
            "runs": [asdict(r) for r in results]}


def batchnorm_suffix(micro_batch: int, batch_size: int) -> str:
    """How a run's name says what BatchNorm saw: ", whole batch" (the book's) or ", micro-batch N"."""
    return ", whole batch" if micro_batch >= batch_size else f", micro-batch {micro_batch}"


def trains_all_layers(preset: str) -> bool:
    """Whether `preset` has epochs of every layer (where micro-batches matter), not only output-layer epochs."""
    return PRESETS[preset].get("epochs", 1) > 0


def final_acc(result: SideResult) -> float:
    """The last test accuracy of a run (0 when it was never tested)."""
    return next((e["test_acc"] for e in reversed(result.epochs) if e["test_acc"] is not None), 0.0)


def format_seed_summary(results: list[SideResult]) -> str:
    """Runs of the same kind over several seeds: mean, min and max of the best and the final test accuracy."""
    kinds: dict[str, list[SideResult]] = {}
    for r in results:
        kinds.setdefault(r.side.rsplit(", seed ", 1)[0], []).append(r)
    lines = [f"{'over seeds':38s} {'runs':>4s} {'best acc: mean (min-max)':>26s} "
             f"{'final acc: mean (min-max)':>27s} {'mean wall':>10s}"]
    for kind, runs in kinds.items():
        best = [r.best_acc() for r in runs]
        final = [final_acc(r) for r in runs]
        lines.append(f"{kind:38s} {len(runs):4d} {statistics.mean(best):>12.3f} ({min(best):.3f}-{max(best):.3f}) "
                     f"{statistics.mean(final):>13.3f} ({min(final):.3f}-{max(final):.3f}) "
                     f"{statistics.mean(r.wall_seconds for r in runs):8.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    child_main(sys.argv[1])
