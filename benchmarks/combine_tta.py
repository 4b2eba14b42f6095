"""Time-to-accuracy runs from several `bench --time-to-accuracy --json` files, as one table over seeds.

    python -m benchmarks.combine_tta FILE.json [FILE.json ...]

Each run is named "<kind>, seed N" (a file made with one seed names its runs without the seed; its seed is
taken from the file). A later file's run replaces an earlier one of the same name, so a re-measured run can
stand in for the first. Prints each run's test accuracy per full-training epoch, then the mean and range of
the best and final accuracy of each kind of run (the target is 0.90, as in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json

from ftcore.bench import SideResult, final_acc, format_seed_summary, reached_text


def load_runs(paths: list[str]) -> list[SideResult]:
    """Every run in `paths`, each named with its seed; later files replace runs of the same name."""
    runs: dict[str, SideResult] = {}
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        seeds = report.get("seeds", [0])
        for data in report["runs"]:
            run = SideResult(**data)
            if len(seeds) == 1:
                run.side += f", seed {seeds[0]}"
            runs[run.side] = run

    def order(run: SideResult) -> tuple[str, int]:
        kind, _, seed = run.side.rpartition(", seed ")
        return kind, int(seed)

    return sorted(runs.values(), key=order)


def main() -> None:
    """Print the per-run lines and the summary over seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    runs = load_runs(parser.parse_args().files)
    print(f"{'run':48s} {'test acc per full epoch':40s} {'reaches 0.90 at':>15s} {'final':>6s} {'wall':>8s}")
    for r in runs:
        accs = " ".join(f"{e['test_acc']:.3f}" for e in r.epochs if e.get("stage", "full") == "full")
        print(f"{r.side:48s} {accs or f'({len(r.epochs)} output-layer epochs)':40s} {reached_text(r, 0.90):>15s} "
              f"{final_acc(r):6.3f} {r.wall_seconds:6.0f} s")
    print()
    print(format_seed_summary(runs))


if __name__ == "__main__":
    main()
