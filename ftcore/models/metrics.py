"""A trained model's metrics.json: its settings, classes, where its weights came from and its history, as JSON
that people and the pages read without torch; written and read here only."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import TrainConfig
from ..data.edits import NO_EDITS
from ..records import History
from ..util.paths import atomic_write
from .trained import TrainedModel


def metrics_dict(trained: TrainedModel) -> dict:
    """What metrics.json holds: config, classes, where the weights came from, the photo edits it trained with (at the
    top, where people look for them) and the rest of the history."""
    history = trained.history.to_dict()
    edits = history.pop("edits") or NO_EDITS
    return {"config": trained.config.to_dict(), "classes": list(trained.classes),
            "weights": trained.weights.describe(), "weights_source": trained.weights.to_dict(),
            "edits": edits, "history": history}


def write_metrics(trained: TrainedModel, path: str | Path) -> Path:
    """Write metrics.json to `path` atomically; OSError when it cannot be written."""
    path = Path(path)
    with atomic_write(path) as out:
        out.write((json.dumps(metrics_dict(trained), indent=2) + "\n").encode())
    return path


def read_metrics(path: str | Path) -> tuple[TrainConfig, History]:
    """The settings and the history a metrics.json holds; OSError, ValueError, KeyError or TypeError for a file
    that cannot be read as one (the caller names the run)."""
    metrics = json.loads(Path(path).read_text())
    edits = metrics.get("edits") or {}
    return TrainConfig.from_dict(metrics["config"]), History.from_dict(
        {**metrics["history"], "edits": edits if edits.get("sha256") else {}})
