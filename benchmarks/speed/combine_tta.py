"""Time-to-accuracy runs from several `bench --time-to-accuracy --json` files, as one table over seeds.

    python -m benchmarks.speed.combine_tta FILE.json [FILE.json ...]

Each run is named "<kind>, seed N" (a file made with one seed names its runs without the seed; its seed is
taken from the file). A later file's run replaces an earlier one of the same name, so a re-measured run can
stand in for the first. Runs of every layer are named by the photos BatchNorm saw per forward pass; runs saved
before that was recorded are named as they were asked for, when a CPU training in fp32 used 16 by default.
Prints each run's test accuracy per full-training epoch, then the mean and range of the best and final accuracy
of each kind of run (the target is 0.90, as in docs/benchmarks.md).
"""

from __future__ import annotations

import json

from benchmarks.common import arg_parser
from ftcore.config import recipe
from ftcore.lab.bench import (
    SideResult,
    batchnorm_suffix,
    final_acc,
    format_seed_summary,
    reached_text,
    trains_all_layers,
)

LEGACY_DEFAULT_MICRO_BATCH = 16  # what `--micro-batch 0` gave a CPU training in fp32 before the whole batch did


def legacy_name(run: SideResult) -> str:
    """A run of every layer saved before SideResult.micro_batch, named by the photos BatchNorm saw."""
    kind, seed_sep, seed = run.side.partition(", seed ")
    preset = kind.removeprefix("ftcore preset ").split(",")[0]
    if not kind.startswith("ftcore preset ") or not trains_all_layers(preset):
        return run.side
    batch = recipe(preset=preset, data="").batch_size
    default = LEGACY_DEFAULT_MICRO_BATCH if (run.devices, run.precision) == (["cpu"], "fp32") else batch
    asked = int(kind.rpartition(", micro-batch ")[2]) if ", micro-batch " in kind else default
    return f"ftcore preset {preset}{batchnorm_suffix(asked, batch)}{seed_sep}{seed}"


def load_runs(paths: list[str]) -> list[SideResult]:
    """Every run in `paths`, each named with its seed; later files replace runs of the same name."""
    runs: dict[str, SideResult] = {}
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        seeds = report.get("seeds", [0])
        for data in report["runs"]:
            run = SideResult(**data)
            if data.get("micro_batch") is None:
                run.side = legacy_name(run)
            if len(seeds) == 1:
                run.side += f", seed {seeds[0]}"
            runs[run.side] = run

    def order(run: SideResult) -> tuple[str, int]:
        kind, _, seed = run.side.rpartition(", seed ")
        return kind, int(seed)

    return sorted(runs.values(), key=order)


def main() -> None:
    """Print the per-run lines and the summary over seeds."""
    parser = arg_parser(__doc__)
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
