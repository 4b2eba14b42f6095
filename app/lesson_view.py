"""The Train page's lesson in a minute: the book's comparisons, scaled down, trained side by side on one chart, and
steered together while they train."""

from __future__ import annotations

import streamlit as st

from app import jobs, steering, widgets
from app.steering import start_steer_run
from ftcore.config import PRESET_DESCRIPTIONS, PRESETS, TrainConfig, lr_text
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.lab import lesson
from ftcore.models.weights import weights_status


def lesson_ui(config: TrainConfig, startable: bool, busy: bool, polling: bool) -> None:
    """The lesson in a minute: the book's comparisons, scaled down, trained side by side on one chart."""
    st.subheader("The lesson in a minute")
    st.caption(f"{lesson.scaled_down_text()} The runs train side by side and their curves grow together. The full "
               "recipe is one click away: Start below trains the settings above, and Experiments runs the book's "
               "fine-tune vs scratch at full size.")
    busy = busy or not startable
    rates = ", ".join(lr_text(rate) for rate in lesson.row_rates(config.lr))
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button("Steer a run", icon=":material/tune:", disabled=busy, key="start-steer", on_click=start_steer_run,
                args=(config,), width="stretch", help=PRESET_DESCRIPTIONS["steer"].capitalize() + ".")
    right.caption(f"One fine-tuning run of {PRESETS['steer']['epochs']} epochs at the lesson's size: move the slider "
                  "while it trains, try a rate ten times higher, watch the loss answer within seconds, and bring it "
                  "back.")
    if steering.last_problem(start=True):
        st.error(steering.last_problem(start=True))
    buttons = [("lesson", "Fine-tune vs scratch", ":material/compare_arrows:",
                "Fine-tuning (ImageNet weights, output layer at 10x) against training from scratch."),
               ("lesson-lr", f"Rates {rates}", ":material/tune:",
                "Three fine-tuning runs: the slider's rate and a decade each side of it."),
               ("lesson-groups", "Output layer 10x on vs off", ":material/toggle_on:",
                "Fine-tuning at the slider's rate with the output layer at 10x, against one rate for every layer.")]
    for column, (kind, label, icon, text) in zip(st.columns(len(buttons)), buttons, strict=True):
        if column.button(label, icon=icon, disabled=busy, key=f"start-{kind}", help=text, width="stretch"):
            try:
                jobs.start_experiment(kind, lesson.LESSONS[kind](config))
                st.rerun()
            except FtcoreError as e:
                widgets.show_error(e)
    arch = PRESETS["lesson"]["arch"]
    state, sentence = weights_status(arch)
    if state != "found":  # fine-tuning needs them; the runs would stop at once with this sentence
        st.caption(f"The lesson fine-tunes {arch}; its ImageNet weights: {sentence}")
    if polling and st.button("Stop the lesson", icon=":material/stop:", key="lesson-stop"):
        jobs.current_experiment().stop()
    if polling:
        lesson_steer_ui()
    st.fragment(lesson_live_ui, run_every=jobs.POLL_SECONDS if polling else None)(polling)


def lesson_steer_ui() -> None:
    """Steer every run of the lesson at once: each keeps its own rate relative to the others (a comparison stays
    a comparison), and the chart marks where each took the change."""
    columns = st.columns(4)
    for column, (label, change) in zip(columns, (("Rates x10", {"lr_factor": 10.0}), ("Rates /10", {"lr_factor": 0.1}),
                                                 ("Freeze the copied layers", {"freeze": True}),
                                                 ("Unfreeze them", {"freeze": False})), strict=True):
        if column.button(label, key=f"lesson-steer-{label}", width="stretch",
                         help="Every run of the lesson still training, from its next batch."):
            try:
                steering.steer_lesson(**change)
            except FtcoreError as e:
                widgets.show_error(e)


def lesson_live_ui(polling: bool) -> None:
    """The lesson's runs and their curves on one chart, redrawn every second while they train."""
    experiment = jobs.current_experiment()
    if experiment is None or experiment.kind not in lesson.LESSONS:
        return
    snap = experiment.snapshot()
    jobs.runs()  # its runs join this tab's runs as they end
    if polling and snap.done:
        st.rerun()
    widgets.progress_ui(snap.progress, f"{snap.title}: {snap.status}", "lesson", snap.done)
    for job in snap.jobs:
        line = f"**{job.label}**: {job.status_line()}"
        (st.error if job.error else st.markdown)(f"{line}. {job.error}" if job.error else line)
    series = [(job.label, job.epochs, job.batches) for job in snap.jobs]
    widgets.chart_ui(charts.runs_progress_figure(series, title=snap.chart_title,
                                                 steering=[job.steering for job in snap.jobs]), "lesson-chart")
