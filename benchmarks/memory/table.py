"""Peak resident memory of one training run on the CPU, by architecture, precision, micro-batch and image size.

    python -m benchmarks.memory.table [--data DIR] [--arch resnet18 mobilenet_v2 resnet50 resnet34]
                                      [--per-class 64] [--out benchmarks/results/memory-table-cpu.json]

Each case trains ONE run in a fresh child process (`--child JSON`), from random weights (memory does not depend
on the starting weights; the output-layer-only cases load a random state dict saved to a temporary file, as
fine-tuning needs a weights file), on the first `--per-class` photos of each class: 64 + 64 photos make one
full step of the book's batch of 128, one epoch. The child prints its peak RSS (getrusage ru_maxrss) as JSON.

The parent then fits, per architecture, the model that ftcore.train.memory uses:

    peak = base + per-photo activations x micro-batch x (image size / 224)^2 + known terms

where the known terms are computed, not fitted: the float input batch (batch x 3 x size^2 x 4 bytes, twice
when streaming from disk), the decoded training photos (their real size, read from the photo headers and
capped as decoded.capped does) and the decoded evaluation crops (3 x size^2 bytes a photo). Output-layer-only
runs (head epochs, no full epochs) run the frozen layers in inference only, `feature_batch_size` photos at a
time; two of them, at 16 and at 64 photos per pass, give the per-photo inference bytes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import MIB, RESULTS, arg_parser, data_dir, machine_line, rss_bytes, write_json

MODULE = "benchmarks.memory.table"  # each case runs in a fresh `python -m` of this module
DEFAULT_OUT = RESULTS / "memory-table-cpu.json"
ARCHS = ["resnet18", "mobilenet_v2", "resnet50", "resnet34"]


# --------------------------------------------------------------------------------------------------
# The cases.


def case(arch: str, precision: str, micro: int, image_size: int = 224, decode_once: bool = True,
         quick: bool = False, feature_batch: int = 0, note: str = "") -> dict:
    """One measurement's settings (what the child receives as JSON)."""
    return {"arch": arch, "precision": precision, "micro": micro, "image_size": image_size,
            "decode_once": decode_once, "quick": quick, "feature_batch": feature_batch, "note": note}


def cases_for(archs: list[str]) -> list[dict]:
    """The grid: each arch in fp32 and bf16 at micro 16 and 64 (and 128 for the small fp32 ones), then the
    checks: streaming from disk, 112 px, and output-layer-only runs at 16 and 64 photos per forward pass."""
    grid = []
    for arch in archs:
        for precision in ("fp32", "bf16"):
            micros = [16, 64] + ([128] if precision == "fp32" and arch in ("resnet18", "mobilenet_v2") else [])
            grid += [case(arch, precision, m) for m in micros]
    checks = [case("resnet18", "fp32", 16, decode_once=False, note="streamed from disk"),
              case("resnet18", "fp32", 64, image_size=112, note="112 px")]
    for arch in archs:  # the frozen layers run in bf16 (what "auto" picks on a CPU with native bf16)
        checks += [case(arch, "bf16", 0, quick=True, feature_batch=fb,
                        note=f"quick preset, {fb} photos per forward pass") for fb in (16, 64)]
    return grid + checks


# --------------------------------------------------------------------------------------------------
# The child: one run, its peak RSS as one JSON line.


def decoded_train_bytes(samples: list[tuple[str, int]], image_size: int) -> int:
    """What the decoded training photos really take: 3 bytes a pixel after decoded.capped (from the headers)."""
    from PIL import Image

    from ftcore.data.decoded import train_side_cap

    cap, total = train_side_cap(image_size), 0
    for path, _ in samples:
        with Image.open(path) as image:
            w, h = image.size
        if min(w, h) > cap:
            scale = cap / min(w, h)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        total += 3 * w * h
    return total


def child(spec: dict) -> dict:
    """Train the case `spec` once on the CPU and report its peak RSS with what the parent needs to fit."""
    import torch

    import ftcore.train.loop as training  # fit, and the feature_batch_size it calls (patched below)
    from ftcore.archs import get_arch
    from ftcore.config import recipe
    from ftcore.data.dataset import split_photos
    from ftcore.data.decoded import estimated_train_bytes
    from ftcore.data.splits import resolve_splits
    from ftcore.train.plan import micro_batch_size

    start_rss = rss_bytes()
    overrides = {"data": spec["data"], "epochs": 1, "limit": spec["per_class"], "precision": spec["precision"],
                 "micro_batch": spec["micro"], "image_size": spec["image_size"], "decode_once": spec["decode_once"],
                 "device": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        if spec["quick"]:
            weights = Path(tmp) / f"{spec['arch']}-random.pth"
            torch.save(get_arch(spec["arch"]).build(weights=None).state_dict(), weights)
            config = recipe("finetune", spec["arch"], preset="quick", **{
                **overrides, "head_epochs": 2, "epochs": 0, "weights": str(weights)})
            batch = spec["feature_batch"]
            training.feature_batch_size = lambda device: batch  # photos per forward pass through the frozen layers
        else:
            config = recipe("scratch", spec["arch"], **overrides)
        started = time.perf_counter()
        result = training.fit(config)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    if len(result.history.epochs) != config.total_epochs:  # a run that skipped its work measures nothing
        raise RuntimeError(f"the run recorded {len(result.history.epochs)} of {config.total_epochs} epochs")
    splits = resolve_splits(config.data, config.val_fraction, config.split_seed)
    train = split_photos(splits, "train", None, config.limit).samples
    heldout = split_photos(splits, splits.heldout, None, config.limit).samples
    return {"peak_bytes": peak, "start_rss_bytes": start_rss, "seconds": round(seconds, 1),
            "train_precision": result.history.precision,
            "micro_used": micro_batch_size(config, torch.device("cpu"), result.history.precision),
            "batch_size": config.batch_size, "train_photos": len(train), "heldout_photos": len(heldout),
            "param_bytes": sum(p.numel() * p.element_size() for p in result.model.parameters()),
            "decoded_train_bytes": decoded_train_bytes(train, config.image_size),
            "estimated_train_bytes": estimated_train_bytes(train, config.image_size)}


# --------------------------------------------------------------------------------------------------
# The parent: run each case, fit, print and write.


def known_bytes(row: dict) -> int:
    """The computed (not fitted) part of a run's peak: input batch, decoded train photos, decoded eval crops."""
    side = row["image_size"]
    crops = row["heldout_photos"] * 3 * side * side
    if row["quick"]:  # eval crops of the train photos (their features) and of the held-out ones; one input batch
        return row["feature_batch"] * 3 * side * side * 4 + crops + row["train_photos"] * 3 * side * side
    batch = row["batch_size"] * 3 * side * side * 4
    if not row["decode_once"]:
        return 2 * batch  # the collated batch and its channels-last copy
    return batch + row["decoded_train_bytes"] + crops


def least_squares(xs: list[list[float]], ys: list[float]) -> list[float]:
    """Ordinary least squares by the normal equations (a handful of unknowns), solved with torch."""
    import torch

    X, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64).unsqueeze(1)
    return torch.linalg.lstsq(X, y).solution.squeeze(1).tolist()


def fit_coefficients(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per architecture: base bytes and per-photo activation bytes (fp32, bf16 at 224 px) from the training
    rows at 224 px with decode_once, and the base and per-photo bytes of inference (bf16) from the two
    output-layer-only rows."""
    coefficients = {}
    for arch in dict.fromkeys(r["arch"] for r in rows):
        train = [r for r in rows if r["arch"] == arch and not r["quick"] and r["decode_once"]
                 and r["image_size"] == 224]
        if not train:
            continue
        xs = [[1.0, r["micro_used"] * (r["train_precision"] == "fp32"),
               r["micro_used"] * (r["train_precision"] == "bf16")] for r in train]
        base, fp32, bf16 = least_squares(xs, [r["peak_bytes"] - known_bytes(r) for r in train])
        entry = {"base": round(base), "fp32_photo": round(fp32), "bf16_photo": round(bf16)}
        quick = sorted((r for r in rows if r["arch"] == arch and r["quick"]), key=lambda r: r["feature_batch"])
        if len(quick) >= 2:
            lo, hi = quick[0], quick[-1]
            rise = (hi["peak_bytes"] - known_bytes(hi)) - (lo["peak_bytes"] - known_bytes(lo))
            entry["inference_photo"] = max(0, round(rise / (hi["feature_batch"] - lo["feature_batch"])))
            entry["inference_base"] = round(lo["peak_bytes"] - known_bytes(lo)
                                            - entry["inference_photo"] * lo["feature_batch"])
        coefficients[arch] = entry
    return coefficients


def predicted_bytes(row: dict, coefficients: dict[str, dict[str, int]]) -> int | None:
    """The fitted model's peak for a measured row (no margin, real decoded sizes), or None without coefficients."""
    c = coefficients.get(row["arch"])
    if c is None or (row["quick"] and "inference_photo" not in c):
        return None
    scale = (row["image_size"] / 224) ** 2
    if row["quick"]:
        return round(c["inference_base"] + c["inference_photo"] * row["feature_batch"] * scale + known_bytes(row))
    per_photo = c["fp32_photo"] if row["train_precision"] == "fp32" else c["bf16_photo"]
    return round(c["base"] + per_photo * row["micro_used"] * scale + known_bytes(row))


def table(rows: list[dict], coefficients: dict[str, dict[str, int]], machine: str) -> str:
    """The human-readable results: one line per case, then the fitted coefficients."""
    lines = [f"# {machine}; one run per fresh process, batch 128, 1 epoch, {rows[0]['train_photos']} train photos",
             f"{'arch':13s} {'precision':>9s} {'micro':>5s} {'size':>4s} {'decode':>6s} {'peak MB':>8s} "
             f"{'model MB':>8s} {'model/peak':>10s} {'seconds':>7s}  note"]
    for r in rows:
        predicted = predicted_bytes(r, coefficients)
        micro = f"fb{r['feature_batch']}" if r["quick"] else str(r["micro_used"])
        precision = r["precision"] if r["quick"] else r["train_precision"]
        lines.append(f"{r['arch']:13s} {precision:>9s} {micro:>5s} {r['image_size']:4d} "
                     f"{'once' if r['decode_once'] else 'disk':>6s} {r['peak_bytes'] / MIB:8.0f} "
                     f"{(predicted or 0) / MIB:8.0f} {(predicted or 0) / r['peak_bytes']:10.3f} "
                     f"{r['seconds']:7.1f}  {r['note']}")
    lines.append("")
    lines.append("fitted (MB; per photo at 224 px): peak = base + photo x micro x (size/224)^2 + input batch "
                 "+ decoded photos + eval crops")
    for arch, c in coefficients.items():
        extra = (f"; inference base {c['inference_base'] / MIB:.0f}, bf16 {c['inference_photo'] / MIB:.1f}/photo"
                 if "inference_photo" in c else "")
        lines.append(f"  {arch:13s} base {c['base'] / MIB:6.0f}, fp32 {c['fp32_photo'] / MIB:5.1f}/photo, "
                     f"bf16 {c['bf16_photo'] / MIB:5.1f}/photo{extra}")
    decoded = [r for r in rows if r["decode_once"] and not r["quick"] and r["image_size"] == 224]
    if decoded:
        r = decoded[0]
        lines.append(f"decoded train photos: {r['decoded_train_bytes'] / MIB:.0f} MB real against "
                     f"{r['estimated_train_bytes'] / MIB:.0f} MB by decoded.estimated_train_bytes "
                     f"({r['decoded_train_bytes'] / r['estimated_train_bytes']:.2f}x of the bound)")
    streamed = [r for r in rows if not r["decode_once"]]
    twin = [r for r in decoded if streamed and r["arch"] == streamed[0]["arch"]
            and r["train_precision"] == streamed[0]["train_precision"] and r["micro_used"] == streamed[0]["micro_used"]]
    if streamed and twin:
        lines.append(f"decode_once on minus off ({twin[0]['arch']} {twin[0]['train_precision']} micro "
                     f"{twin[0]['micro_used']}): {(twin[0]['peak_bytes'] - streamed[0]['peak_bytes']) / MIB:+.0f} MB")
    return "\n".join(lines) + "\n"


def run_case(spec: dict, timeout: float) -> dict:
    """Run one case in a fresh child process and return its settings with its measurements."""
    proc = subprocess.run([sys.executable, "-m", MODULE, "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{proc.stderr[-3000:]}")
    return {**spec, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    """Measure every case, print the table and write the JSON and text results."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--arch", nargs="+", default=ARCHS)
    parser.add_argument("--per-class", type=int, default=64)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--timeout", type=float, default=600, help="seconds one case may take")
    parser.add_argument("--note", default="", help="stored with the results (e.g. which ftcore tree ran)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return

    import torch

    from ftcore.devices.machine import machine_description

    data = data_dir(args.data)
    machine = machine_description()
    print(machine_line(f"data {data}, {args.per_class} photos per class", threads=True), flush=True)
    rows = []
    started = time.perf_counter()
    for spec in cases_for(args.arch):
        row = run_case({**spec, "data": data, "per_class": args.per_class}, args.timeout)
        rows.append(row)
        micro = f"fb{row['feature_batch']}" if row["quick"] else str(row["micro_used"])
        precision = row["precision"] if row["quick"] else row["train_precision"]
        print(f"{row['arch']:13s} {precision:>5s} {micro:>5s} {row['image_size']:4d} "
              f"{'once' if row['decode_once'] else 'disk':>5s} {row['peak_bytes'] / MIB:7.0f} MB "
              f"({row['seconds']:.0f} s training; {time.perf_counter() - started:.0f} s so far) {row['note']}",
              flush=True)
    coefficients = fit_coefficients(rows)
    for row in rows:
        predicted = predicted_bytes(row, coefficients)
        row["model_bytes"] = predicted
        row["model_ratio"] = None if predicted is None else round(predicted / row["peak_bytes"], 4)
    text = table(rows, coefficients, machine)
    print()
    print(text, end="")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"machine": machine, "threads": torch.get_num_threads(), "data": data, "per_class": args.per_class,
                     "note": args.note, "total_seconds": round(time.perf_counter() - started),
                     "coefficients": coefficients, "cases": rows}, end="\n")
    out.with_suffix(".txt").write_text((f"# {args.note}\n" if args.note else "") + text)
    print(f"wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
