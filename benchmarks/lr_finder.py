"""The learning-rate finder's suggestion against the book's lr, fine-tune and scratch, in one run.

    python -m benchmarks.lr_finder [--data DIR] [--weights FILE] [--arch mobilenet_v2] [--epochs 5]
                                   [--steps 100] [--limit N] [--seed 0] [--out benchmarks/results/lr-finder-cpu.txt]

For each mode: the finder on the book's recipe (its suggestion and wall time), then two runs of `--epochs` epochs
with the same seed, one at the suggestion and one at the book's lr, and their final held-out accuracy (val where
the data has a val split, else test). Prints a report, writes it to --out and the raw numbers beside it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ftcore.bench import machine_description
from ftcore.data import find_data
from ftcore.lr_finder import FinderSettings, find_lr
from ftcore.models import locate_weights
from ftcore.training import fit, recipe


def accuracy(value: float | None) -> str:
    """Three decimals, or a dash."""
    return f"{value:.3f}" if value is not None else "-"


def measure(args: argparse.Namespace) -> dict:
    """The finder and the two trainings per mode."""
    data = args.data or str(find_data())
    weights = args.weights or locate_weights(args.arch, None).path
    results = {"machine": machine_description(), "arch": args.arch, "data": data, "epochs": args.epochs,
               "limit": args.limit, "seed": args.seed, "steps": args.steps, "modes": {}}
    for mode in args.modes:
        book = recipe(mode, args.arch, data=data, weights=weights, epochs=args.epochs, limit=args.limit,
                      seed=args.seed)
        start = time.perf_counter()
        finding = find_lr(book, FinderSettings(steps=args.steps))
        wall = time.perf_counter() - start
        print(f"# {mode}: {finding.summary()}; finder wall {wall:.0f} s", flush=True)
        row = {"suggestion": finding.suggestion, "minimum_lr": finding.minimum_lr, "finder_wall_s": round(wall, 1),
               "finder_steps": len(finding.lrs), "note": finding.note, "book_lr": book.lr, "runs": {}}
        for name, lr in (("suggested", finding.suggestion), ("book", book.lr)):
            if lr is None:
                continue
            book.lr = lr
            start = time.perf_counter()
            history = fit(book).history
            row["runs"][name] = {"lr": lr, "heldout": history.heldout, "accuracy": history.final_heldout(),
                                 "per_epoch": [e.heldout_acc for e in history.epochs],
                                 "wall_s": round(time.perf_counter() - start, 1)}
            print(f"# {mode} at lr {lr:.2g} ({name}): {history.heldout} acc {accuracy(history.final_heldout())}",
                  flush=True)
        results["modes"][mode] = row
    return results


def report(results: dict) -> str:
    """The table docs/benchmarks.md quotes."""
    limit = f"{results['limit']} photos per class and split" if results["limit"] else "all photos"
    lines = [f"Learning-rate finder against the book's lr: {results['arch']}, {results['epochs']} epochs, {limit}, "
             f"seed {results['seed']}, finder of {results['steps']} steps from {FinderSettings().start_lr:g} to "
             f"{FinderSettings().end_lr:g}",
             f"machine: {results['machine']}", f"data: {results['data']}", "",
             f"{'mode':9s} {'suggested':>9s} {'finder':>7s} {'steps':>5s} | {'acc at suggested':>16s} "
             f"{'acc at book lr':>14s} {'(book lr)':>9s}"]
    for mode, row in results["modes"].items():
        runs = row["runs"]
        suggested = f"{row['suggestion']:.2g}" if row["suggestion"] else "none"
        lines.append(f"{mode:9s} {suggested:>9s} {row['finder_wall_s']:6.0f}s {row['finder_steps']:5d} | "
                     f"{accuracy(runs.get('suggested', {}).get('accuracy')):>16s} "
                     f"{accuracy(runs['book']['accuracy']):>14s} {row['book_lr']:9.0e}")
        if row["note"]:
            lines.append(f"  note: {row['note']}")
    heldout = next(iter(results["modes"].values()))["runs"]["book"]["heldout"]
    lines.append(f"accuracy: final {heldout} accuracy after {results['epochs']} epochs, same seed, same photos")
    return "\n".join(lines)


def main() -> None:
    """Measure, print, and write the report and its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--modes", nargs="+", default=["finetune", "scratch"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=FinderSettings().steps)
    parser.add_argument("--limit", type=int, default=None, help="photos per class and split (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/lr-finder-cpu.txt")
    args = parser.parse_args()
    results = measure(args)
    text = report(results)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
