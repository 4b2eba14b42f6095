"""The quick and best presets chosen on a validation split and reported on test, beside today's test-only runs.

    python -m benchmarks.speed.presets_on_val [--data DIR] [--weights FILE] [--seeds 0 1 2] [--val-fraction 0.2]

For each preset and seed, two runs of MobileNetV2 fine-tuning on the book's layout:
- "test only": the book's way, every epoch measured on test (what docs/benchmarks.md's preset figures were);
- "val chosen": `--val-fraction` of each class of train/ held out; every epoch measured on val, and test
  measured once, at the end.
Prints one row per run and the mean over seeds; wall time is the whole `fit`, photos decoded included.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import arg_parser, data_dir, fmt, machine_line, mean_range, weights_path
from ftcore.config import recipe
from ftcore.train.loop import fit


def main() -> None:
    """Print one row per preset, seed and variant, then the means."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--presets", nargs="+", default=["quick", "best"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args()
    data = data_dir(args.data)
    weights = weights_path(args.arch, args.weights)
    print(machine_line(f"{args.arch} fine-tune on {data}; val: {args.val_fraction:.0%} of each class of train/ held "
                       "out (split seed 0)"))
    print(f"{'preset':7s} {'variant':11s} {'seed':>4s} {'train':>5s} {'val acc':>7s} {'best val':>8s} "
          f"{'test acc':>8s} {'best test':>9s} {'wall':>6s}")
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for preset in args.presets:
        for seed in args.seeds:
            for variant, val_fraction in (("test only", 0.0), ("val chosen", args.val_fraction)):
                config = recipe("finetune", args.arch, preset, data=data, weights=weights, seed=seed,
                                val_fraction=val_fraction)
                start = time.perf_counter()
                history = fit(config).history
                wall = time.perf_counter() - start
                per_epoch = [e.heldout_acc for e in history.epochs if e.heldout_acc is not None]
                if history.heldout == "val":
                    val, best_val, test, best_test = per_epoch[-1], max(per_epoch), history.test_acc, None
                else:
                    val, best_val, test, best_test = None, None, per_epoch[-1], max(per_epoch)
                rows.setdefault((preset, variant), []).append((test, wall))
                trained = sum(history.split["counts"]["train"].values())
                print(f"{preset:7s} {variant:11s} {seed:4d} {trained:5d} {fmt(val, '.3f'):>7s} "
                      f"{fmt(best_val, '.3f'):>8s} {fmt(test, '.3f'):>8s} {fmt(best_test, '.3f'):>9s} {wall:5.0f}s",
                      flush=True)
    print("\nmean over seeds: final test accuracy (min-max), wall")
    for (preset, variant), values in rows.items():
        tests = [t for t, _ in values]
        print(f"{preset:7s} {variant:11s} {mean_range(tests)}, {statistics.mean(w for _, w in values):.0f} s")


if __name__ == "__main__":
    main()
