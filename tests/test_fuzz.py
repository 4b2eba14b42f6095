"""Property-based: random and mutated image bytes through the predict path and the dataset loader.

Whatever the bytes, each path answers with a result (a prediction, a tensor, a size) or one FtcoreError
sentence naming the file: never another exception, never a hang (hypothesis' deadline fails a slow one).
"""

from __future__ import annotations

import io
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from conftest import trained_model, write_tiny_imagefolder
from ftcore.data import folders
from ftcore.data.dataset import open_split
from ftcore.data.summary import summarize
from ftcore.data.transforms import EvalPreset
from ftcore.errors import FtcoreError
from ftcore.insight.predict import classify_photos

# A failing run writes its examples as patches under hypothesis' home folder: keep that out of the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ftcore-hypothesis")
FUZZ = settings(max_examples=120, deadline=timedelta(seconds=5), database=None,
                suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning", "ignore::UserWarning")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


RGB = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8))
# Valid photos of every kind the decoders meet, as the seeds of the mutations: (extension, bytes).
SEEDS = [
    ("png", encode(RGB, "PNG")),
    ("jpg", encode(RGB, "JPEG", quality=90)),
    ("jpg", encode(RGB.convert("CMYK"), "JPEG")),
    ("png", encode(RGB.convert("P"), "PNG")),
    ("png", encode(Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16)), "PNG")),
    ("gif", encode(RGB, "GIF")),
    ("webp", encode(RGB, "WEBP")),
    ("bmp", encode(RGB, "BMP")),
    ("tiff", encode(RGB, "TIFF")),
]
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM", b"II*\x00", b""]


@st.composite
def image_bytes(draw) -> tuple[str, bytes]:
    """(extension, payload): a valid photo with random flips, cuts and insertions, or random bytes
    behind a real format's magic number."""
    if draw(st.booleans()):
        return "jpg", draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=600))
    ext, seed = draw(st.sampled_from(SEEDS))
    payload = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(payload) - 1, 0)))
        if kind == "flip" and payload:
            payload[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del payload[at:]
        elif kind == "insert":
            payload[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del payload[at:at + draw(st.integers(1, 64))]
    return ext, bytes(payload)


class Tiny(torch.nn.Module):
    """A real (tiny) convolutional classifier for two classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x):
        return self.body(x)


TINY_MODEL = trained_model(Tiny(), ["blue", "red"])


@FUZZ
@given(image_bytes())
def test_the_predict_path_gives_a_prediction_or_one_clear_error(photo):
    ext, payload = photo
    (result,) = classify_photos(TINY_MODEL, [(f"upload.{ext}", payload)])
    if result.error is None:
        assert [label for label, _ in result.ranked] in (["blue", "red"], ["red", "blue"])
        assert sum(p for _, p in result.ranked) == pytest.approx(1, abs=1e-5) and result.thumbnail
    else:
        assert result.ranked is None and "\n" not in result.error
        assert result.error.startswith(f"upload.{ext} ") and result.error.endswith("; use a JPEG, PNG or WebP photo") \
            or "megapixels allowed" in result.error


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tiny_imagefolder(tmp_path_factory.mktemp("fuzz") / "d", {"train": 1, "test": 1})


@FUZZ
@given(photo=image_bytes())
def test_the_dataset_loader_gives_a_tensor_or_names_the_file(tree, photo):
    ext, payload = photo
    ext = ext if f".{ext}" in folders.IMAGE_EXTENSIONS else "png"  # a .gif beside the photos would be ignored
    folder = tree / "train" / "red"
    for old in folder.glob("fuzz.*"):
        old.unlink()
    path = folder / f"fuzz.{ext}"
    path.write_bytes(payload)
    real = str(folders.real_root_of(tree) / "train" / "red" / path.name)
    split = open_split(tree, "train", EvalPreset(32))
    (index,) = [i for i, (p, _) in enumerate(split.samples) if p == real]
    try:
        tensor, label = split[index]
    except FtcoreError as e:
        loaded, message = False, str(e)
        assert message.startswith(f"{real} ") and "\n" not in message
        assert message.endswith("; remove or replace that file") or "megapixels allowed" in message
    else:
        loaded = True
        assert tensor.shape == (3, 32, 32) and torch.isfinite(tensor).all() and label == 1
    summary = summarize(tree)
    assert summary.counts["train"]["red"] == 2
    listed = real in summary.unreadable
    assert listed != any(r.path == real for r in summary.images)  # a photo or a named problem, never neither
    if not payload.startswith(b"\xff\xd8\xff"):  # JPEGs are scanned at 1/8 scale, the rest exactly as trained
        assert listed == (not loaded)
