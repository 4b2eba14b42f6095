"""Runs that ended with a model: a tab's entry for each (`Run`), their folders saved, loaded and listed, and the few
models kept in memory at once. No torch at import: a checkpoint is read only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..models.metrics import read_metrics, write_metrics
from ..models.trained import TrainedModel
from ..records import History
from ..train.steering import changes_text
from ..util.lru import LruStore
from .folder import CHECKPOINT_FILE, METRICS_FILE, REQUEST_FILE, prepare_out_dir, read_owner
from .snapshot import run_label

# Models of saved runs kept in memory at once (process-wide); ResNet-18 is about 45 MB each.
MODELS_IN_MEMORY = 3


MODELS: LruStore[TrainedModel] = LruStore(MODELS_IN_MEMORY)  # the server's: every tab's runs share it


class Run:
    """A finished or stopped run of a tab: its settings and history, its model kept among the few in `MODELS`."""

    def __init__(self, id: str, label: str, config: TrainConfig, history: History,
                 trained: TrainedModel | None = None, path: str | Path | None = None):
        if trained is None and path is None:
            raise ValueError(f"run {id} needs its trained model or the folder it was saved to")
        self.id, self.label, self.config, self.history = id, label, config, history
        self.path = Path(path) if path is not None else None
        self._pinned = trained if self.path is None else None  # nowhere else to reload it from
        if trained is not None and self.path is not None:
            MODELS.put(id, trained)

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
        from ..models.checkpoint import checkpoint_bytes  # torch, only now: this module is on the pages' light path

        return checkpoint_bytes(self.trained)

    def _load(self) -> TrainedModel:
        from ..models.checkpoint import load_checkpoint  # torch, only now: this module is on the pages' light path

        return load_checkpoint(self.path / CHECKPOINT_FILE)

    def table_row(self) -> dict:
        """The run as one row of a page's table of runs: its last epoch's figures, its test accuracy and speed."""
        last = self.history.final()
        return {"run": self.label, "epochs": last.epoch if last else 0,
                "train loss": last.train_loss if last else None, "train acc": last.train_acc if last else None,
                "val acc": last.val_acc if last else None, "test acc": self.history.final_test(),
                "examples/sec": round(self.history.examples_per_sec, 1), "devices": ", ".join(self.history.devices),
                "stopped": self.history.stopped,
                "steered": changes_text(self.history.steering)}


def best_run(runs: Sequence[Run]) -> tuple[int, str] | None:
    """The position of the run with the best last held-out accuracy (the newest on a tie), and why; None: none."""
    measured = [(run.history.final_heldout(), i) for i, run in enumerate(runs)
                if run.history.final_heldout() is not None]
    if not measured:
        return None
    accuracy, best = max(measured)  # the higher position wins a tie: the newer run
    splits = {runs[i].history.heldout for _, i in measured}
    split = splits.pop() if len(splits) == 1 else "held-out (val or test)"  # runs on other layouts, said so
    if len(measured) == 1:
        return best, f"the only run of this tab with a {split} accuracy ({accuracy:.3f})"
    runner_up, other = max((a, i) for a, i in measured if i != best)
    tie = " (the newest of the best)" if runner_up == accuracy else ""
    return best, (f"the best {split} accuracy of this tab's {len(measured)} measured runs, {accuracy:.3f}{tie}; "
                  f"next: #{other + 1} at {runner_up:.3f}")


def save_run(trained: TrainedModel, out_dir: str | Path) -> tuple[Path, Path]:
    """Write checkpoint.pt, then metrics.json (a folder with it holds a whole run) into `out_dir`; both paths."""
    from ..models.checkpoint import save_checkpoint  # torch, only now: this module is on the pages' light path

    out_dir = prepare_out_dir(out_dir)
    try:
        return save_checkpoint(trained, out_dir / CHECKPOINT_FILE), write_metrics(trained, out_dir / METRICS_FILE)
    except OSError as e:
        raise FtcoreError(f"cannot write the run to {out_dir} ({e.strerror or e}); choose a writable output "
                          "folder (--out)") from None


def load_saved_run(folder: str | Path) -> Run:
    """A run from its folder's metrics.json (its model loads from checkpoint.pt only when asked for)."""
    folder = Path(folder)
    try:
        config, history = read_metrics(folder / METRICS_FILE)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FtcoreError(f"saved run {folder} cannot be read ({type(e).__name__}); delete that folder") from None
    if not (folder / CHECKPOINT_FILE).is_file():
        raise FtcoreError(f"saved run {folder} has no checkpoint.pt; delete that folder")
    return Run(folder.name, run_label(config), config, history, path=folder)


def list_saved_runs(runs_dir: str | Path, owner: str | None = None) -> tuple[list[Run], list[str]]:
    """Every run saved in `runs_dir` (with `owner`, that owner's), and one sentence for each unreadable folder."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return [], []
    runs, problems = [], []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # runs being written, and anything that is not a run
        if (folder / REQUEST_FILE).is_file() and not (folder / METRICS_FILE).is_file():
            continue  # a run training in a child process, or one that died before it ended (see runner)
        if owner is not None and read_owner(folder) != owner:
            continue
        try:
            runs.append(load_saved_run(folder))
        except FtcoreError as e:
            problems.append(str(e))
    return runs, problems
