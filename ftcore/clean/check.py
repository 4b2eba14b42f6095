"""The check of a dataset's photos, top to bottom: list them, embed each once, judge every training label out of
sample, find the photos that are one photo, and lay them all out on a map."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import CHECK_ARCH
from ..data.cleaned import relative_path
from ..data.splits import DatasetSplits, resolve_splits
from .duplicates import duplicate_groups
from .embeddings import Embedder, EmbeddingFile, embed_photos
from .projection import photo_map
from .report import CheckReport, DuplicateRow, PhotoRow, SuspectRow
from .suspects import check_foldable, label_suspects


def judged_roles_of(splits: DatasetSplits) -> tuple[str, ...]:
    """The splits whose labels are judged: the photos a person sorted into the training folders (train, and val
    where it is held out of them)."""
    return ("train", "val") if splits.held_out_of_train else ("train",)


def check_dataset(root: str | Path, arch: str = CHECK_ARCH, weights: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  stop: threading.Event | None = None) -> CheckReport | None:
    """Check every photo of the dataset at `root` with `arch`'s ImageNet layers; None when `stop` is set first.
    `progress(done, total)` follows the photos as they are embedded."""
    started = time.perf_counter()
    splits = resolve_splits(root)
    rows = [(role, path, label) for role in splits.roles for path, label in splits.samples[role]]
    judged_roles = judged_roles_of(splits)
    check_foldable(np.array([label for role, _, label in rows if role in judged_roles]), splits.classes)

    embedder = Embedder(arch, weights)
    vectors, unreadable = embed_photos([path for _, path, _ in rows], embedder,
                                       EmbeddingFile(splits.root, embedder.key), progress, stop)
    if vectors is None:
        return None
    readable = [i for i, (_, path, _) in enumerate(rows) if path not in unreadable]
    rows, vectors = [rows[i] for i in readable], vectors[readable]
    judged = [i for i, (role, _, _) in enumerate(rows) if role in judged_roles]
    names = [relative_path(splits, path) for _, path, _ in rows]

    labels = np.array([rows[i][2] for i in judged])
    suspects = label_suspects(vectors[judged], labels, splits.classes)
    groups = duplicate_groups([path for _, path, _ in rows], [role for role, _, _ in rows], vectors)
    places = photo_map(vectors)

    classes = splits.classes
    return CheckReport(
        root=splits.root, arch=arch, seconds=time.perf_counter() - started, classes=list(classes),
        photos=[PhotoRow(path=name, split=role, label=classes[label], x=round(float(x), 3), y=round(float(y), 3))
                for name, (role, _, label), (x, y) in zip(names, rows, places, strict=True)],
        suspects=[SuspectRow(path=names[judged[s.index]], given=classes[s.given], suggested=classes[s.suggested],
                             score=round(s.score, 4), confidence=round(s.confidence, 4)) for s in suspects],
        duplicates=[DuplicateRow(paths=[names[i] for i in g.members], splits=[rows[i][0] for i in g.members],
                                 leak=g.leak, similarity=g.similarity) for g in groups],
        unreadable={relative_path(splits, path): why for path, why in unreadable.items()})
