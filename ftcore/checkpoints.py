"""Checkpoints: a trained model's weights plus everything needed to use and explain it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import EvalPreset
from .errors import FtcoreError
from .models import get_arch, replace_output_layer
from .training import History, TrainConfig, TrainResult

FORMAT = "ftcore-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, on CPU) and what it was trained with."""

    model: nn.Module
    arch: str
    classes: list[str]
    eval_transform: EvalPreset
    config: TrainConfig
    history: History
    weights: str  # where the starting weights came from


def checkpoint_dict(result: TrainResult) -> dict:
    """The plain dict that is saved: tensors, strings, numbers, lists and dicts only (weights_only-safe)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": result.config.arch,
        "classes": list(result.classes),
        "eval_transform": result.eval_transform.to_dict(),
        "config": result.config.to_dict(),
        "history": result.history.to_dict(),
        "weights": result.weights.describe(),
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }


def checkpoint_bytes(result: TrainResult) -> bytes:
    """The checkpoint file's bytes, for a download button."""
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(result), buffer)
    return buffer.getvalue()


def metrics_dict(result: TrainResult) -> dict:
    """What metrics.json holds: config, classes, where the weights came from, and the history."""
    return {"config": result.config.to_dict(), "classes": list(result.classes),
            "weights": result.weights.describe(), "history": result.history.to_dict()}


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create a run folder (before training, so that an unwritable one fails at once)."""
    out_dir = Path(out_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FtcoreError(f"cannot create the output folder {out_dir} ({e.strerror or e}); choose a writable "
                          "one (--out)") from None
    return out_dir


def save_run(result: TrainResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write out_dir/checkpoint.pt and out_dir/metrics.json; return both paths."""
    out_dir = prepare_out_dir(out_dir)
    try:
        checkpoint = out_dir / "checkpoint.pt"
        torch.save(checkpoint_dict(result), checkpoint)
        metrics = out_dir / "metrics.json"
        metrics.write_text(json.dumps(metrics_dict(result), indent=2) + "\n")
    except OSError as e:
        raise FtcoreError(f"cannot write the run to {out_dir} ({e.strerror or e}); choose a writable output "
                          "folder (--out)") from None
    return checkpoint, metrics


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint written by `save_run` (torch.load with weights_only=True) and rebuild its model."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FtcoreError(f"checkpoint {path} does not exist; pass the checkpoint.pt a training run wrote")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip, EOF and runtime errors all mean "not a checkpoint we can read"
        raise FtcoreError(f"checkpoint {path} cannot be read ({type(e).__name__}); pass the checkpoint.pt "
                          "a training run wrote") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise FtcoreError(f"{path} is not an ftcore checkpoint; pass the checkpoint.pt a training run wrote")
    try:
        arch = get_arch(d["arch"]).name
        classes = [str(c) for c in d["classes"]]
        model = get_arch(arch).build(weights=None)
        replace_output_layer(model, arch, len(classes))
        model.load_state_dict(d["state_dict"])
        transform = EvalPreset.from_dict(d["eval_transform"])
        config = TrainConfig.from_dict(d["config"])
        history = History.from_dict(d["history"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise FtcoreError(f"checkpoint {path} is damaged or from another version ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120]}); train again to make a new one") from None
    model.eval()
    return Checkpoint(model, arch, classes, transform, config, history, str(d.get("weights", "")))
