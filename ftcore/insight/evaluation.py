"""Evaluation: a trained model on a test split, as a confusion matrix, per-class metrics and its worst mistakes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.dataset import check_image_folder, split_photos
from ..data.splits import match_classes, resolve_splits
from ..data.transforms import EvalPreset
from ..models.activations import activations, spec_for
from ..train.evaluate import EvalPass

EVAL_BATCH = 32  # photos per forward pass


@dataclass
class ClassMetrics:
    """Precision, recall, F1 and support of one class."""

    name: str
    precision: float  # of the photos predicted as this class, the share that are
    recall: float  # of the photos of this class, the share predicted as it
    f1: float  # harmonic mean of precision and recall
    support: int  # photos of this class


@dataclass
class PhotoOutcome:
    """One test photo: its class, the prediction, and the loss the model paid on it."""

    index: int
    path: str
    true: str
    predicted: str
    probability: float  # of the predicted class
    true_probability: float
    loss: float  # cross-entropy, -log p(true class)

    @property
    def correct(self) -> bool:
        """True when the prediction is the photo's class."""
        return self.true == self.predicted


@dataclass
class Evaluation:
    """Every test photo's class probabilities (and penultimate features): the rest is computed from them."""

    classes: list[str]
    paths: list[str]
    targets: np.ndarray  # N class indices
    probabilities: np.ndarray  # N x C softmax outputs
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))  # N x D, or empty
    split: str = "test"  # which split of the data the photos are
    note: str = ""  # how the data's class names were matched to the model's ("" when they are the same)

    @property
    def predictions(self) -> np.ndarray:
        """The most likely class of each photo."""
        return self.probabilities.argmax(axis=1) if len(self.paths) else np.zeros(0, dtype=np.int64)

    @property
    def losses(self) -> np.ndarray:
        """Per-photo cross-entropy, -log p(true class) (capped at p = 1e-12)."""
        p = self.probabilities[np.arange(len(self.targets)), self.targets]
        return -np.log(np.clip(p, 1e-12, 1.0))

    @property
    def confusion(self) -> np.ndarray:
        """Confusion matrix: rows are true classes, columns predicted ones."""
        return confusion_matrix(self.targets, self.predictions, len(self.classes))

    @property
    def accuracy(self) -> float:
        """Share of photos predicted right."""
        return accuracy(self.confusion)

    def accuracy_without(self, left_out: set[str]) -> tuple[float, int]:
        """Share of photos predicted right among those not in `left_out` (full paths), and how many were left out."""
        kept = np.array([path not in left_out for path in self.paths], dtype=bool)
        if not kept.any():
            return 0.0, len(self.paths)
        return float((self.predictions[kept] == self.targets[kept]).mean()), int((~kept).sum())

    @property
    def balanced_accuracy(self) -> float:
        """The mean of the classes' recalls: what accuracy would be were every class as large."""
        return balanced_accuracy(self.confusion)

    def per_class(self) -> list[ClassMetrics]:
        """Precision, recall, F1 and support of each class."""
        return class_metrics(self.confusion, self.classes)

    def outcome(self, i: int) -> PhotoOutcome:
        """Photo i's outcome."""
        t, p = int(self.targets[i]), int(self.predictions[i])
        return PhotoOutcome(i, self.paths[i], self.classes[t], self.classes[p], float(self.probabilities[i, p]),
                            float(self.probabilities[i, t]), float(self.losses[i]))

    def worst(self, k: int = 8) -> list[PhotoOutcome]:
        """The k photos with the highest loss (the most confident mistakes first)."""
        order = np.argsort(-self.losses, kind="stable")[:k]
        return [self.outcome(int(i)) for i in order]

    def cells_by_mistakes(self) -> list[tuple[int, int]]:
        """Every confusion-matrix cell as (true, predicted): the mistakes first, largest first, then the right
        answers, largest first."""
        n, confusion = len(self.classes), self.confusion
        return sorted(((t, p) for t in range(n) for p in range(n)), key=lambda c: (c[0] == c[1], -confusion[c]))

    def cell(self, true: int, predicted: int) -> list[PhotoOutcome]:
        """The photos of one confusion-matrix cell, highest loss first."""
        members = np.flatnonzero((self.targets == true) & (self.predictions == predicted))
        return sorted((self.outcome(int(i)) for i in members), key=lambda o: -o.loss)

    def to_dict(self, top: int = 8) -> dict:
        """Plain dict for JSON: accuracy, per-class metrics, confusion matrix and the worst photos."""
        return {"classes": list(self.classes), "split": self.split, "class_note": self.note,
                "photos": len(self.paths), "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "per_class": [vars(m) for m in self.per_class()],
                "confusion": {"rows": "true class", "columns": "predicted class",
                              "matrix": self.confusion.tolist()},
                "worst": [{**vars(o), "correct": o.correct} for o in self.worst(top)]}


# --------------------------------------------------------------------------------------------------
# The metrics, from the confusion matrix alone.


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[t, p]: photos of class t predicted as p."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return counts


def accuracy(confusion: np.ndarray) -> float:
    """Diagonal over total (0 for no photos)."""
    total = int(confusion.sum())
    return float(np.trace(confusion)) / total if total else 0.0


def balanced_accuracy(confusion: np.ndarray) -> float:
    """The mean recall of the classes that have photos (rows of the confusion matrix); 0 with none."""
    support = confusion.sum(axis=1)
    seen = support > 0
    return float((np.diag(confusion)[seen] / support[seen]).mean()) if seen.any() else 0.0


def class_metrics(confusion: np.ndarray, classes: list[str]) -> list[ClassMetrics]:
    """Per-class precision (column), recall (row), F1 and support; 0 where a ratio has nothing to divide."""
    rows = []
    for i, name in enumerate(classes):
        tp, predicted, support = int(confusion[i, i]), int(confusion[:, i].sum()), int(confusion[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassMetrics(name, precision, recall, f1, support))
    return rows


# --------------------------------------------------------------------------------------------------
# Running a model over a split.


def check_classes(model_classes: list[str], root: str) -> str:
    """Refuse data whose classes are not the ones the model was trained on (names compared as splits.class_key
    does); return the sentence naming any matched that way."""
    return match_classes(model_classes, check_image_folder(root), root)[1]


@torch.inference_mode()
def evaluate_photos(model: nn.Module, classes: list[str], transform: EvalPreset, root: str, split: str | None = None,
                   limit: int | None = None, arch: str | None = None, stop: threading.Event | None = None,
                   progress: Callable[[int, int], None] | None = None, val_fraction: float | None = None,
                   split_seed: int = 0) -> Evaluation:
    """Class probabilities and penultimate features of every photo of `split` (default: test, else val; at most
    `limit` per class), with the data's classes matched to the model's by name; the pass over the photos is the
    training loop's own (`train.evaluate.EvalPass`)."""
    splits = resolve_splits(root, val_fraction, split_seed)
    mapping, note = match_classes(classes, splits.classes, root)
    split = split or ("test" if "test" in splits.samples else splits.heldout)
    dataset = split_photos(splits, split, transform, limit)
    dataset.samples = [(path, mapping[target]) for path, target in dataset.samples]  # the model's class indices
    dataset.targets = [target for _, target in dataset.samples]
    loader = DataLoader(dataset, batch_size=EVAL_BATCH)
    device = next(model.parameters()).device
    probabilities, features, targets = [], [], []
    spec = spec_for(model, arch)
    view = activations(model, {spec.feature_node: "features", spec.logits_node: "logits"})
    for out, y in EvalPass(view, loader, device, stop=stop):
        probabilities.append(torch.softmax(out["logits"].float(), dim=1).cpu())
        features.append(out["features"].flatten(1).float().cpu())
        targets.append(y.cpu())
        if progress is not None:
            progress(sum(len(t) for t in targets), len(dataset))
    seen = sum(len(t) for t in targets)
    return Evaluation(list(classes), [path for path, _ in dataset.samples[:seen]],
                      torch.cat(targets).numpy() if targets else np.zeros(0, dtype=np.int64),
                      torch.cat(probabilities).numpy() if probabilities else np.zeros((0, len(classes))),
                      torch.cat(features).numpy() if features else np.zeros((0, 0), dtype=np.float32), split, note)


# --------------------------------------------------------------------------------------------------
# Text for the command line.


def format_evaluation(evaluation: Evaluation, top: int = 8) -> str:
    """Per-class table, accuracy, confusion matrix and worst photos, as `python -m ftcore evaluate` prints them."""
    width = max([len(c) for c in evaluation.classes] + [9])
    lines = [evaluation.note] if evaluation.note else []
    lines.append(f"{'class':{width}s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'support':>8s}")
    for m in evaluation.per_class():
        lines.append(f"{m.name:{width}s} {m.precision:9.3f} {m.recall:7.3f} {m.f1:6.3f} {m.support:8d}")
    lines.append(f"accuracy {evaluation.accuracy:.3f}, balanced accuracy {evaluation.balanced_accuracy:.3f} (the "
                 f"mean of the classes' recalls) on {len(evaluation.paths)} {evaluation.split} photos")
    lines.append("")
    lines.append("confusion matrix (rows: true class, columns: predicted class)")
    cell = max([len(c) for c in evaluation.classes] + [len(str(int(evaluation.confusion.max(initial=0))))])
    lines.append(f"{'':{width}s} " + " ".join(f"{c:>{cell}s}" for c in evaluation.classes))
    for name, row in zip(evaluation.classes, evaluation.confusion, strict=True):
        lines.append(f"{name:{width}s} " + " ".join(f"{int(v):>{cell}d}" for v in row))
    lines.append("")
    lines.append(f"worst {top} photos (highest loss first)")
    for o in evaluation.worst(top):
        verdict = "right" if o.correct else "wrong"
        lines.append(f"{o.path}: true {o.true}, predicted {o.predicted} p {o.probability:.3f}, "
                     f"loss {o.loss:.3f} ({verdict})")
    return "\n".join(lines)
