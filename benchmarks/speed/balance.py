"""Unequal classes: no balancing, a class-weighted loss and a class-balanced draw, on lopsided copies of the hot dogs.

    python -m benchmarks.speed.balance [--data DIR] [--weights FILE] [--ratios 1000:100 1000:250]
                                       [--recipes quick book] [--methods none loss sampler] [--seeds 0 1 2]
                                       [--minority hotdog] [--out benchmarks/results/balance-cpu.txt] [--resume]

Each ratio is a copy of the training photos with the first N of the majority class and the first M of the minority
class (file-name order), the test split as it is (500 + 500, so its accuracy is the balanced accuracy). Every
method trains MobileNetV2 from the shared ImageNet weights with each recipe (the book's fine-tuning: 224 px, 5
epochs, batch 128; quick: 20 output-layer epochs on cached features; issue: the book's at 160 px and lr 1e-4, as
the issue measured 123:21) and seed, seed by seed. Reported per run and as the mean
over seeds: the minority's recall and the balanced accuracy (the mean of the two classes' recalls) after the last
epoch.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, arg_parser, data_dir, machine_line, weights_path, write_json, write_report
from ftcore.config import BALANCE_METHODS, recipe
from ftcore.train.loop import fit

# The recipes measured: the lab's presets, and the small set's (the book's at 160 px and lr 1e-4).
RECIPES = {"quick": ("quick", {}), "book": ("book", {}), "issue": ("book", {"image_size": 160, "lr": 1e-4})}


def lopsided_copy(data: Path, root: Path, majority: str, minority: str, counts: tuple[int, int]) -> Path:
    """root/<N>-<M>/: the first N training photos of `majority`, the first M of `minority`, the test split whole."""
    target = root / f"{counts[0]}-{counts[1]}"
    for name, n in ((majority, counts[0]), (minority, counts[1])):
        (target / "train" / name).mkdir(parents=True)
        for photo in sorted((data / "train" / name).iterdir())[:n]:
            shutil.copy(photo, target / "train" / name / photo.name)
    shutil.copytree(data / "test", target / "test")
    return target


def main() -> None:
    """Train every ratio, recipe, method and seed; print each run, then the means."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--ratios", nargs="+", default=["1000:100", "1000:250"])
    parser.add_argument("--recipes", nargs="+", default=["quick", "book"], choices=list(RECIPES))
    parser.add_argument("--methods", nargs="+", default=list(BALANCE_METHODS), choices=BALANCE_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minority", default="hotdog", help="the class cut down (default hotdog)")
    parser.add_argument("--out", default=str(RESULTS / "balance-cpu.txt"))
    parser.add_argument("--resume", action="store_true", help="keep the runs --out's JSON holds and measure the rest")
    args = parser.parse_args()
    data, weights = Path(data_dir(args.data)), weights_path("mobilenet_v2", args.weights)
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    majority = next(name for name in classes if name != args.minority)
    header = machine_line(f"mobilenet_v2 fine-tune from {weights}; training photos {majority}:{args.minority} as "
                          f"given, test split of {data} whole")
    print(header, flush=True)
    out = Path(args.out)
    runs = []
    if args.resume and out.with_suffix(".json").is_file():
        runs = json.loads(out.with_suffix(".json").read_text())["runs"]
    with tempfile.TemporaryDirectory() as tmp:
        for ratio in args.ratios:
            counts = tuple(int(n) for n in ratio.split(":"))
            root = lopsided_copy(data, Path(tmp), majority, args.minority, counts)
            for preset in args.recipes:
                # seed by seed, every method each: a sweep stopped part-way still compares the methods
                for seed in args.seeds:
                    for method in args.methods:
                        if any((r["ratio"], r["recipe"], r["method"], r["seed"]) == (ratio, preset, method, seed)
                               for r in runs):
                            continue  # measured before this sweep was resumed
                        preset_name, changes = RECIPES[preset]
                        config = recipe("finetune", "mobilenet_v2", preset_name, data=str(root), weights=weights,
                                        seed=seed, balance=method, **changes)
                        trained = fit(config)
                        last = trained.history.final()
                        recalls = dict(zip(trained.classes, last.class_acc, strict=True))
                        run = {"ratio": ratio, "recipe": preset, "method": method, "seed": seed,
                               "minority_recall": recalls[args.minority], "majority_recall": recalls[majority],
                               "balanced_acc": last.balanced_acc, "test_acc": last.test_acc,
                               "per_epoch": [e.class_acc for e in trained.history.epochs]}
                        runs.append(run)
                        print(f"{ratio:9s} {preset:6s} {method:8s} seed {seed}: {args.minority} recall "
                              f"{run['minority_recall']:.3f}, {majority} recall {run['majority_recall']:.3f}, "
                              f"balanced {run['balanced_acc']:.3f}", flush=True)
                        # both files rewritten after every run, so a sweep stopped part-way keeps what it measured
                        text = summary(header, runs, args.minority)
                        out.write_text(text)
                        write_json(out.with_suffix(".json"), {"header": header, "runs": runs}, indent=2)
    write_report(summary(header, runs, args.minority), {"header": header, "runs": runs}, out)


def summary(header: str, runs: list[dict], minority: str) -> str:
    """The header, then one line per ratio, recipe and method measured: means over seeds with their range."""
    lines = [header, f"{'ratio':9s} {'recipe':6s} {'method':8s} {minority + ' recall':>16s} "
                     f"{'balanced acc':>16s}   (mean over seeds, min-max; seeds)"]
    groups = dict.fromkeys((r["ratio"], r["recipe"], r["method"]) for r in runs)
    for ratio, preset, method in groups:
        rows = [r for r in runs if (r["ratio"], r["recipe"], r["method"]) == (ratio, preset, method)]
        recall = spread([r["minority_recall"] for r in rows])
        balanced = spread([r["balanced_acc"] for r in rows])
        lines.append(f"{ratio:9s} {preset:6s} {method:8s} {recall:>16s} {balanced:>16s}   {len(rows)}")
    return "\n".join(lines) + "\n"


def spread(values: list[float]) -> str:
    """`0.812 (0.790-0.840)`."""
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
