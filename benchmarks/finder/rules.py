"""Which suggestion rule trains well: every rule's suggestion trained for 5 epochs, per dataset, mode and seed.

    python -m benchmarks.finder.rules [--data DIR] [--weights FILE] [--seeds 0 1 2] [--image-size 64]
                                      [--datasets ...] [--recipes ...] [--keep edge/start]
                                      [--out benchmarks/results/lr-rules-cpu.txt]

For each dataset (the hot-dog set and two subsets built from it in a temporary folder, in other layouts and with
very different steps per epoch), each recipe (fine-tune and scratch at batch 32; the quick preset, whose finder
steps the output layer alone on cached features) and each seed:

1. the finder runs once with the lab's stop rule; fastai's stop rule is replayed on the same losses
   (`lr_find.stop.stop_index`), so both stop rules read the same steps up to where each would have ended;
2. every rule's suggestion under each stop rule (`lr_find.suggest.Rule`: fastai's four and the lr at the lowest loss
   itself) and the recipe's default rate are each trained for `--epochs` epochs with that seed;
3. the rule with the best mean accuracy is the one the lab keeps; a 5-rate sweep (a half-decade apart) around
   its suggestion is trained for each seed, to see how far its suggestion is from the best rate near it.

Rates are trained on a grid of four per decade (each suggestion rounded to the nearest), so that rules that
point at the same place share their runs; each training is cached in `<out>.runs.jsonl`, so a rerun resumes.
Prints a report, writes it to --out and the raw numbers beside it as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import arg_parser, data_dir, weights_path, write_report
from ftcore.config import TrainConfig, recipe
from ftcore.devices.machine import machine_description
from ftcore.lr_find.finding import FinderSettings, LrFinding, read_curve
from ftcore.lr_find.range_test import find_lr
from ftcore.lr_find.stop import StopRule, stop_index
from ftcore.lr_find.suggest import DEFAULT_RULE
from ftcore.train.loop import fit

ARCH = "mobilenet_v2"
RECIPES = {  # name -> (mode, preset, batch size): the full-network recipes at the lesson's batch
    "fine-tune": ("finetune", "book", 32),
    "scratch": ("scratch", "book", 32),
    "quick": ("finetune", "quick", 128),
}
DATASETS = ("hotdog", "hotdog-300", "hotdog-60")  # build_datasets' names
SWEEP = (0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0)  # the sweep around the kept rule's suggestion
SWEEP_NAMES = ("x0.1", "x0.32", "x1", "x3.2", "x10")
LIFTED = f"{DEFAULT_RULE}+run"  # the default rule's pick raised for its run (lr_find.suggest.for_the_run)
STUDY_SIZE = 160  # the stop rules are also read on fine-tuning curves at the size issue 21 measured


def grid(lr: float) -> float:
    """`lr` on a grid of four rates per decade (1, 1.8, 3.2, 5.6), two significant digits."""
    return float(f"{10 ** (round(math.log10(lr) * 4) / 4):.1e}")


def draw(split: Path, count: int | None, rng: random.Random) -> dict[str, list[Path]]:
    """class -> `count` photos of `split` drawn at random (not the first ones; all of them for None)."""
    drawn = {}
    for class_dir in sorted(split.iterdir()):
        photos = sorted(class_dir.iterdir())
        drawn[class_dir.name] = photos if count is None else rng.sample(photos, count)
    return drawn


def copy(photos: dict[str, list[Path]], split: Path) -> None:
    """Copy each class's photos into split/<class>/."""
    for name, files in photos.items():
        (split / name).mkdir(parents=True)
        for photo in files:
            shutil.copyfile(photo, split / name / photo.name)  # the lab refuses links that leave the folder


def build_datasets(source: Path, folder: Path) -> dict[str, tuple[str, str]]:
    """name -> (path, what it is): the hot-dog set itself and two subsets of it in other layouts, each with the
    whole test split."""
    rng = random.Random(0)
    test = draw(source / "test", None, rng)
    small = folder / "hotdog-60"
    copy(draw(source / "train", 60, rng), small / "train")
    copy(test, small / "test")
    medium = folder / "hotdog-300"
    pool = draw(source / "train", 400, rng)
    copy({name: files[:300] for name, files in pool.items()}, medium / "train")
    copy({name: files[300:] for name, files in pool.items()}, medium / "val")
    copy(test, medium / "test")
    return {"hotdog": (str(source), "the shared hot-dog set, train/ + test/: 1000 training photos per class"),
            "hotdog-300": (str(medium), "train/ + val/ + test/: 300 training and 100 validation photos per class "
                           "drawn at random"),
            "hotdog-60": (str(small), "train/ + test/: 60 training photos per class drawn at random")}


class RunCache:
    """Trainings already measured, one JSON line each, keyed by dataset, recipe, lr and seed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.rows[self.key(row["dataset"], row["recipe"], row["lr"], row["seed"])] = row

    @staticmethod
    def key(dataset: str, recipe_name: str, lr: float, seed: int) -> str:
        """The cache key."""
        return f"{dataset}|{recipe_name}|{lr:.1e}|{seed}"

    def get(self, dataset: str, recipe_name: str, lr: float, seed: int) -> dict | None:
        """A measured training, or None."""
        return self.rows.get(self.key(dataset, recipe_name, lr, seed))

    def put(self, row: dict) -> None:
        """Record a training."""
        self.rows[self.key(row["dataset"], row["recipe"], row["lr"], row["seed"])] = row
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def config_for(args: argparse.Namespace, data: str, recipe_name: str, seed: int,
               lr: float | None = None) -> TrainConfig:
    """The recipe at this benchmark's scale."""
    mode, preset, batch = RECIPES[recipe_name]
    return recipe(mode, ARCH, preset, data=data, weights=args.weights, batch_size=batch, image_size=args.image_size,
                  seed=seed, epochs=args.epochs if preset == "book" else None, lr=lr)


def train(args: argparse.Namespace, cache: RunCache, dataset: str, data: str, recipe_name: str, lr: float,
          seed: int) -> float:
    """Final test accuracy of a training at `lr` (cached)."""
    row = cache.get(dataset, recipe_name, lr, seed)
    if row is None:
        start = time.perf_counter()
        history = fit(config_for(args, data, recipe_name, seed, lr)).history
        accuracy = history.test_acc if history.test_acc is not None else history.final_heldout()
        row = {"dataset": dataset, "recipe": recipe_name, "lr": lr, "seed": seed, "accuracy": accuracy,
               "wall_s": round(time.perf_counter() - start, 1)}
        cache.put(row)
        print(f"  trained {dataset} {recipe_name} lr {lr:.1e} seed {seed}: {accuracy:.3f} in {row['wall_s']:.0f} s",
              flush=True)
    return row["accuracy"]


def replay(finding: LrFinding, stop: StopRule) -> LrFinding:
    """`finding` (recorded under the lab's stop rule, which runs longest) as `stop` would have ended it, read
    again by every rule."""
    settings = FinderSettings(stop_rule=stop)
    end = stop_index(finding.losses, stop, settings.half_window)
    end = len(finding.losses) if end is None else min(len(finding.losses), end + 1)
    return read_curve(LrFinding(lrs=finding.lrs[:end], losses=finding.losses[:end], steps=settings.steps,
                                diverged=finding.diverged or end < len(finding.losses), run_steps=finding.run_steps,
                                output_layer_only=finding.output_layer_only),
                      settings)


def findings(args: argparse.Namespace, data: str, recipe_name: str, seed: int) -> dict:
    """The finder's suggestions for every rule under both stop rules, from one test."""
    settings = FinderSettings(stop_rule=StopRule.START)
    start = time.perf_counter()
    finding = find_lr(config_for(args, data, recipe_name, seed), settings)
    out = {"finder_s": round(time.perf_counter() - start, 1), "steps": {}, "suggestions": {}, "notes": {},
           "curve": {"lrs": finding.lrs, "losses": finding.losses}}
    for stop in StopRule:
        replayed = replay(finding, stop)
        out["steps"][stop.value] = len(replayed.losses)
        out["notes"][stop.value] = replayed.note
        for rule, lr in replayed.suggestions.items():
            out["suggestions"][f"{rule}/{stop.value}"] = lr
        # the lab's own suggestion: the default rule's pick, lifted for a short run
        out["suggestions"][f"{LIFTED}/{stop.value}"] = replayed.suggestion
    out["run_steps"] = finding.run_steps
    return out


def measure(args: argparse.Namespace, cache: RunCache, datasets: dict[str, tuple[str, str]]) -> dict:
    """Phase 1: every candidate's suggestion and the default, trained; phase 2: the sweep around the kept rule."""
    results = {"machine": machine_description(), "arch": ARCH, "epochs": args.epochs, "image_size": args.image_size,
               "seeds": args.seeds, "datasets": {name: what for name, (_, what) in datasets.items()}, "cells": {}}
    for dataset, (data, _) in datasets.items():
        for recipe_name in args.recipes:
            default = config_for(args, data, recipe_name, 0).lr
            cell = results["cells"].setdefault(f"{dataset}|{recipe_name}", {"default_lr": default, "seeds": {}})
            for seed in args.seeds:
                found = findings(args, data, recipe_name, seed)
                print(f"# {dataset} {recipe_name} seed {seed}: finder {found['finder_s']:.0f} s, steps "
                      f"{found['steps']}; " + ", ".join(f"{k} {v:.1e}" if v else f"{k} none"
                                                         for k, v in found["suggestions"].items()), flush=True)
                found["default"] = train(args, cache, dataset, data, recipe_name, default, seed)
                found["trained"] = {}
                for candidate, lr in found["suggestions"].items():
                    # no clear answer: the page keeps the default rate, so that is what this candidate trains at
                    found["trained"][candidate] = (found["default"] if lr is None else
                                                   train(args, cache, dataset, data, recipe_name, grid(lr), seed))
                cell["seeds"][str(seed)] = found
    kept = args.keep or best_candidate(results)
    results["kept"] = kept
    for dataset, (data, _) in datasets.items():
        for recipe_name in args.recipes:
            cell = results["cells"][f"{dataset}|{recipe_name}"]
            for seed in args.seeds:
                found = cell["seeds"][str(seed)]
                lr = found["suggestions"][kept]
                found["sweep"] = {} if lr is None else {
                    f"{grid(lr * k):.1e}": train(args, cache, dataset, data, recipe_name, grid(lr * k), seed)
                    for k in SWEEP}
    return results


def stop_study(args: argparse.Namespace, data: str) -> list[dict]:
    """Fine-tuning curves at the issue's scale (160 px, batch 32, the hot-dog set): where each stop rule ends
    them, and what each rule suggests under each (finder only; no training)."""
    rows = []
    for seed in args.seeds:
        config = recipe("finetune", ARCH, data=data, weights=args.weights, batch_size=32, image_size=STUDY_SIZE,
                        seed=seed)
        finding = find_lr(config, FinderSettings(stop_rule=StopRule.START))
        row = {"seed": seed, "steps": {}, "suggestions": {}}
        for stop in StopRule:
            replayed = replay(finding, stop)
            row["steps"][stop.value] = len(replayed.losses)
            row["suggestions"][stop.value] = replayed.suggestions
        row["lowest_loss"] = min(finding.smoothed)
        rows.append(row)
        print(f"# stop rules, {STUDY_SIZE} px seed {seed}: {row}", flush=True)
    return rows


def candidate_means(results: dict) -> dict[str, float]:
    """Each candidate's accuracy, averaged over datasets, recipes and seeds."""
    totals: dict[str, list[float]] = {}
    for cell in results["cells"].values():
        for found in cell["seeds"].values():
            for candidate, accuracy in found["trained"].items():
                totals.setdefault(candidate, []).append(accuracy)
    return {candidate: statistics.mean(values) for candidate, values in totals.items()}


def best_candidate(results: dict) -> str:
    """The rule (under either stop rule) with the best mean accuracy; on a tie, under the lab's stop rule."""
    means = candidate_means(results)
    return max(means, key=lambda c: (round(means[c], 6), c.endswith(f"/{FinderSettings().stop_rule}")))


def report(results: dict) -> str:
    """The tables docs/benchmarks.md quotes."""
    seeds = results["seeds"]
    lines = [f"Learning-rate finder rules: {results['arch']}, {results['epochs']} epochs, {results['image_size']} px, "
             f"seeds {', '.join(map(str, seeds))}; finder of {FinderSettings().steps} steps from "
             f"{FinderSettings().start_lr:g} to {FinderSettings().end_lr:g}",
             f"machine: {results['machine']}", ""]
    lines += [f"{name}: {what}" for name, what in results["datasets"].items()]
    candidates = list(next(iter(next(iter(results["cells"].values()))["seeds"].values()))["suggestions"])
    lines += ["", "Mean final test accuracy over the seeds (suggested lr: median over seeds; none = no clear "
              "answer, the default kept):", ""]
    header = f"{'dataset / recipe':24s} {'default':>14s} " + " ".join(f"{c:>20s}" for c in candidates)
    lines.append(header)
    for name, cell in results["cells"].items():
        runs = list(cell["seeds"].values())
        parts = [f"{name.replace('|', ' / '):24s} {statistics.mean(r['default'] for r in runs):6.3f} "
                 f"({cell['default_lr']:.0e})"]
        for c in candidates:
            lrs = [r["suggestions"][c] for r in runs if r["suggestions"][c]]
            lr = f"{statistics.median(lrs):.1e}" if lrs else "none"
            parts.append(f"{statistics.mean(r['trained'][c] for r in runs):6.3f} ({lr:>7s}) "
                         f"{'':>3s}")
        lines.append(" ".join(parts))
    means = candidate_means(results)
    lines += ["", "Mean over every dataset, recipe and seed: " + ", ".join(
        f"{c} {v:.3f}" for c, v in sorted(means.items(), key=lambda kv: -kv[1]))]
    kept = results["kept"]
    lines += ["", f"Kept: {kept}. Its suggestion against a sweep of five rates half a decade apart around it, per "
              "seed (best of the sweep, and the default):", ""]
    for name, cell in results["cells"].items():
        for seed, found in cell["seeds"].items():
            if not found["sweep"]:
                lines.append(f"{name.replace('|', ' / '):24s} seed {seed}: no clear answer; the default "
                             f"{cell['default_lr']:.0e} kept ({found['default']:.3f})")
                continue
            best_lr, best = max(found["sweep"].items(), key=lambda kv: kv[1])
            at = found["trained"][kept]
            lines.append(f"{name.replace('|', ' / '):24s} seed {seed}: suggestion {found['suggestions'][kept]:.1e} "
                         f"-> {at:.3f}; sweep best {best:.3f} at {best_lr}; default {found['default']:.3f}; sweep "
                         + " ".join(f"{lr}:{acc:.3f}" for lr, acc in found["sweep"].items()))
    lines += ["", f"The goal, per dataset and recipe: {kept}'s suggestion against the sweep's best rate (the sweep "
              "position, from a decade below to a decade above, with the best mean over the seeds), the mean of "
              "each seed's best, and the default:", ""]
    for name, cell in results["cells"].items():
        swept = [found for found in cell["seeds"].values() if found["sweep"]]
        if not swept:
            continue
        at = statistics.mean(found["trained"][kept] for found in swept)
        by_position = [statistics.mean(values) for values in
                       zip(*(list(found["sweep"].values()) for found in swept), strict=True)]
        best = max(by_position)
        each = statistics.mean(max(found["sweep"].values()) for found in swept)
        steps = sorted({found.get("run_steps", 0) for found in swept})
        lines.append(f"{name.replace('|', ' / '):24s} run of {'/'.join(map(str, steps))} steps: suggestion "
                     f"{at:.3f}; best rate {best:.3f} ({at - best:+.3f}, at {SWEEP_NAMES[by_position.index(best)]}); "
                     f"each seed's best {each:.3f} ({at - each:+.3f}); default "
                     f"{statistics.mean(found['default'] for found in swept):.3f} (seeds {len(swept)})")
    lines += ["", f"Stop rules on fine-tuning curves at {STUDY_SIZE} px, batch 32, the hot-dog set (finder only): "
              "steps each rule ran, and each suggestion rule's answer under it:", ""]
    for row in results.get("stop_study", []):
        for stop, steps in row["steps"].items():
            answers = ", ".join(f"{rule} {lr:.1e}" if lr else f"{rule} none"
                                for rule, lr in row["suggestions"][stop].items())
            lines.append(f"seed {row['seed']}, stop rule {stop:6s}: {steps:3d} steps; {answers}")
    return "\n".join(lines)


def main() -> None:
    """Measure, print, and write the report and its JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--keep", default=None, metavar="RULE/STOP",
                        help="sweep around this candidate (e.g. edge/start) instead of the best one measured")
    parser.add_argument("--out", default="benchmarks/results/lr-rules-cpu.txt")
    args = parser.parse_args()
    args.weights = weights_path(ARCH, args.weights)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = RunCache(out.with_suffix(".runs.jsonl"))
    with tempfile.TemporaryDirectory() as folder:
        built = build_datasets(Path(data_dir(args.data)), Path(folder))
        datasets = {name: built[name] for name in args.datasets}
        results = measure(args, cache, datasets)
        results["stop_study"] = stop_study(args, datasets["hotdog"][0]) if "hotdog" in datasets else []
    write_report(report(results) + "\n", results, out, json_end="", announce=False)


if __name__ == "__main__":
    main()
