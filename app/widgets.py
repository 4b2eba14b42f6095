"""Widgets more than one page draws: the model picker of Predict and Evaluate, this tab's data with its caption,
errors a user can fix as one red line, number columns with three decimals, and charts that speak (a sentence for a
screen reader, the numbers as a table on request); each returns what the user chose."""

from __future__ import annotations

import csv
import html
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app import cached, jobs, tab
from ftcore.data.summary import DatasetSummary
from ftcore.errors import FtcoreError
from ftcore.insight.chart_text import summary_of, table_of
from ftcore.models.trained import TrainedModel
from ftcore.runs.saved import Run, best_run

CHECKPOINT = "A checkpoint file (.pt)"
TABLE_ROWS = 200  # rows a chart's table shows on the page; its download holds every row
NUMBERS = "The numbers as a table"  # the expander that holds a chart's table
# A run's status line is a polite live region, which a screen reader reads at each change, so it changes at most this
# often (the bar above it and the charts move with every redraw)
ANNOUNCE_SECONDS = 5.0


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


def chart_ui(fig: go.Figure, key: str, where: Any = st, **kwargs: Any) -> Any:
    """A Plotly chart with its sentence for a screen reader and its numbers as a table on request (`kwargs` go to
    st.plotly_chart); returns the chart's selection event."""
    event = where.plotly_chart(fig, key=key, alt=summary_of(fig), **kwargs)
    numbers_ui(table_of(fig), key, where)
    return event


def numbers_ui(rows: list[dict], key: str, where: Any = st) -> None:
    """A chart's numbers in an expander: a table (a real HTML table, which a screen reader walks cell by cell) of the
    first rows, and every row as a CSV file."""
    with where.expander(NUMBERS):
        if not rows:
            st.caption("No numbers yet.")
            return
        st.table(rows[:TABLE_ROWS])
        if len(rows) > TABLE_ROWS:
            st.caption(f"The first {TABLE_ROWS} of {len(rows):,} rows; the file below holds them all.")
        columns = list(dict.fromkeys(name for row in rows for name in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns)
        writer.writeheader()
        writer.writerows(rows)
        st.download_button("Download the numbers (CSV)", text.getvalue(), file_name=f"{key}.csv", mime="text/csv",
                           key=f"{key}-csv", icon=":material/download:")


def progress_ui(share: float, status: str, key: str, final: bool = False) -> None:
    """A bar of `share` done and the status line under it, a polite live region (role status) that changes at most
    every ANNOUNCE_SECONDS, and at once when `final` (the run has ended)."""
    st.progress(min(max(share, 0.0), 1.0))
    shown_key = f"status-line-{key}"
    shown = st.session_state.get(shown_key)
    now = time.monotonic()
    if shown is None or shown[0] != status and (final or now - shown[1] >= ANNOUNCE_SECONDS):
        shown = st.session_state[shown_key] = (status, now)
    st.html(f'<p role="status" aria-live="polite" data-testid="status-line">{html.escape(shown[0])}</p>')
