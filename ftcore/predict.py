"""Prediction: decoding any photo safely and classifying it with a trained model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .checkpoints import load_checkpoint
from .data import EvalPreset
from .errors import FtcoreError
from .images import jpeg_thumbnail, open_image
from .models import fused_for_inference
from .training import TrainResult

# Photo types the app's uploader accepts; the CLI reads anything PIL can decode.
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")


@dataclass
class Predictor:
    """A trained model ready to classify photos; it is only ever used in eval mode, never changed."""

    model: nn.Module
    classes: list[str]
    transform: EvalPreset

    def __post_init__(self) -> None:
        self.model.eval()
        self.device = next(self.model.parameters()).device
        self._inference_model: nn.Module | None = None

    @property
    def inference_model(self) -> nn.Module:
        """What probabilities() runs: a copy with BatchNorm folded into the convolutions (same outputs, faster
        on CPU), made on first use; `model` itself stays as trained, for Grad-CAM's view of its activations."""
        if self._inference_model is None:
            self._inference_model = fused_for_inference(self.model)
        return self._inference_model

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
        return torch.softmax(self.inference_model(batch).float(), dim=1).cpu()

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


def classify_photos(predictor: Predictor, photos: list[tuple[str, bytes]], batch: int = 32) -> list[PhotoResult]:
    """Classify uploaded photos; a photo that cannot be decoded gets an error and the others go on.

    At most `batch` decoded photos are held at once, so many large photos do not add up in memory."""
    results, decoded = [], []

    def flush() -> None:
        for (result, _), ranked in zip(decoded, predictor.predict([image for _, image in decoded]), strict=True):
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
