"""Prediction: every kind of bad photo is one clear error; odd-but-valid photos decode sensibly."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import trained_model
from ftcore.data.images import open_image
from ftcore.errors import FtcoreError
from ftcore.insight.predict import classify_photos, format_prediction, rank_classes


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


RGB = Image.fromarray(np.full((20, 30, 3), (200, 30, 30), dtype=np.uint8))


@pytest.mark.parametrize("payload, words", [
    (b"", "is empty"),
    (b"hello, I am a text file", "is not an image"),
    (b"%PDF-1.7\n1 0 obj", "is not an image"),
    (encode(RGB, "PNG")[:60], "cannot be decoded"),
    (encode(RGB, "JPEG")[:200], "cannot be decoded"),
    (png_header_claiming(30000, 30000), "megapixels allowed"),  # PIL's own bomb guard
    (png_header_claiming(11000, 10000), "megapixels allowed"),  # under PIL's guard, over ours
    (png_header_claiming(0, 10), "is not an image|cannot be decoded|no pixels"),
])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_uploads_are_one_clear_error(payload, words):
    with pytest.raises(FtcoreError, match=words) as info:
        open_image(payload, "upload.png")
    assert "\n" not in str(info.value) and str(info.value).startswith("upload.png")


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FtcoreError, match="does not exist"):
        open_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("image, fmt", [
    (RGB.convert("L"), "PNG"),
    (RGB.convert("P"), "PNG"),
    (RGB.convert("CMYK"), "JPEG"),
    (RGB.convert("1"), "PNG"),
    (RGB, "WEBP"),
    (RGB, "GIF"),
    (RGB, "BMP"),
    (RGB, "TIFF"),
])
def test_every_common_mode_decodes_to_rgb(image, fmt):
    decoded = open_image(encode(image, fmt), "photo")
    assert decoded.mode == "RGB" and decoded.size == (30, 20)


def test_sixteen_bit_greys_are_scaled_not_clipped():
    grey = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    decoded = np.asarray(open_image(encode(grey, "PNG"), "16-bit.png"))
    assert decoded.shape == (4, 4, 3) and 126 <= decoded.mean() <= 129  # half of 65535 -> half of 255


def test_transparency_is_laid_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert np.asarray(open_image(encode(rgba, "PNG"), "a.png")).tolist()[0][0] == [255, 255, 255]


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = open_image(encode(RGB, "JPEG", exif=exif), "phone.jpg")
    assert decoded.size == (20, 30)


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(open_image(out.getvalue(), "a.gif"))[0, 0, 2] > 200


class Constant(torch.nn.Module):
    """A model that always says [1, 3, 0] in logits (so softmax is known by hand)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.tensor([[1.0, 3.0, 0.0]]).repeat(len(x), 1) + self.w


def test_predictions_are_softmax_sorted():
    ranked = rank_classes(trained_model(Constant(), ["a", "b", "c"]), [RGB, RGB])
    e = np.exp([1.0, 3.0, 0.0])
    expected = sorted(zip(["a", "b", "c"], e / e.sum(), strict=True), key=lambda p: -p[1])
    assert [label for label, _ in ranked[0]] == ["b", "a", "c"]
    assert [p for _, p in ranked[1]] == pytest.approx([p for _, p in expected])
    assert format_prediction("x.jpg", ranked[0]) == "x.jpg: b 0.844, a 0.114, c 0.042"


def test_classify_photos_reports_bad_ones_and_classifies_the_rest():
    photos = [("good.png", encode(RGB, "PNG")), ("bad.jpg", b"nope"), ("good.webp", encode(RGB, "WEBP"))]
    results = classify_photos(trained_model(Constant(), ["a", "b", "c"]), photos, batch=1)
    assert [r.name for r in results] == ["good.png", "bad.jpg", "good.webp"]
    assert results[1].ranked is None and "bad.jpg is not an image" in results[1].error
    assert results[0].ranked[0][0] == "b" and results[2].ranked[0][0] == "b"
    assert Image.open(io.BytesIO(results[0].thumbnail)).format == "JPEG"


@pytest.mark.parametrize("traces", [True, False], ids=["fused copy", "untraceable model"])
def test_the_fused_copy_is_made_once_kept_for_the_latest_model_and_freed_with_it(monkeypatch, traces):
    import gc

    from ftcore.insight import predict

    made = []
    monkeypatch.setattr(predict, "fused_for_inference",
                        lambda model: made.append(model) or (torch.nn.Identity() if traces else model))
    trained = trained_model(Constant(), ["a", "b", "c"])
    first = predict.inference_model(trained.model)
    assert predict.inference_model(trained.model) is first and len(made) == 1
    assert (first is trained.model) is not traces
    other = trained_model(Constant(), ["a", "b", "c"])
    predict.inference_model(other.model)  # another model predicted with: one copy is kept at a time
    assert len(made) == 2 and list(predict._FUSED.keys()) == [other.model]
    made.clear()
    del other
    gc.collect()
    assert len(predict._FUSED) == 0  # freed with its model
