"""The Train page's lists of runs: this tab's (a table, their curves against the book, their checkpoints), its
runs saved on this machine, and its interrupted runs to resume."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import jobs, widgets
from ftcore.errors import FtcoreError
from ftcore.insight import charts


def runs_ui() -> None:
    """Every finished or stopped run of this tab, in a table and overlaid against the book."""
    runs = jobs.runs()
    if not runs:
        return
    st.subheader("Runs in this tab")
    st.dataframe([run.table_row() for run in runs], hide_index=True,
                 column_config=widgets.three_decimals("train loss", "train acc", "val acc", "test acc"))
    chosen = st.multiselect("Compare", range(len(runs)), default=list(range(len(runs))),
                            format_func=lambda i: f"#{i + 1} {runs[i].label}")
    widgets.chart_ui(charts.compare_runs_figure([(f"#{i + 1} {runs[i].label}", runs[i].history) for i in chosen]),
                     "compare")
    columns = st.columns(min(len(runs), 4))
    for i, run in enumerate(runs):
        columns[i % len(columns)].download_button(
            f"Checkpoint #{i + 1}", data=lambda run=run: run.checkpoint_bytes(), file_name=f"{run.id}.pt",
            mime="application/octet-stream", on_click="ignore", key=f"download-{run.id}")


def resume_button(folder: Path, label: str, key: str) -> None:
    """A button that continues the interrupted run in `folder` as this tab's job."""
    if st.button(label, key=key, icon=":material/resume:", disabled=jobs.job_running()):
        try:
            jobs.resume_job(folder)
            st.rerun()
        except FtcoreError as e:
            widgets.show_error(e)


def whose() -> str:
    """Whose runs the lists hold: this tab's, or every tab's where the server shares runs."""
    return "on this server" if jobs.sharing() else "of this tab"


def interrupted_runs_ui() -> None:
    """This tab's runs (every tab's, where shared) that ended before their last epoch (killed, stopped, a server
    restart): resumable; another tab's goes on as a new run of this tab's."""
    folders = jobs.interrupted_runs()
    current = jobs.current_job()
    folders = [f for f in folders if current is None or f != current.folder]
    if not folders:
        return
    with st.expander(f"Interrupted runs {whose()} ({len(folders)})"):
        st.caption("Each saved its state after its last finished epoch; Resume continues it from there and ends "
                   "where an uninterrupted run would. " + ("Another tab's run goes on as a new run of this tab's, "
                                                           "and keeps its own record." if jobs.sharing() else ""))
        choice = st.selectbox("Interrupted run", range(len(folders)), format_func=lambda i: folders[i].name,
                              key="interrupted-choice")
        resume_button(folders[choice], "Resume", "resume-interrupted")


def saved_runs_ui() -> None:
    """This tab's saved runs not among its runs now (every tab's, where shared; before a restart too); chosen ones
    join them."""
    saved, problems = jobs.saved_runs()
    if not saved and not problems:
        return
    with st.expander(f"Saved runs {whose()} ({len(saved)})"):
        for problem in problems:
            st.warning(problem)
        if not saved:
            return
        st.caption("Every finished or stopped run is saved on the server; add any to this tab's runs to compare it "
                   "or to classify photos with it on Predict.")
        chosen = st.multiselect("Saved runs", range(len(saved)), key="saved-runs",
                                format_func=lambda i: f"{saved[i].id} {saved[i].label}")
        if st.button("Add to this tab's runs", disabled=not chosen, key="add-saved-runs"):
            jobs.add_saved_runs([saved[i] for i in chosen])
            st.rerun()
