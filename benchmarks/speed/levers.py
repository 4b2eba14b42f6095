"""Where a CPU training step's time goes, and what each speed lever gives, in one run on one machine.

    python -m benchmarks.speed.levers [--arch resnet18] [--batch 32] [--size 224] [--steps 4] [--isa native avx2]
                                      [--json FILE]

Every lever is measured in a fresh process on the same random batch, at the book's numerics (fp32, summed loss,
SGD with weight decay, BatchNorm over the whole batch): the median seconds of `--steps` training steps after one
warm-up step (whose time is reported too: it holds torch.compile's compilation), and the median of the same
count of evaluation passes (forward only, eval mode). `--isa avx2` runs each lever again with ATen's and oneDNN's
kernels capped at AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), as on a CPU without AVX-512 or bf16. The first
rows profile the channels-last step by operator (torch.profiler).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import arg_parser, machine_line, ratio, write_json
from ftcore.devices.machine import ISA_CAPS, machine_description, onednn_isa

MODULE = "benchmarks.speed.levers"  # each lever and the profile run in a fresh `python -m` of this module

# lever -> what it changes against "book" (the book's loop: NCHW, eager, BatchNorm left in for evaluation)
LEVERS = {
    "book": "NCHW, eager; evaluation with BatchNorm as a layer (the book's loop)",
    "channels-last": "channels-last memory format (ftcore's trainer)",
    "channels-last+fused-eval": "and BatchNorm folded into the convolutions for evaluation (ftcore's evaluate)",
    "channels-last+jit-eval": "and evaluation through torch.jit.freeze + optimize_for_inference",
    "channels-last+compile": "and torch.compile (inductor) of the training step's model",
    "channels-last+no-onednn": "with oneDNN off (ATen's own im2col + BLAS convolutions)",
    "channels-last+flush-denormal": "with denormal floats flushed to zero",
    "channels-last+omp-bind": "with OMP_PROC_BIND=close (threads pinned to cores)",
}


def child(lever: str, arch: str, batch: int, size: int, steps: int) -> dict:
    """Time `steps` training steps and evaluation passes of `lever` in this process."""
    import torch
    import torchvision
    from torch import nn

    from ftcore.models.build import fused_for_inference

    torch.manual_seed(0)
    if lever.endswith("no-onednn"):
        torch.backends.mkldnn.enabled = False
    if lever.endswith("flush-denormal"):
        torch.set_flush_denormal(True)
    fmt = torch.contiguous_format if lever == "book" else torch.channels_last
    net = getattr(torchvision.models, arch)(num_classes=2).to(memory_format=fmt)
    X = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-5, weight_decay=1e-3)
    loss = nn.CrossEntropyLoss(reduction="none")
    model = torch.compile(net) if lever.endswith("compile") else net

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss(model(X), y).sum().backward()
        optimizer.step()

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    first = timed(step)
    train = statistics.median(timed(step) for _ in range(steps))
    net.eval()
    with torch.inference_mode():
        if lever.endswith("fused-eval"):
            evaluator = fused_for_inference(net)
        elif lever.endswith("jit-eval"):
            evaluator = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))
        else:
            evaluator = net
        evaluator(X)
        evaluate = statistics.median(timed(lambda: evaluator(X)) for _ in range(steps))
    return {"lever": lever, "first_step_s": first, "step_s": train, "train_img_s": batch / train,
            "eval_img_s": batch / evaluate, "aten": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def profile(arch: str, batch: int, size: int) -> str:
    """The channels-last step's operators by self CPU time (two steps after a warm-up)."""
    import torch
    import torchvision
    from torch import nn
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    net = getattr(torchvision.models, arch)(num_classes=2).to(memory_format=torch.channels_last)
    X = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-5, weight_decay=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(X), y, reduction="sum").backward()
        optimizer.step()

    step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)


def run(lever: str, args: argparse.Namespace, isa: str) -> dict:
    """One lever in a fresh process under `isa`'s kernel caps."""
    env = {**os.environ, **ISA_CAPS[isa]}
    if lever.endswith("omp-bind"):
        env["OMP_PROC_BIND"] = "close"
    cmd = [sys.executable, "-m", MODULE, "--child", lever, "--arch", args.arch, "--batch",
           str(args.batch), "--size", str(args.size), "--steps", str(args.steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("LEVER ")]
    if proc.returncode or not lines:
        said = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("W")]
        return {"lever": lever, "error": f"exit status {proc.returncode}: {(said or ['no message'])[-1][:160]}"}
    return json.loads(lines[-1].removeprefix("LEVER "))


def against_book(row: dict, book: dict | None, key: str) -> str:
    """`row`'s figure against the book's step, or n/a where the book's lever did not run."""
    times = ratio(row[key], book[key] if book else None)
    return f"{times:6.2f}x" if times is not None else f"{'n/a':>7s}"


def main() -> None:
    """Print the profile and one row per lever and ISA; optionally save every figure as JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--isa", nargs="+", default=["native", "avx2"], choices=list(ISA_CAPS))
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("LEVER " + json.dumps(child(args.child, args.arch, args.batch, args.size, args.steps)), flush=True)
        return
    if args.profile:
        print(profile(args.arch, args.batch, args.size), flush=True)
        return
    print(machine_line(f"{args.arch}, batch {args.batch}, {args.size} px, fp32, median of {args.steps} steps after "
                       "one warm-up"), flush=True)
    report = {"machine": machine_description(), "arch": args.arch, "batch": args.batch, "size": args.size, "rows": []}
    for isa in args.isa:
        env = {**os.environ, **ISA_CAPS[isa]}
        print(f"\n## kernels {isa}: ATen and oneDNN capped at {ISA_CAPS[isa] or 'nothing'}; oneDNN ran "
              f"{onednn_isa(env)}", flush=True)
        prof = subprocess.run([sys.executable, "-m", MODULE, "--profile", "--arch", args.arch,
                               "--batch", str(args.batch), "--size", str(args.size)],
                              capture_output=True, text=True, env=env).stdout
        print(prof, flush=True)
        print(f"{'lever':30s} {'train img/s':>11s} {'x book':>7s} {'eval img/s':>10s} {'x book':>7s} "
              f"{'first step s':>12s}", flush=True)
        book = None
        for lever in args.levers:
            row = {**run(lever, args, isa), "isa": isa}
            report["rows"].append(row)
            if "error" in row:
                print(f"{lever:30s} failed: {row['error']}", flush=True)
                continue
            book = row if lever == "book" else book  # the ratios are against the book's step, or not shown

            print(f"{lever:30s} {row['train_img_s']:11.1f} {against_book(row, book, 'train_img_s')} "
                  f"{row['eval_img_s']:10.1f} {against_book(row, book, 'eval_img_s')} {row['first_step_s']:12.1f}",
                  flush=True)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
