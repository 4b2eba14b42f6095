"""The lesson in a minute, timed as the Train page runs it: its runs side by side in child processes through the
server's scheduler, from the button press until the last run has ended.

    python -m benchmarks.speed.lesson [--data DIR] [--weights FILE] [--seeds 0 1 2] [--kinds lesson lesson-lr
                                      lesson-groups] [--lr 5e-5] [--cpu-isa native|avx2] [--json FILE]

For each seed and kind (fine-tune vs scratch; three rates around --lr; the output layer's 10x on and off) it
prints every run's last held-out accuracy and the wall seconds of the whole lesson, then the mean and range over
the seeds. `--cpu-isa avx2` caps the children's kernels at AVX2 (no AVX-512, no native bf16), as on the laptops
the lesson is sized for.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from benchmarks.common import arg_parser, data_dir, machine_line, mean_range, weights_path, write_json
from ftcore.config import TrainConfig, recipe
from ftcore.devices.machine import ISA_CAPS, kernels_description, machine_description
from ftcore.lab import lesson
from ftcore.lab.experiments import KINDS
from ftcore.runs.local import LocalBackend
from ftcore.runs.series import Experiment


def run_lesson(kind: str, base: TrainConfig, runs_dir: str) -> dict:
    """One lesson as the Train page starts it (base.lr is the slider's rate); its runs' labels, accuracies and the
    wall seconds of the whole."""
    start = time.perf_counter()
    experiment = Experiment(kind, lesson.LESSONS[kind](base), runs_dir=runs_dir,
                            backend=LocalBackend(slots=1, check_memory=False)).start()
    experiment.join()
    wall = time.perf_counter() - start
    snap = experiment.snapshot()
    return {"kind": kind, "seed": base.seed, "wall_s": wall,
            "runs": [{"label": job.label, "status": job.status, "error": job.error,
                      "accs": [e.heldout_acc for e in job.epochs], "elapsed_s": job.elapsed} for job in snap.jobs]}


def main() -> None:
    """Print one row per lesson and seed, then the summary over seeds; optionally save everything as JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--kinds", nargs="+", default=list(lesson.LESSONS), choices=list(lesson.LESSONS))
    parser.add_argument("--lr", type=float, default=5e-5, help="the slider's rate (default: the book's 5e-5)")
    parser.add_argument("--cpu-isa", choices=list(ISA_CAPS), default="native")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.update(ISA_CAPS[args.cpu_isa])  # the children inherit the caps
    data = data_dir(args.data)
    weights = weights_path("mobilenet_v2", args.weights)
    print(machine_line(kernels_description(args.cpu_isa)), flush=True)
    print(f"# {lesson.scaled_down_text()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for seed in args.seeds:
            base = recipe("finetune", "mobilenet_v2", data=data, weights=weights, seed=seed, lr=args.lr)
            for kind in args.kinds:
                result = run_lesson(kind, base, runs_dir)
                results.append(result)
                accs = "; ".join(f"{r['label']}: {r['accs'][-1] if r['accs'] else r['status']}"
                                 for r in result["runs"])
                print(f"{KINDS[kind]}, seed {seed}: {result['wall_s']:.0f} s; {accs}", flush=True)
    print("\nover seeds (last held-out accuracy: mean, min-max; wall seconds of the whole lesson: mean, max)")
    for kind in args.kinds:
        rows = [r for r in results if r["kind"] == kind]
        walls = [r["wall_s"] for r in rows]
        print(f"{KINDS[kind]}: wall {statistics.mean(walls):.0f} s (max {max(walls):.0f} s)")
        for i, run in enumerate(rows[0]["runs"]):
            finals = [r["runs"][i]["accs"][-1] for r in rows if r["runs"][i]["accs"]]
            if finals:
                print(f"  {run['label']:44s} {mean_range(finals)}")
        if kind == "lesson":
            gaps = [r["runs"][0]["accs"][-1] - r["runs"][1]["accs"][-1] for r in rows
                    if r["runs"][0]["accs"] and r["runs"][1]["accs"]]
            print(f"  fine-tune ahead by {statistics.mean(gaps) * 100:.1f} points (least {min(gaps) * 100:.1f})")
    if args.json:
        write_json(args.json, {"machine": machine_description(), "kernels": kernels_description(args.cpu_isa),
                               "lesson": lesson.scaled_down_text(), "results": results})


if __name__ == "__main__":
    main()
