"""The Train page's learning-rate finder: its settings, and once started its progress, curve and suggestion."""

from __future__ import annotations

import streamlit as st

from app import choices, jobs, widgets
from ftcore.config import TrainConfig, book_lr, lr_words, mean_loss_lr
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.lr_find.finding import FinderSettings, recipe_differences, trains_output_layer_only, two_digits
from ftcore.lr_find.suggest import DEFAULT_RULE, RULES


def lr_finder_ui(config: TrainConfig, find: bool, polling: bool) -> None:
    """The learning-rate finder: its settings, and once started its progress, curve and suggestion."""
    defaults = FinderSettings()
    with st.expander("Learning-rate finder", expanded=find or jobs.current_finder() is not None):
        st.caption("A range test (Smith 2017, fastai's lr_find) on the settings above: the lr rises exponentially "
                   "step by step while the loss is recorded; it ends early once the loss diverges. The suggestion "
                   f"is {RULES[DEFAULT_RULE].describes}. Press Find a learning rate beside the slider.")
        columns = st.columns(3)
        steps = columns[0].number_input("Steps", 10, 1000, defaults.steps, key="finder-steps",
                                        help="Optimiser steps of a whole batch each; a small dataset is cycled.")
        start_lr = columns[1].select_slider("From lr", [1e-8, 1e-7, 1e-6, 1e-5], defaults.start_lr,
                                            format_func=choices.lr_label, key="finder-start")
        end_lr = columns[2].select_slider("To lr", [1e-2, 1e-1, 1.0, 10.0], defaults.end_lr,
                                          format_func=choices.lr_label, key="finder-end")
        if find:
            try:
                jobs.start_finder(config, FinderSettings(int(steps), start_lr, end_lr))
                st.rerun()
            except FtcoreError as e:
                widgets.show_error(e)
        st.fragment(finder_live_ui, run_every=jobs.POLL_SECONDS if polling else None)(config, polling)


def finder_live_ui(config: TrainConfig, polling: bool) -> None:
    """The finder's progress and curve, redrawn every second while it runs; its suggestion once it ends (usable
    while the settings that move the lr are still those it ran on)."""
    snap = jobs.finder_snapshot()
    if snap is None:
        return
    if polling and snap.done:
        st.rerun()  # once: the slider offers the suggestion, and the polling stops
    widgets.progress_ui(snap.progress, snap.status_line(), "finder", snap.done)
    if not snap.done and st.button("Stop the finder", icon=":material/stop:", key="finder-stop"):
        jobs.current_finder().stop()
    if snap.error:
        st.error(snap.error)
    run, finding = snap.config, snap.finding
    lrs, losses, smoothed = snap.curve()
    if lrs:
        current = st.session_state.get(choices.lr_key(run.mode, run.arch))
        widgets.chart_ui(charts.lr_finder_figure(lrs, losses, smoothed, finding.suggestion if finding else None,
                                                 current, run.loss_reduction), "finder-chart")
    groups = f"output layer at {run.head_lr_mult:g}x" if run.param_groups else "one lr for every layer"
    layers = "the output layer alone on cached features" if trains_output_layer_only(run) else "every layer"
    st.caption(f"Ran on {run.arch}, {choices.MODE_LABELS[run.mode].lower()}, {layers}, {run.loss_reduction} loss, "
               f"batch {run.batch_size}, {groups}. The loss is per photo (the summed loss divided by the batch size), "
               "so both reductions plot on one scale; the lr axis is the slider's.")
    if run.loss_reduction == "mean":
        st.caption(f"With the mean loss each step's gradient is {run.batch_size} times smaller than with the sum, "
                   f"so the same curve sits about {run.batch_size}x further right: the book's {lr_words(book_lr())} "
                   f"with the sum is {mean_loss_lr(book_lr(), run.batch_size):.1e} with the mean at batch "
                   f"{run.batch_size}.")
    if finding is None:
        return
    if finding.suggestion is None:
        st.warning(f"{finding.summary()}. The slider keeps {choices.lr_label(config.lr)}.")
        return
    st.success(finding.summary())
    st.caption(f"{finding.why()} Other rules on this curve: {finding.others()}. The Experiments page's sweep from "
               "the finder trains it and half a decade either side.")
    changed = recipe_differences(run, config)
    if changed:
        st.warning(f"The settings above differ from the ones the finder ran on ({'; '.join(changed)}), and these "
                   "move the right learning rate: press Find a learning rate again for them.")
        return
    if st.button(f"Use {choices.lr_label(two_digits(finding.suggestion))}", key="finder-use", type="primary",
                 on_click=choices.use_lr, args=(run.mode, run.arch, finding.suggestion),
                 help=f"Sets the slider for {run.arch} {run.mode}."):
        st.rerun()  # the whole page, so that the slider shows it
