"""How long Predict takes to classify one photo: a 1024x768 JPEG upload, decoded, thumbnailed, through the test
transform and the model, warm, as the Predict page does it.

    python -m benchmarks.speed.predict_latency [--arch resnet18] [--device cpu] [--repeats 30]
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
from PIL import Image

from benchmarks.common import arg_parser, machine_line
from ftcore.config import recipe
from ftcore.data.transforms import EvalPreset
from ftcore.devices.placement import resolve_devices
from ftcore.insight.predict import classify_photos
from ftcore.models.build import build_model
from ftcore.models.trained import TrainedModel
from ftcore.records import History


def sample_photo(width: int = 1024, height: int = 768, seed: int = 0) -> bytes:
    """A JPEG photo-like image (smooth gradients plus noise) of the given size, as an upload would arrive."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def predict_latency(arch: str, device: str = "cpu", repeats: int = 30) -> dict[str, float]:
    """Median milliseconds to classify one 1024x768 JPEG upload the way the Predict page does (decode, thumbnail,
    test transform, forward pass), warm; with the model of `arch` at random weights (speed does not depend on them)."""
    model, weights = build_model(arch, 2, pretrained=False)
    trained = TrainedModel(model.to(resolve_devices(device)[0]).eval(), recipe("scratch", arch, data=""), ["a", "b"],
                           History(), weights, EvalPreset(224))
    photo = [("photo.jpg", sample_photo())]
    for _ in range(5):
        classify_photos(trained, photo)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classify_photos(trained, photo)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def main() -> None:
    """Print the median and fastest milliseconds per photo."""
    parser = arg_parser(__doc__)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    figures = predict_latency(args.arch, args.device, args.repeats)
    print(machine_line(f"{args.arch} on {args.device}, {args.repeats} photos, warm"))
    print(f"median {figures['median_ms']:.1f} ms, fastest {figures['min_ms']:.1f} ms per photo")


if __name__ == "__main__":
    main()
