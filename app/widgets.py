"""Widgets more than one page draws; each returns what the user chose."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app import ui
from ftcore.runs.saved import Run
from ftcore.training import TrainedModel

CHECKPOINT = "A checkpoint file (.pt)"


@dataclass
class ModelChoice:
    """A model chosen on a page: a run (of this tab, or saved on this machine) or an uploaded checkpoint."""

    run: Run | None = None
    upload: UploadedFile | None = None
    in_tab: bool = False  # the run was trained in this tab (else saved earlier, on this machine)

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
        return self.run.trained if self.run is not None else ui.checkpoint_from_upload(self.upload.getvalue())


def model_picker_ui(page: str) -> ModelChoice | None:
    """Choose one of this tab's runs, a run saved on this machine, or a checkpoint file (newest run first)."""
    runs = ui.runs()
    saved, _ = ui.saved_runs()
    by_id = {run.id: run for run in saved}
    # this tab's runs by position, saved runs by id (stable as runs are saved), then the file option
    options = list(range(len(runs))) + [f"saved:{run.id}" for run in saved] + [CHECKPOINT]
    default = len(runs) - 1 if runs else max(len(saved) - 1, 0)

    def label(option: int | str) -> str:
        if isinstance(option, int):
            return f"#{option + 1} {runs[option].label}"
        if option.startswith("saved:"):
            run = by_id[option.removeprefix("saved:")]
            return f"saved {run.id} {run.label}"
        return option

    choice = st.selectbox("Model", options, index=default, key=f"{page}-model", format_func=label)
    if isinstance(choice, int):
        return ModelChoice(run=runs[choice], in_tab=True)
    if choice != CHECKPOINT:
        return ModelChoice(run=by_id[choice.removeprefix("saved:")])
    if not runs:
        st.caption("No run in this tab yet: train one on the Train page, or load a checkpoint.")
    upload = st.file_uploader("Checkpoint written by training (checkpoint.pt)", type=["pt", "pth"],
                              key=f"{page}-checkpoint")
    return ModelChoice(upload=upload) if upload is not None else None
