"""This tab's steering of its running run: the asks its live controls make (the slider, the 10x toggle, Freeze, the
lesson's buttons), what became of each, and the controls held to the run's own settings while it trains.

Only the tab that started a run steers it: every ask names this tab as the owner, and the engine refuses a run
that is not its (`runs.steering.ask`).
"""

from __future__ import annotations

import streamlit as st

from app import choices, jobs, tab
from ftcore.archs import ARCHITECTURES
from ftcore.config import MODES, TrainConfig
from ftcore.errors import FtcoreError
from ftcore.lab import lesson
from ftcore.runs.process import ProcessJob
from ftcore.runs.steering import Ask, ask, ask_text, rates_to_come, read_state
from ftcore.train.steering import Rates

PROBLEM_KEY = "steer-problem"  # session state: the sentence of the last ask that could not be made
START_PROBLEM_KEY = "steer-start-problem"  # session state: why the last "Steer a run" could not start
ASKS_SHOWN = 3  # the latest asks whose outcome the page shows
# The settings a run is built on, which cannot change while it trains, and why (one line each).
FIXED_WHILE_TRAINING = {
    "mode": "Fixed while this run trains: its weights started from ImageNet or at random.",
    "arch": "Fixed while this run trains: its network was built at its start.",
    "preset": "Fixed while this run trains: its epochs were planned at its start.",
    "batch": "Fixed while this run trains: its batches (and BatchNorm's) were set at its start.",
    "size": "Fixed while this run trains: its photos were decoded at this size at its start.",
}


def steer(lr: float | None = None, head_factor: float | None = None, freeze: bool | None = None) -> Ask | None:
    """Ask this tab's run, while it trains, for other learning rates from its next batch: the ask (kept for its
    outcome), or None when the run is at (or asked for) those rates already. FtcoreError when this tab has no run
    training: only the tab that started a run steers it."""
    job = jobs.current_job()
    if job is None or not job.snapshot().steerable:
        raise FtcoreError("this tab has no run training now, so there is nothing to steer; only the tab that started "
                          "a run steers it, while it trains")
    asked, _, _ = ask(job.folder, lr, head_factor, freeze, owner=tab.owner())
    if asked is not None:
        st.session_state.setdefault(tab.ASKS_KEY, []).append((job.id, asked))
        tab.remember()  # a refreshed tab still shows what became of them
    return asked


def steer_now(**change) -> None:
    """Ask this tab's run for other rates from its next batch (a control's callback); a refusal is kept to show."""
    st.session_state.pop(PROBLEM_KEY, None)
    try:
        steer(**change)
    except FtcoreError as e:
        st.session_state[PROBLEM_KEY] = str(e)


def steer_to_slider(key: str) -> None:
    """The slider moved during the run: the copied layers' new rate."""
    steer_now(lr=st.session_state[key])


def steer_to_toggle(key: str, factor: float) -> None:
    """The 10x toggle flipped during the run: the output layer at `factor` times the copied layers, or at 1x."""
    steer_now(head_factor=factor if st.session_state[key] else 1.0)


def ask_lines(running: bool) -> list[str]:
    """The latest asks of this tab's current run, each with what the run said of it (or that it waits)."""
    job = jobs.current_job()
    mine = [asked for run_id, asked in st.session_state.get(tab.ASKS_KEY, []) if job is not None and run_id == job.id]
    state = read_state(job.folder) if mine else None
    return [ask_text(asked, state, running) for asked in mine[-ASKS_SHOWN:]]


def last_problem(start: bool = False) -> str | None:
    """Why the last ask of this tab could not be made, or (`start`) why its last "Steer a run" could not start."""
    return st.session_state.get(START_PROBLEM_KEY if start else PROBLEM_KEY)


def live_rates() -> tuple[Rates, float] | None:
    """The rates this tab's run goes on training at (an ask it has not taken yet counts) and the copied layers' rate
    to unfreeze to; None where it has not said."""
    job = jobs.current_job()
    state = read_state(job.folder) if job is not None else None
    return rates_to_come(job.folder, state) if state is not None else None


def steer_lesson(lr_factor: float | None = None, freeze: bool | None = None) -> int:
    """Ask every run of this tab's lesson still training at once: its copied layers at `lr_factor` times their rate
    (frozen ones keep frozen, at the new rate for later; each keeps its output layer's factor), or frozen or
    unfrozen; how many runs were asked. A run that ends meanwhile is left out; FtcoreError when none could be."""
    experiment = jobs.current_experiment()
    asked, problems = 0, []
    for job in experiment.jobs() if experiment is not None else []:
        state = read_state(job.folder) if isinstance(job, ProcessJob) and job.snapshot().steerable else None
        if state is None:
            continue
        now, unfrozen_lr = rates_to_come(job.folder, state)  # x10 twice within a batch is x100
        lr = (now.lr or unfrozen_lr) * lr_factor if lr_factor is not None else None
        try:
            asked += ask(job.folder, lr, None, freeze, owner=tab.owner())[0] is not None
        except FtcoreError as e:
            problems.append(str(e))
    if not asked and problems:
        raise FtcoreError(problems[0])
    if not asked and experiment is not None and not any(job.snapshot().steerable for job in experiment.jobs()):
        raise FtcoreError("no run of this tab's lesson is training now, so there is nothing to steer")
    return asked


def hold_settings_to(config: TrainConfig, rates: tuple[Rates, float] | None = None) -> None:
    """Show the running run's own mode, architecture, batch and image size in the (disabled) controls, and its
    learning rate and 10x as it trains at them (or was just asked to), so that the slider and toggle start there."""
    held = {"mode": (config.mode, MODES), "arch": (config.arch, ARCHITECTURES),
            "batch": (config.batch_size, choices.BATCH_SIZES), "size": (config.image_size, choices.IMAGE_SIZES)}
    st.session_state.update({key: value for key, (value, options) in held.items() if value in options})
    if config.arch not in ARCHITECTURES:
        st.session_state.update({"arch": choices.OTHER_ARCH, "arch-other": config.arch})
    if rates is not None:
        now, unfrozen_lr = rates
        copied = now.lr or unfrozen_lr  # frozen: the rate unfreezing goes back to
        st.session_state[choices.lr_key(config.mode, config.arch)] = copied
        st.session_state[f"groups-{config.mode}"] = now.head_lr != copied


def start_steer_run(base: TrainConfig) -> None:
    """Start a run made to be steered, and hold the controls to its settings (a button's callback)."""
    st.session_state.pop(START_PROBLEM_KEY, None)
    try:
        config = lesson.steer_config(base)
        jobs.start_job(config)
    except FtcoreError as e:
        st.session_state[START_PROBLEM_KEY] = str(e)
        return
    hold_settings_to(config)
    st.session_state[choices.lr_key(config.mode, config.arch)] = config.lr
    st.session_state[f"groups-{config.mode}"] = config.param_groups
