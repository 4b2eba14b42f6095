"""Prediction: decoding any photo safely and classifying it with a trained model."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from ..data.images import jpeg_thumbnail, open_image
from ..errors import FtcoreError
from ..models.build import fused_for_inference
from ..models.trained import TrainedModel

# Photo types the app's uploader accepts; the CLI reads anything PIL can decode.
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")


# The model predicted with last -> its fused copy (None: the model cannot be fused and runs as it is). One copy
# at a time, so prediction adds one model's memory however many are kept; freed with its model.
_FUSED: weakref.WeakKeyDictionary[nn.Module, nn.Module | None] = weakref.WeakKeyDictionary()
_FUSING = threading.Lock()  # sessions predicting with one model at once fuse it once


def inference_model(model: nn.Module) -> nn.Module:
    """What predictions run: a copy of `model` with BatchNorm folded into the convolutions (same outputs, faster
    on CPU), made when a model is predicted with and kept until another one is; `model` itself stays as trained,
    for Grad-CAM's view of its activations."""
    with _FUSING:
        if model not in _FUSED:
            _FUSED.clear()
            fused = fused_for_inference(model)
            _FUSED[model] = None if fused is model else fused  # a value holding its key would keep it alive forever
        fused = _FUSED[model]
    return model if fused is None else fused


@torch.inference_mode()
def probabilities(trained: TrainedModel, images: list[Image.Image]) -> torch.Tensor:
    """Softmax class probabilities, one row per image (the test transform first, as in evaluation)."""
    model = inference_model(trained.model)
    device = next(model.parameters()).device
    batch = torch.stack([trained.eval_transform(image) for image in images]).to(device)
    return torch.softmax(model(batch).float(), dim=1).cpu()


def rank_classes(trained: TrainedModel, images: list[Image.Image]) -> list[list[tuple[str, float]]]:
    """For each image, (class, probability) pairs from most to least likely."""
    rows = probabilities(trained, images).tolist()
    return [sorted(zip(trained.classes, row, strict=True), key=lambda pair: -pair[1]) for row in rows]


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


def classify_photos(trained: TrainedModel, photos: list[tuple[str, bytes]], batch: int = 32) -> list[PhotoResult]:
    """Classify uploaded photos; a photo that cannot be decoded gets an error and the others go on.

    At most `batch` decoded photos are held at once, so many large photos do not add up in memory."""
    results, decoded = [], []

    def flush() -> None:
        for (result, _), ranked in zip(decoded, rank_classes(trained, [image for _, image in decoded]), strict=True):
            result.ranked = ranked
        decoded.clear()

    for name, payload in photos:
        try:
            image = open_image(payload, name)
        except FtcoreError as e:
            results.append(PhotoResult(name, error=str(e)))
            continue
        result = PhotoResult(name, thumbnail=jpeg_thumbnail(image, 320))
        results.append(result)
        decoded.append((result, image))
        if len(decoded) == batch:
            flush()
    if decoded:
        flush()
    return results
