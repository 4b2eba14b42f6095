"""Prediction: decoding any photo safely and classifying it with a trained model."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from .checkpoints import load_checkpoint
from .data import EvalPreset
from .errors import FtcoreError
from .training import TrainResult

# Photo types the app's uploader accepts; the CLI reads anything PIL can decode.
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")
# Larger images are refused before decoding: 100 megapixels is ~300 MB of RGB.
MAX_IMAGE_PIXELS = 100_000_000


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any PIL mode: 16-bit and float greys scaled into 0-255, transparency laid on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 255.0)
        image = Image.fromarray(np.clip(values * 255.0 / top, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Decode a photo (a path or raw bytes) into an RGB image; anything unusable raises one FtcoreError."""
    label = name or (str(source) if not isinstance(source, bytes) else "the upload")
    if isinstance(source, bytes):
        if not source:
            raise FtcoreError(f"{label} is empty; upload a JPEG, PNG or WebP photo")
        stream = io.BytesIO(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FtcoreError(f"image {label} does not exist; pass the path of a photo")
        stream = path
    try:
        with Image.open(stream) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise FtcoreError(f"{label} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS // 10**6} "
                                  "megapixels allowed; shrink it first")
            if width < 1 or height < 1:
                raise FtcoreError(f"{label} has no pixels ({width}x{height}); use a real photo")
            image.seek(0)  # the first frame of an animated GIF/WebP
            return _to_rgb(ImageOps.exif_transpose(image))  # phone photos carry their rotation in EXIF
    except FtcoreError:
        raise
    except Image.DecompressionBombError:  # PIL's own guard, for sizes far past ours
        raise FtcoreError(f"{label} is larger than the {MAX_IMAGE_PIXELS // 10**6} megapixels allowed; "
                          "shrink it first") from None
    except Exception as e:  # PIL raises many types on hostile files (OSError, SyntaxError, struct.error, ...)
        kind = "is not an image" if isinstance(e, Image.UnidentifiedImageError) else "cannot be decoded"
        raise FtcoreError(f"{label} {kind} ({type(e).__name__}); use a JPEG, PNG or WebP photo") from None


@dataclass
class Predictor:
    """A trained model ready to classify photos; it is only ever used in eval mode, never changed."""

    model: nn.Module
    classes: list[str]
    transform: EvalPreset

    def __post_init__(self) -> None:
        self.model.eval()
        self.device = next(self.model.parameters()).device

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        """A predictor for a checkpoint file written by a training run."""
        checkpoint = load_checkpoint(path)
        return cls(checkpoint.model, checkpoint.classes, checkpoint.eval_transform)

    @classmethod
    def from_result(cls, result: TrainResult) -> Predictor:
        """A predictor for a run that just finished in this process."""
        return cls(result.model, list(result.classes), result.eval_transform)

    @torch.inference_mode()
    def probabilities(self, images: list[Image.Image]) -> torch.Tensor:
        """Softmax class probabilities, one row per image (the test transform first, as in evaluation)."""
        batch = torch.stack([self.transform(image) for image in images]).to(self.device)
        return torch.softmax(self.model(batch).float(), dim=1).cpu()

    def predict(self, images: list[Image.Image]) -> list[list[tuple[str, float]]]:
        """For each image, (class, probability) pairs from most to least likely."""
        rows = self.probabilities(images).tolist()
        return [sorted(zip(self.classes, row, strict=True), key=lambda pair: -pair[1]) for row in rows]


def format_prediction(name: str, ranked: list[tuple[str, float]]) -> str:
    """`IMAGE: class p, class p`, as the CLI prints it."""
    return f"{name}: " + ", ".join(f"{label} {p:.3f}" for label, p in ranked)


@dataclass
class PhotoResult:
    """The outcome for one uploaded photo: its ranking and a display thumbnail, or why it was refused."""

    name: str
    ranked: list[tuple[str, float]] | None = None
    thumbnail: bytes | None = None  # JPEG of the decoded photo, safe to show whatever the upload was
    error: str | None = None


def thumbnail_jpeg(image: Image.Image, size: int = 320) -> bytes:
    """A JPEG copy of a decoded image, longest side `size`."""
    copy = image.copy()
    copy.thumbnail((size, size))
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=85)
    return out.getvalue()


def classify_photos(predictor: Predictor, photos: list[tuple[str, bytes]], batch: int = 32) -> list[PhotoResult]:
    """Classify uploaded photos; a photo that cannot be decoded gets an error and the others go on."""
    results, decoded = [], []
    for name, payload in photos:
        try:
            image = open_image(payload, name)
        except FtcoreError as e:
            results.append(PhotoResult(name, error=str(e)))
            continue
        result = PhotoResult(name, thumbnail=thumbnail_jpeg(image))
        results.append(result)
        decoded.append((result, image))
    for start in range(0, len(decoded), batch):
        chunk = decoded[start:start + batch]
        for (result, _), ranked in zip(chunk, predictor.predict([image for _, image in chunk]), strict=True):
            result.ranked = ranked
    return results
