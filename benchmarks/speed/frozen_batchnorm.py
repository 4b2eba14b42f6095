"""Frozen copied layers and their BatchNorm: held in eval mode (ImageNet's statistics kept, fastai's train_bn=False)
against left in train mode (the statistics follow the photos), on the lesson's settings.

    python -m benchmarks.speed.frozen_batchnorm [--data DIR] [--weights FILE] [--seeds 0,1,2] [--out FILE]

Two ways of freezing, each with the copied layers' BatchNorm in eval and in train mode, over seeds: the book's
exercise (frozen from the start) and a frozen steer (the lesson's fine-tuning, its copied layers frozen by a
replayed steering change after its first epoch). Every run is the lesson's recipe (config.PRESETS["lesson"]) on
the hot-dog photos, trained in this process one after another; it prints the last epoch's held-out accuracy of
each and their means.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmarks.common import RESULTS, arg_parser, data_dir, machine_line, weights_path, write_report
from ftcore.config import FROZEN_BATCHNORM, recipe
from ftcore.records import SteerRecord
from ftcore.train.loop import fit
from ftcore.train.steering import Replay

WAYS = ("from the start", "steered after epoch 1")


def run_once(data: str, way: str, frozen_batchnorm: str, seed: int) -> dict:
    """One lesson run frozen `way`, with the copied layers' BatchNorm in `frozen_batchnorm` mode."""
    config = recipe("finetune", None, "lesson", data=data, seed=seed, frozen_batchnorm=frozen_batchnorm,
                    freeze_body=way == WAYS[0])
    steering = None
    if way == WAYS[1]:
        steering = Replay([SteerRecord(epoch=1.0, lr=0.0, head_lr=config.head_lr)])
    start = time.perf_counter()
    trained = fit(config, steering=steering)
    last = trained.history.final()
    return {"way": way, "batchnorm": frozen_batchnorm, "seed": seed, "heldout": trained.history.heldout,
            "accuracy": last.heldout_acc, "train_loss": last.train_loss,
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    """Run every way, mode and seed; print each run and the means; write the report."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None, help="ImageNet weights of mobilenet_v2 (default: as found)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"which of: {', '.join(WAYS)} (comma-separated)")
    parser.add_argument("--out", default=str(RESULTS / "frozen-batchnorm-cpu.txt"))
    args = parser.parse_args()
    os.environ["FTCORE_WEIGHTS"] = weights_path("mobilenet_v2", args.weights)
    data = data_dir(args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    ways = [way for way in WAYS if way in args.ways.split(",")]
    lines = [machine_line("the lesson's recipe, copied layers frozen, BatchNorm in eval or train mode", threads=True)]
    print(lines[0], flush=True)
    rows = []
    for seed in seeds:
        for way in ways:
            for mode in FROZEN_BATCHNORM:
                row = run_once(data, way, mode, seed)
                rows.append(row)
                print(row, flush=True)
    lines.append(f"{'frozen':24s} {'BatchNorm':10s} {'mean acc':>9s}  per seed")
    for way in ways:
        for mode in FROZEN_BATCHNORM:
            accs = [r["accuracy"] for r in rows if (r["way"], r["batchnorm"]) == (way, mode)]
            lines.append(f"{way:24s} {mode:10s} {statistics.mean(accs):9.3f}  "
                         + " ".join(f"{a:.3f}" for a in accs))
    write_report("\n".join(lines) + "\n", {"rows": rows}, Path(args.out))


if __name__ == "__main__":
    main()
