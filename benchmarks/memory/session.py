"""Resident memory over a long session: train, predict, train again, as a tab of the app does.

    python -m benchmarks.memory.session [--runs 10] [--keep 3]

Each round trains a short resnet18 run in a process of its own, as the app's Start does (tiny generated photos,
32 px, one epoch), which saves itself to a runs folder; it keeps the run in the session's list (its model loaded
into this process), classifies 8 photos with it and with the oldest run
(which, once out of the model cache, reloads from disk), and prints the process's resident set size.
`--keep` sets how many models the process-wide cache holds (the app's default is saved.MODELS_IN_MEMORY).
"""

from __future__ import annotations

import gc
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import MIB, arg_parser, rss_bytes
from ftcore.config import recipe
from ftcore.insight.predict import rank_classes
from ftcore.runs import saved
from ftcore.runs.process import ProcessJob
from ftcore.util.lru import LruStore


def rss_mib() -> float:
    """This process's resident set size (VmRSS), in MiB."""
    return rss_bytes() / MIB


def write_photos(root: Path, per_class: int, seed: int = 0) -> Path:
    """root/{train,test}/{blue,red}/NNN.png: noisy photos whose dominant colour is their class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", per_class // 2)):
        for label in ("blue", "red"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 90, size=(36 + 6 * (i % 3), 40 + 4 * (i % 5), 3))
                pixels[..., 0 if label == "red" else 2] += 150
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def main() -> None:
    """Print the RSS after each round and the growth from the first round to the last."""
    parser = arg_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keep", type=int, default=saved.MODELS_IN_MEMORY)
    args = parser.parse_args()
    saved.MODELS = LruStore(args.keep)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_photos(Path(tmp) / "colours", per_class=16)
        photos = [Image.open(p).convert("RGB") for p in sorted((data / "test").rglob("*.png"))[:8]]
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}; "
              f"{args.runs} runs of resnet18 scratch, 1 epoch, 32 px, 32 train photos; models kept: {args.keep}")
        print(f"start: {rss_mib():.0f} MiB")
        session: list[saved.Run] = []
        sizes = []
        for i in range(args.runs):
            config = recipe("scratch", "resnet18", data=str(data), epochs=1, batch_size=8, image_size=32, seed=i)
            job = ProcessJob(config, Path(tmp) / "runs").start()
            job.join()
            session.append(job.to_run())
            del job  # the tab's next Start replaces its job
            for run in (session[-1], session[0]):
                rank_classes(run.trained, photos)
            gc.collect()
            sizes.append(rss_mib())
            print(f"run {i + 1:2d}: {sizes[-1]:.0f} MiB (models in memory: {len(saved.MODELS.ids())})")
        print(f"growth from run 1 to run {args.runs}: {sizes[-1] - sizes[0]:+.0f} MiB; "
              f"from run 3 to run {args.runs}: {sizes[-1] - sizes[min(2, len(sizes) - 1)]:+.0f} MiB")


if __name__ == "__main__":
    main()
