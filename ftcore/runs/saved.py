"""Runs that ended with a model: a tab's entry for each (`Run`), their folders saved, loaded and listed, and the
few models kept in memory at once."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import TrainConfig
from ..errors import FtcoreError
from ..lru import LruStore
from ..records import History
from .folder import CHECKPOINT_FILE, METRICS_FILE, REQUEST_FILE
from .snapshot import run_label

if TYPE_CHECKING:
    from ..training import TrainedModel

# Models of saved runs kept in memory at once (process-wide); ResNet-18 is about 45 MB each.
MODELS_IN_MEMORY = 3


class ModelCache(LruStore["TrainedModel"]):
    """The models of at most `capacity` runs (MODELS_IN_MEMORY by default)."""

    def __init__(self, capacity: int = MODELS_IN_MEMORY):
        super().__init__(capacity)


MODELS = ModelCache()


class Run:
    """A finished or stopped run kept for comparison and prediction.

    Its settings and history stay in memory; its model stays in memory while it is among the few most
    recently used (`MODELS`) and is reloaded from its folder after that. A run that was never saved keeps
    its model itself."""

    def __init__(self, id: str, label: str, config: TrainConfig, history: History,
                 trained: TrainedModel | None = None, path: str | Path | None = None):
        if trained is None and path is None:
            raise ValueError(f"run {id} needs its trained model or the folder it was saved to")
        self.id, self.label, self.config, self.history = id, label, config, history
        self.path = Path(path) if path is not None else None
        self._pinned = trained if self.path is None else None  # nowhere else to reload it from
        if trained is not None and self.path is not None:
            MODELS.put(id, trained)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, {self.label!r}, path={str(self.path) if self.path else None!r})"

    @property
    def trained(self) -> TrainedModel:
        """The trained model and what it was trained with (reloaded from disk if it left memory)."""
        if self._pinned is not None:
            return self._pinned
        return MODELS.get(self.id, self._load)

    @property
    def in_memory(self) -> bool:
        """True when asking for `trained` needs no disk read."""
        return self._pinned is not None or self.id in MODELS.ids()

    def checkpoint_bytes(self) -> bytes:
        """The run's checkpoint file, read from its folder when it has one."""
        if self.path is not None and (self.path / CHECKPOINT_FILE).is_file():
            return (self.path / CHECKPOINT_FILE).read_bytes()
        from ..checkpoints import checkpoint_bytes
        return checkpoint_bytes(self.trained)

    def _load(self) -> TrainedModel:
        from ..checkpoints import load_checkpoint  # checkpoints imports training and torch; keep this module light
        return load_checkpoint(self.path / CHECKPOINT_FILE)


def save_run_folder(trained: TrainedModel, runs_dir: str | Path, run_id: str) -> Path:
    """Write a run to <runs_dir>/<run_id>/ (checkpoint.pt, metrics.json) through a temporary folder, so a
    listing never sees half a run and an existing run is never overwritten."""
    from ..checkpoints import save_run

    runs_dir = Path(runs_dir)
    final = runs_dir / run_id
    if final.exists():
        raise FtcoreError(f"a run named {run_id} already exists in {runs_dir}; it was kept and this run was not "
                          "saved (download its checkpoint instead)")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f".saving-{run_id}-"))
    except OSError as e:
        raise FtcoreError(f"cannot write runs to {runs_dir} ({e.strerror or e}); free some space or make it "
                          "writable") from None
    try:
        save_run(trained, tmp)
        os.rename(tmp, final)  # fails rather than replace a folder another run took meanwhile
    except (FtcoreError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = e if isinstance(e, FtcoreError) else (e.strerror or e)
        raise FtcoreError(f"the run could not be saved to {final} ({reason}); download its checkpoint "
                          "instead") from None
    return final


def load_saved_run(folder: str | Path) -> Run:
    """A run from its folder's metrics.json (its model loads from checkpoint.pt only when asked for)."""
    folder = Path(folder)
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text())
        config = TrainConfig.from_dict(metrics["config"])
        history = History.from_dict(metrics["history"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FtcoreError(f"saved run {folder} cannot be read ({type(e).__name__}); delete that folder") from None
    if not (folder / CHECKPOINT_FILE).is_file():
        raise FtcoreError(f"saved run {folder} has no checkpoint.pt; delete that folder")
    return Run(folder.name, run_label(config), config, history, path=folder)


def list_saved_runs(runs_dir: str | Path) -> tuple[list[Run], list[str]]:
    """Every run saved in `runs_dir`, oldest first, and one sentence for each folder that could not be read."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return [], []
    runs, problems = [], []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # runs being written, and anything that is not a run
        if (folder / REQUEST_FILE).is_file() and not (folder / METRICS_FILE).is_file():
            continue  # a run training in a child process, or one that died before it ended (see runner)
        try:
            runs.append(load_saved_run(folder))
        except FtcoreError as e:
            problems.append(str(e))
    return runs, problems
