"""The benchmark command: `bench` times the book's loop against ftcore's trainer side by side, or each preset's
time to an accuracy (the measuring itself is `lab.bench`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..archs import ARCHITECTURES
from ..config import MODES, PRECISIONS, PRESETS, recipe
from ..data.dataset import check_image_folder
from ..data.download import find_data
from ..devices.machine import ISA_CAPS
from ..errors import FtcoreError
from ..lab.bench import run_bench, run_time_to_accuracy
from ..util.paths import atomic_write
from .args import preflight


def add_bench(sub: argparse._SubParsersAction) -> None:
    """`bench`: the book's loop against ftcore's trainer, side by side."""
    bench = sub.add_parser("bench", help="time the book's loop against ftcore's trainer, side by side")
    bench.add_argument("--data", metavar="DIR", help="ImageFolder root (default: the hot-dog set)")
    bench.add_argument("--arch", default="mobilenet_v2", choices=list(ARCHITECTURES),
                       help="architecture (default: mobilenet_v2, whose ImageNet weights ship with the shared data)")
    bench.add_argument("--weights", metavar="FILE", help="ImageNet weights file (default: as for train)")
    bench.add_argument("--mode", choices=MODES, default="finetune", help="recipe to time (default: finetune); "
                       "scratch needs no ImageNet weights and runs at the same speed")
    bench.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    bench.add_argument("--limit", type=int, default=None, metavar="N", help="images per class and split "
                       "(0 = all; default 100 for the speed table, all for --time-to-accuracy)")
    bench.add_argument("--batch-size", type=int, default=None, metavar="N", help="images per SGD step on both "
                       "sides (default: the book's 128)")
    bench.add_argument("--cpu-isa", choices=list(ISA_CAPS), default="native", help="native: this CPU's best "
                       "kernels; avx2: ATen's and oneDNN's kernels capped at AVX2 (no AVX-512, no native bf16), to "
                       "time this machine as a CPU without them; the table names the kernels that ran")
    bench.add_argument("--repeats", type=int, default=2, help="alternating rounds of reference, ftcore (default 2)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (both sides use it)")
    bench.add_argument("--precision", choices=PRECISIONS, default=None, help="ftcore's precision (default: auto)")
    bench.add_argument("--micro-batch", type=int, default=0, metavar="N", help="ftcore's images per "
                       "forward/backward (default 0: auto, the whole batch where it fits, as the book); 16 is "
                       "faster on a CPU in fp32 but changes BatchNorm's batch")
    bench.add_argument("--time-to-accuracy", action="store_true", help="instead: seconds from process start to "
                       "--target test accuracy for the book's loop (5 epochs) and each --presets (all photos)")
    bench.add_argument("--target", type=float, default=0.90, help="test accuracy to reach (default 0.90)")
    bench.add_argument("--presets", default="book,quick,best", help="ftcore presets to time (default: all)")
    bench.add_argument("--seeds", default=None, help="time to accuracy: comma-separated seeds, each run once per "
                       "seed, with the mean and range over them (default 0)")
    bench.add_argument("--no-reference", dest="reference", action="store_false",
                       help="skip the book's loop in --time-to-accuracy (it is the slowest run)")
    bench.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    bench.set_defaults(run=cmd_bench)


def bench_seeds(text: str | None, time_to_accuracy: bool) -> list[int]:
    """The seeds of `bench --seeds 0,1,2` (default [0]); only time to accuracy runs several."""
    if text is None:
        return [0]
    if not time_to_accuracy:
        raise FtcoreError("--seeds applies to --time-to-accuracy only; the speed table repeats with --repeats")
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FtcoreError(f"--seeds must be whole numbers separated by commas (got {text!r})") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise FtcoreError(f"--seeds must name at least one seed, each once (got {text!r})")
    return seeds


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: the side-by-side speed table, or time to accuracy."""
    data = args.data or find_data()
    if data is None:
        raise FtcoreError("no data given and no hot-dog set found; pass --data DIR or run "
                          "`python -m ftcore data --download`")
    check_image_folder(data)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise FtcoreError(f"unknown preset {unknown[0]!r} in --presets; choose from {', '.join(PRESETS)}")
    seeds = bench_seeds(args.seeds, args.time_to_accuracy)
    limit = args.limit if args.limit is not None else (0 if args.time_to_accuracy else 100)
    if args.batch_size is not None and args.batch_size < 1:
        raise FtcoreError("--batch-size must be at least 1")
    if args.epochs < 1 or args.repeats < 1:
        raise FtcoreError("--epochs and --repeats must be at least 1")
    if limit < 0 or args.micro_batch < 0:
        raise FtcoreError("--limit and --micro-batch must be 0 or more (0: all photos; auto micro-batch)")
    arch_mode = recipe(args.mode if not args.time_to_accuracy else "finetune", args.arch, data=str(data),
                       weights=args.weights)
    preflight(arch_mode)
    if args.time_to_accuracy:
        report = run_time_to_accuracy(str(data), args.arch, args.weights, args.target, presets, args.reference,
                                      limit or None, args.device, seeds, args.micro_batch, isa=args.cpu_isa)
    else:
        report = run_bench(str(data), args.arch, args.weights, args.mode, args.epochs, limit or None,
                           args.repeats, args.device, args.precision, args.micro_batch, batch_size=args.batch_size,
                           isa=args.cpu_isa)
    if args.json:
        with atomic_write(Path(args.json)) as f:
            f.write(json.dumps(report, indent=2).encode())
    return 0
