"""The photo check against known mistakes: flipped labels, leaked test photos and copies put into the hot-dog photos.

    python -m benchmarks.clean.quality [--data DIR] [--weights FILE] [--seeds 0 1 2 3 4] [--flips 0.05 0.1 0.2]
                                       [--isas native avx2] [--preset quick] [--no-train]
                                       [--out benchmarks/results/clean-quality-cpu.txt]

Three parts, every check with MobileNetV2's ImageNet layers (the check's default network):
1. The issue's set, one per seed: 120 + 120 training photos and 60 + 60 test photos, a tenth of the training labels
   flipped, 6 test photos leaked into train after a 0.9 resize and a JPEG re-save (every third also cropped 5 % a
   side), 4 training photos copied byte for byte. Reported: flipped photos among the top k suspects (k = flipped),
   leaks and copies found, false pairs, and the check's seconds.
2. The whole hot-dog set with 5, 10 and 20 % of its 2000 training labels flipped, 20 test photos leaked and 10
   copies: the same figures, then the test accuracy of runs (the --preset recipe, MobileNetV2) trained on the noisy
   set; on the set cleaned by accepting every suggestion (each suspect relabeled as suggested, the training copy of
   each leak and each extra copy excluded); and on the clean set (the flips undone, the same copies excluded). All
   three are scored on the test photos minus the leaked ones, through the lab's own edits.
3. The check's time for 1,000 photos (400 + 400 train, 100 + 100 test) from cold (no vectors cached): the wall time
   of `python -m ftcore clean --json`, with the CPU's own kernels and capped at AVX2 (no AVX-512).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.clean.noise import Mistakes, noisy_copy
from benchmarks.common import RESULTS, arg_parser, data_dir, machine_line, weights_path, write_json, write_report
from ftcore.clean.check import check_dataset
from ftcore.clean.report import CheckReport
from ftcore.config import recipe
from ftcore.data.edits import Edits, freeze
from ftcore.devices.machine import ISA_CAPS, kernels_description
from ftcore.train.loop import fit

ISSUE_SET = {"train": 120, "test": 60}  # photos per class of the issue's set
WHOLE_SET = {"train": 1000, "test": 400}
TIMED_SET = {"train": 400, "test": 100}  # 1,000 photos in all


def found(report: CheckReport, made: Mistakes) -> dict:
    """What the check found of what was put in: top-k flips, leaks and copies found, false pairs."""
    k = len(made.flipped)
    top = {s.path for s in report.suspects[:k]}
    pairs = {frozenset((a, b)) for group in report.duplicates for i, a in enumerate(group.paths)
             for b in group.paths[i + 1:]}
    return {"flipped": k, "top_k": len(top & set(made.flipped)), "suspects": len(report.suspects),
            "leaks": len(made.leaks), "leaks_found": len({frozenset(p) for p in made.leaks} & pairs),
            "copies": len(made.copies), "copies_found": len({frozenset(p) for p in made.copies} & pairs),
            "false_pairs": len(pairs - made.pairs), "seconds": round(report.seconds, 2)}


def issue_sets(data: Path, weights: str, seeds: list[int], tmp: Path) -> list[dict]:
    """Part 1: one small noisy set per seed."""
    rows = []
    for seed in seeds:
        made = noisy_copy(data, tmp / f"issue-{seed}", ISSUE_SET, 0.1, 6, 4, seed=seed)
        row = {"seed": seed, **found(check_dataset(made.root, "mobilenet_v2", weights), made)}
        rows.append(row)
        print(f"issue set seed {seed}: {row}", flush=True)
    return rows


def edits_file(root: Path, relabel: dict[str, str], exclude: set[str]) -> str:
    """A frozen edits file, as the lab's own log would freeze it."""
    return str(freeze(root, Edits(relabeled=relabel, excluded=exclude)))


def whole_set(data: Path, weights: str, flip: float, preset: str, train: bool, tmp: Path) -> dict:
    """Part 2 for one share of flipped labels: the check, then the three runs."""
    made = noisy_copy(data, tmp / f"whole-{flip}", WHOLE_SET, flip, 20, 10, seed=0)
    report = check_dataset(made.root, "mobilenet_v2", weights)
    row = {"flip": flip, **found(report, made)}
    print(f"whole set {flip:.0%} flipped: {row}", flush=True)
    if not train:
        return row
    leaked_test = {test for test, _ in made.leaks}
    extra_copies = {copy for _, copy in made.leaks} | {copy for _, copy in made.copies}
    cleaned_relabels = {s.path: s.suggested for s in report.suspects}
    cleaned_out = {p for group in report.duplicates for p, split in zip(group.paths, group.splits, strict=True)
                   if split == "train" and (group.leak or p != group.paths[0])}
    variants = {"noisy": edits_file(made.root, {}, leaked_test),
                "cleaned": edits_file(made.root, cleaned_relabels, leaked_test | cleaned_out),
                "clean": edits_file(made.root, made.original, leaked_test | extra_copies)}
    for name, edits in variants.items():
        config = recipe("finetune", "mobilenet_v2", preset, data=str(made.root), weights=weights, edits=edits)
        started = time.perf_counter()
        trained = fit(config)
        row[f"{name}_acc"] = trained.history.final().heldout_acc
        row[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
        print(f"  {name}: test acc {row[f'{name}_acc']:.3f} ({row[f'{name}_seconds']} s)", flush=True)
    return row


def timed_check(data: Path, weights: str, isa: str, tmp: Path) -> dict:
    """Part 3: `ftcore clean --json` on 1,000 photos with nothing cached, in a fresh process."""
    made = noisy_copy(data, tmp / f"timed-{isa}", TIMED_SET, 0.0, 0, 0, seed=0)
    env = {**os.environ, **ISA_CAPS[isa], "FTCORE_CACHE": str(tmp / f"cache-{isa}")}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ftcore", "clean", "--data", str(made.root), "--weights", weights,
                          "--json"], capture_output=True, text=True, env=env, check=True).stdout
    wall = time.perf_counter() - started
    result = json.loads(out)
    row = {"isa": isa, "kernels": kernels_description(isa), "photos": result["photos"],
           "check_seconds": result["seconds"], "wall_seconds": round(wall, 1)}
    print(f"1,000 photos, {isa}: {row}", flush=True)
    return row


def summary(header: str, result: dict) -> str:
    """The report: part by part, one line per set."""
    lines = [header, "# 1. the issue's set: 240 training photos, 24 flipped, 6 leaks (2 cropped), 4 copies"]
    for r in result["issue"]:
        lines.append(f"seed {r['seed']}: top-k {r['top_k']}/{r['flipped']} (suspects {r['suspects']}), leaks "
                     f"{r['leaks_found']}/{r['leaks']}, copies {r['copies_found']}/{r['copies']}, false pairs "
                     f"{r['false_pairs']}, {r['seconds']:.1f} s")
    if result["issue"]:
        tops = [r["top_k"] / r["flipped"] for r in result["issue"]]
        lines.append(f"top-k share: mean {statistics.mean(tops):.3f} (min {min(tops):.3f}, max {max(tops):.3f}); "
                     f"per 24 flipped: {24 * statistics.mean(tops):.1f}")
    lines.append("# 2. the whole hot-dog set: 2000 training photos, 20 leaks, 10 copies; accuracy on test minus leaks")
    for r in result["whole"]:
        accs = "".join(f", {name} {r[name + '_acc']:.3f}" for name in ("noisy", "cleaned", "clean")
                       if name + "_acc" in r)
        lines.append(f"{r['flip']:.0%} flipped: top-k {r['top_k']}/{r['flipped']} (suspects {r['suspects']}), "
                     f"leaks {r['leaks_found']}/{r['leaks']}, copies {r['copies_found']}/{r['copies']}, false pairs "
                     f"{r['false_pairs']}, {r['seconds']:.1f} s{accs}")
    lines.append("# 3. the check of 1,000 photos from cold, `python -m ftcore clean --json`")
    for r in result["timed"]:
        lines.append(f"{r['isa']}: {r['wall_seconds']:.1f} s wall ({r['check_seconds']:.1f} s in the check); "
                     f"{r['kernels']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the three parts and write the report."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--flips", nargs="*", type=float, default=[0.05, 0.1, 0.2])
    parser.add_argument("--preset", default="quick", help="the recipe of part 2's runs (default: quick)")
    parser.add_argument("--no-train", action="store_true", help="part 2 without its runs")
    parser.add_argument("--isas", nargs="*", default=list(ISA_CAPS), choices=list(ISA_CAPS))
    parser.add_argument("--out", default=str(RESULTS / "clean-quality-cpu.txt"))
    args = parser.parse_args()
    data, weights = Path(data_dir(args.data)), weights_path("mobilenet_v2", args.weights)
    header = machine_line(f"photo check with mobilenet_v2 from {weights}; runs: {args.preset} preset")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["FTCORE_CACHE"] = str(tmp / "cache")  # nothing cached from earlier checks
        result = {"header": header, "issue": issue_sets(data, weights, args.seeds, tmp),
                  "whole": [whole_set(data, weights, flip, args.preset, not args.no_train, tmp) for flip in args.flips],
                  "timed": [timed_check(data, weights, isa, tmp) for isa in args.isas]}
    write_json(Path(args.out).with_suffix(".json"), result, indent=2)
    write_report(summary(header, result), result, Path(args.out))


if __name__ == "__main__":
    main()
