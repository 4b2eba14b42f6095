"""Widgets more than one page draws: the model picker of Predict and Evaluate, this tab's data with its caption,
errors a user can fix as one red line, and number columns with three decimals; each returns what the user chose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app import cached, jobs, tab
from ftcore.data.summary import DatasetSummary
from ftcore.errors import FtcoreError
from ftcore.models.trained import TrainedModel
from ftcore.runs.saved import Run, best_run

CHECKPOINT = "A checkpoint file (.pt)"


@dataclass
class ModelChoice:
    """A model chosen on a page: a run (of this tab, or saved on this machine) or an uploaded checkpoint."""

    run: Run | None = None
    upload: UploadedFile | None = None
    in_tab: bool = False  # the run was trained in this tab (else saved earlier, on this machine)
    why: str = ""  # why the page opened on this run, where it chose it (runs.saved.best_run)

    @property
    def key(self) -> str:
        """What a cache of this model's results is keyed by."""
        return self.run.id if self.run is not None else f"checkpoint-{self.upload.file_id}"

    @property
    def label(self) -> str:
        """What the page calls the model: the run's label, or the checkpoint file's name."""
        return self.run.label if self.run is not None else self.upload.name

    def trained_model(self) -> TrainedModel:
        """The model and what it was trained with (read from disk when it is not in memory)."""
        return self.run.trained if self.run is not None else cached.checkpoint_from_upload(self.upload.getvalue())


def model_picker_ui(page: str) -> ModelChoice | None:
    """Choose one of this tab's runs, a run saved on this machine, or a checkpoint file; it opens on the tab's run
    with the best held-out accuracy (else its newest run, else the newest saved one)."""
    runs = jobs.runs()
    saved, _ = jobs.saved_runs()
    by_id = {run.id: run for run in saved}
    # this tab's runs by position, saved runs by id (stable as runs are saved), then the file option
    options = list(range(len(runs))) + [f"saved:{run.id}" for run in saved] + [CHECKPOINT]
    best = best_run(runs)
    default = best[0] if best else len(runs) - 1 if runs else max(len(saved) - 1, 0)

    def label(option: int | str) -> str:
        if isinstance(option, int):
            return f"#{option + 1} {runs[option].label}"
        if option.startswith("saved:"):
            run = by_id[option.removeprefix("saved:")]
            return f"saved {run.id} {run.label}"
        return option

    choice = st.selectbox("Model", options, index=default, key=f"{page}-model", format_func=label)
    if isinstance(choice, int):
        return ModelChoice(run=runs[choice], in_tab=True, why=best[1] if best and best[0] == choice else "")
    if choice != CHECKPOINT:
        return ModelChoice(run=by_id[choice.removeprefix("saved:")])
    if not runs:
        st.caption("No run in this tab yet: train one on the Train page, or load a checkpoint.")
    upload = st.file_uploader("Checkpoint written by training (checkpoint.pt)", type=["pt", "pth"],
                              key=f"{page}-checkpoint")
    return ModelChoice(upload=upload) if upload is not None else None


def as_sentence(phrase: str) -> str:
    """An engine's phrase ("the classes are unequal: ...") as a sentence on a page: capitalised, with its stop."""
    return phrase[:1].upper() + phrase[1:] + "."


def three_decimals(*columns: str) -> dict:
    """st.dataframe column_config showing these number columns as 0.939, not 0.94."""
    return {name: st.column_config.NumberColumn(format="%.3f") for name in columns}


def show_error(error: Exception) -> None:
    """One readable line for a user-fixable error."""
    st.error(str(error), icon=":material/error:")


T = TypeVar("T")


def value_or_error(make: Callable[[], T]) -> T | None:
    """`make()`, or None after showing its user-fixable error (a widget function whose choice cannot be used)."""
    try:
        return make()
    except FtcoreError as e:
        show_error(e)
        return None


def chosen_data(note: str = "") -> DatasetSummary | None:
    """The summary of this session's data with a one-line caption (and `note`), or None after saying why."""
    root = tab.data_root()
    if root is None:
        st.error("No data chosen: pick the photos on the Dataset explorer page first.")
        return None
    try:
        summary = cached.dataset_summary(root)
    except FtcoreError as e:
        show_error(e)
        return None
    st.caption(f"Data: `{summary.root}`, {summary.totals_text()} images ({summary.layout} layout"
               + (", validation held out of train" if summary.val_fraction else "") + ")."
               + ("" if summary.checked else " Every photo is still being checked in the background (Dataset "
                  "explorer); a run that meets a photo it cannot read stops and names it.")
               + (f" {note}" if note else ""))
    return summary
