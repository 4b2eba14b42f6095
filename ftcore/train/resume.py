"""Resume: what a run saves after every epoch of every layer, and how a new process picks it back up.

The state holds everything the next epoch depends on: the weights, the optimiser's state, the history so far
and the random generators (PyTorch's global one, which draws augmentations when photos stream from disk, and
the training batches' own, which shuffles and crops). A run resumed from it ends where an uninterrupted run
would. Output-layer epochs (the quick and best presets) are not saved one by one: they take seconds, and a run
interrupted among them starts them again.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..errors import FtcoreError
from ..util.paths import atomic_write

FORMAT = "ftcore-resume"
VERSION = 1


def batches_generator(batches: object) -> torch.Generator | None:
    """The generator that shuffles (and, decoded once, crops) the training batches, if they have one: their own,
    or their sampler's (a class-balanced draw of photos streamed from disk)."""
    generator = getattr(batches, "generator", None)
    return generator if generator is not None else getattr(getattr(batches, "sampler", None), "generator", None)


def torch_generators() -> dict:
    """PyTorch's global generators (the CPU one, and every GPU's), as plain tensors."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_torch_generators(state: dict) -> None:
    """Put back what torch_generators() took."""
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def capture(config_dict: dict, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, history_dict: dict,
            batches: object) -> dict:
    """The state after `epoch` epochs (output-layer epochs included): copies of plain tensors and dicts, safe to
    keep while training goes on and to load with weights_only."""
    generator = batches_generator(batches)
    return {"format": FORMAT, "version": VERSION, "config": config_dict, "epoch": epoch,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()), "history": history_dict, **torch_generators(),
            "batches_rng": generator.get_state() if generator is not None else None}


def restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, batches: object) -> None:
    """Put a captured state back into a freshly built model, optimiser and training batches."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_torch_generators(state)
    generator = batches_generator(batches)
    if generator is not None and state["batches_rng"] is not None:
        generator.set_state(state["batches_rng"])


def save_state(state: dict, path: str | Path) -> Path:
    """Write the state to `path` (a run folder's resume.pt) atomically: a kill while writing keeps the previous
    epoch's."""
    path = Path(path)
    with atomic_write(path) as out:
        torch.save(state, out)
    return path


def load_state(path: str | Path) -> dict:
    """The state saved at `path` (a run folder's resume.pt), or an FtcoreError saying why it cannot be resumed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FtcoreError(f"{path.parent} holds no {path.name}, so there is nothing to resume; a run saves it after "
                          "each epoch of every layer, so start it again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign files raise many types
        raise FtcoreError(f"{path} cannot be read ({type(e).__name__}); start the run again") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FtcoreError(f"{path} is not a state ftcore saved; start the run again")
    return state
