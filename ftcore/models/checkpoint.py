"""A trained model's checkpoint file: its weights plus everything needed to use and explain it, written and read
here only (torch.save, and torch.load with weights_only=True)."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import torch
from torch import nn

from ..archs import arch_names, get_arch
from ..config import TrainConfig
from ..data.transforms import EvalPreset
from ..errors import FtcoreError
from ..records import History
from ..util.paths import atomic_write
from .loading import state_mismatch
from .output_layer import replace_output_layer
from .trained import TrainedModel
from .weights import WeightsSource

FORMAT = "ftcore-checkpoint"
VERSION = 1


def stored_weights_source(d: dict) -> WeightsSource:
    """Where a saved run's starting weights came from: the stored record, or, in files saved before it was
    stored, rebuilt from the phrase they hold instead (WeightsSource.describe() of that version)."""
    if isinstance(d.get("weights_source"), dict):
        return WeightsSource.from_dict(d["weights_source"])
    match = re.fullmatch(r"ImageNet weights from (.+?): (.*)", str(d.get("weights", "")))
    return WeightsSource(match.group(1), match.group(2)) if match else WeightsSource("random")


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes: it changes when any stored weight does."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_dict(trained: TrainedModel) -> dict:
    """The plain dict that is saved: tensors, strings, numbers, lists and dicts only (weights_only-safe)."""
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": trained.config.arch,
        "classes": list(trained.classes),
        "eval_transform": trained.eval_transform.to_dict(),
        "config": trained.config.to_dict(),
        "history": trained.history.to_dict(),
        "weights": trained.weights.describe(),  # for people reading the file
        "weights_source": trained.weights.to_dict(),
        "state_dict": state,
        "state_sha256": state_digest(state),  # torch.load does not notice altered tensor bytes; this does
    }


def checkpoint_bytes(trained: TrainedModel) -> bytes:
    """The checkpoint file's bytes, for a download button."""
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(trained), buffer)
    return buffer.getvalue()


def save_checkpoint(trained: TrainedModel, path: str | Path) -> Path:
    """Write the checkpoint to `path` atomically (a kill while writing leaves no half file); OSError when it cannot
    be written."""
    path = Path(path)
    with atomic_write(path) as out:
        torch.save(checkpoint_dict(trained), out)
    return path


def _check_state(path: Path, arch: str, classes: list[str], model: nn.Module, state: dict) -> None:
    """Name the first way `state` does not fit `arch` with len(classes) outputs (before load_state_dict)."""
    head = get_arch(arch).head + ".weight"
    expected = model.state_dict()
    if isinstance(state.get(head), torch.Tensor) and set(state) == set(expected) \
            and tuple(state[head].shape) != tuple(expected[head].shape):
        raise FtcoreError(f"checkpoint {path} lists {len(classes)} classes ({', '.join(classes)}) but its output "
                          f"layer has {state[head].shape[0]} outputs; it was altered after training, so train again")
    problem = state_mismatch(model, state)
    if problem is not None and "unexpected tensors" in problem:
        raise FtcoreError(f"checkpoint {path} says {arch} but holds the weights of another architecture "
                          f"({problem}); it was altered after training, so train again")
    if problem is not None:
        raise FtcoreError(f"checkpoint {path} does not fit {arch}: {problem}; it was altered after training, so "
                          "train again")


def load_checkpoint(path: str | Path) -> TrainedModel:
    """Load a checkpoint written by `save_checkpoint` (torch.load with weights_only=True) and rebuild its model.

    A file that is not one, was altered, or whose architecture, weights and class list disagree is refused
    with a sentence naming the mismatch."""
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
    if not isinstance(d.get("arch"), str) or d["arch"] not in arch_names():
        raise FtcoreError(f"checkpoint {path} is for the architecture {d.get('arch')!r}, which this version of "
                          "torchvision does not have; use a checkpoint of a network it lists")
    try:
        arch = get_arch(d["arch"]).name
        classes = [str(c) for c in d["classes"]]
        state = d["state_dict"]
        if not isinstance(state, dict):
            raise TypeError("state_dict is not a dict")
        if "state_sha256" in d and state_digest(state) != d["state_sha256"]:
            raise FtcoreError(f"checkpoint {path} was altered after it was saved (its weights do not match the "
                              "checksum stored with them); use the original file or train again")
        model = get_arch(arch).build(weights=None)
        replace_output_layer(model, arch, len(classes))
        _check_state(path, arch, classes, model, state)
        model.load_state_dict(state)
        transform = EvalPreset.from_dict(d["eval_transform"])
        config = TrainConfig.from_dict(d["config"])
        if config.arch != arch:
            raise FtcoreError(f"checkpoint {path} holds {arch} weights but its settings say {config.arch}; it was "
                              "altered after training, so train again")
        history = History.from_dict(d["history"])
    except FtcoreError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise FtcoreError(f"checkpoint {path} is damaged or from another version ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:120] if str(e) else ''}); train again to make a new one") from None
    model.eval()
    return TrainedModel(model, config, classes, history, stored_weights_source(d), transform)
