"""Teachable Machine's loop, timed: a dataset built in the lab (2 classes x 50 photos) to a model ready on Predict.

    python -m benchmarks.speed.builder_to_predict [--data DIR] [--per-class 50] [--preset quick] [--repeats 3]

Builds the dataset with ftcore.data.builder (as the explorer's Save does) in a temporary cache, then times what
pressing Train does until Predict can answer: the preset on MobileNetV2 (the one architecture with ImageNet
weights offline) queued with the server's scheduler and trained in a child process of its own, the run saved
in its folder, and one photo classified with the model loaded from there, as the Predict page does.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import arg_parser, data_dir, machine_line, weights_path


def main() -> None:
    """Print one row per repeat and the median."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None, help="a train/<class>/ tree to take the photos from")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source = Path(data_dir(args.data)) / "train"
    weights = weights_path("mobilenet_v2")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FTCORE_CACHE"] = cache
        from ftcore.config import recipe
        from ftcore.data import builder
        from ftcore.insight.predict import classify_photos
        from ftcore.runs.local import LocalBackend
        from ftcore.runs.process import ProcessJob

        photos = {folder.name: [p.read_bytes() for p in sorted(folder.iterdir())[:args.per_class]]
                  for folder in sorted(source.iterdir()) if folder.is_dir()}
        built = builder.save_dataset("bench", photos)
        probe = ("probe.jpg", photos[next(iter(photos))][0])
        counts = ", ".join(f"{name} {n}" for name, n in built.counts.items())
        print(machine_line(f"{built.total} photos ({counts}), mobilenet_v2 {args.preset} preset, "
                           "validation held out as the explorer does (20 %)"))
        print(f"{'repeat':>6s} {'train+save':>10s} {'predict':>8s} {'total':>7s} {'val acc':>7s}")
        totals, scheduler = [], LocalBackend()
        for repeat in range(1, args.repeats + 1):
            config = recipe("finetune", "mobilenet_v2", args.preset, data=str(built.path), weights=weights)
            start = time.perf_counter()
            job = ProcessJob(config, Path(cache) / "runs").start(scheduler)
            job.join()
            snap = job.snapshot()
            trained = time.perf_counter()
            if not snap.has_model:
                raise SystemExit(f"the run failed: {snap.error}")
            run = job.to_run()
            result = classify_photos(run.trained, [probe])[0]
            done = time.perf_counter()
            assert result.ranked is not None, result.error
            totals.append(done - start)
            print(f"{repeat:6d} {trained - start:9.1f}s {done - trained:7.2f}s {done - start:6.1f}s "
                  f"{run.history.final_heldout():7.3f}", flush=True)
        print(f"median {statistics.median(totals):.1f} s from pressing Train to a prediction")


if __name__ == "__main__":
    main()
