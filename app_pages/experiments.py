"""Experiments: the book's comparisons with one button each, trained one run after another in the background."""

import streamlit as st

from app import choices, jobs, tab, widgets
from ftcore.archs import ARCHITECTURES
from ftcore.config import MODES, TrainConfig, book_lr, lr_words, recipe
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.lab.experiments import DEFAULT_SWEEP_LRS, finetune_vs_scratch_configs, lr_sweep_configs
from ftcore.lr_find.finding import recipe_differences
from ftcore.runs.series import ExperimentSnapshot, sweep_points


def shared_settings_ui(root: str | None) -> TrainConfig:
    """Settings every run of an experiment shares (each recipe keeps its own lr and parameter groups)."""
    columns = st.columns(6)
    arch = columns[0].selectbox("Architecture", list(ARCHITECTURES), key="exp-arch")
    epochs = columns[1].number_input("Epochs", 1, 100, 5, key="exp-epochs")
    batch_size = columns[2].selectbox("Batch size", choices.BATCH_SIZES,
                                      choices.BATCH_SIZES.index(TrainConfig.default("batch_size")), key="exp-batch")
    image_size = columns[3].select_slider("Image size", choices.IMAGE_SIZES, 224, key="exp-size")
    limit = columns[4].number_input("Images per class (0 = all)", 0, 100_000, 0, key="exp-limit")
    seed = columns[5].number_input("Seed", 0, 2**31 - 1, 0, key="exp-seed")
    val_fraction, split_seed = tab.data_split()
    return recipe("finetune", arch, data=root or "", epochs=int(epochs), batch_size=batch_size,
                  image_size=image_size, limit=int(limit) or None, seed=int(seed), val_fraction=val_fraction,
                  split_seed=split_seed)


def start(kind: str, configs_of) -> None:
    """Build the configs and start the series; a mistake is one red line."""
    try:
        jobs.start_experiment(kind, configs_of())
        st.rerun()
    except FtcoreError as e:
        widgets.show_error(e)


def snapshot_ui(snap: ExperimentSnapshot) -> None:
    """Progress of every run of the series and its chart."""
    widgets.progress_ui(snap.progress, f"{snap.title}: {snap.status}, run {len(snap.jobs)} of {len(snap.configs)}",
                        "series", snap.done)
    for job in snap.jobs:
        final = next((e.heldout_acc for e in reversed(job.epochs) if e.heldout_acc is not None), None)
        acc = f", {job.heldout} acc {final:.3f}" if final is not None else ""
        line = f"**{job.label}**: {job.status}, {len(job.epochs)}/{job.config.total_epochs} epochs{acc}"
        (st.error if job.error else st.markdown)(f"{line}. {job.error}" if job.error else line)
    series = [(job.label, job.epochs, job.batches) for job in snap.jobs]
    if snap.kind == "sweep":
        heldout = snap.jobs[0].heldout if snap.jobs else "test"
        widgets.chart_ui(charts.lr_sweep_figure(sweep_points(snap), snap.configs[0].mode, heldout), "sweep-chart")
    widgets.chart_ui(charts.runs_progress_figure(series, title=snap.chart_title), "series-chart")


POLLING = jobs.experiment_running()


@st.fragment(run_every=jobs.POLL_SECONDS if POLLING else None)
def live_ui() -> None:
    """The current experiment, redrawn every second while it runs."""
    experiment = jobs.current_experiment()
    if experiment is None:
        st.info("No experiment yet: choose one above and press its button.")
        return
    snap = experiment.snapshot()
    jobs.runs()  # finished runs join this tab's runs (Train, Predict, Evaluate & explain) as they end
    if POLLING and snap.done:
        st.rerun()
    snapshot_ui(snap)


st.title("Experiments")
summary = widgets.chosen_data("Every run here also joins this tab's runs, to compare, predict, evaluate and explain.")
busy = POLLING or jobs.job_running() or summary is None
base = shared_settings_ui(summary.root if summary else None)

compare, sweep = st.columns(2)
with compare:
    st.subheader("Fine-tune vs scratch")
    st.caption("The book's comparison with one button: the fine-tune recipe (ImageNet weights, lr "
               f"{lr_words(book_lr('finetune'))}, output layer at 10x), then the scratch recipe (random weights, lr "
               f"{lr_words(book_lr('scratch'))}, one lr), drawn on one chart as "
               "they train, with the book's final numbers marked.")
    if st.button("Run both", type="primary", disabled=busy, icon=":material/compare_arrows:", key="exp-compare"):
        start("compare", lambda: finetune_vs_scratch_configs(base))
with sweep:
    st.subheader("Learning-rate sweep")
    st.caption("One run per learning rate, final accuracy on the held-out photos (val where the data has them, "
               "else test) against lr. The book's observation: fine-tuning "
               "wants a small lr; a larger one overwrites what the copied layers knew.")
    found = jobs.finder_snapshot()
    finding = found.finding if found is not None else None
    from_finder = finding.sweep_lrs() if finding is not None else []
    changed = recipe_differences(found.config, base, ("arch", "loss_reduction", "batch_size")) if from_finder else []
    if changed:
        st.caption(f"The learning-rate finder's last range is not offered: it ran on other settings "
                   f"({'; '.join(changed)}).")
        from_finder = []
    if from_finder:
        st.button(f"From the learning-rate finder: {', '.join(choices.lr_label(lr) for lr in from_finder)}",
                  key="exp-from-finder", on_click=choices.use_finder_range, args=(found.config.mode, from_finder),
                  help=f"The finder's last run on the Train page ({found.config.arch}, {found.config.mode}): a "
                  "half a decade below its suggestion, the suggestion, and half a decade above.")
    mode = st.radio("Mode", MODES, format_func=choices.MODE_LABELS.get, horizontal=True, key="exp-sweep-mode")
    st.session_state.setdefault("exp-lrs", list(DEFAULT_SWEEP_LRS))
    lrs = st.multiselect("Learning rates", sorted({*choices.LR_OPTIONS, *from_finder, *st.session_state["exp-lrs"]}),
                         key="exp-lrs",
                         format_func=choices.lr_label)
    if st.button("Run the sweep", type="primary", disabled=busy or not lrs, icon=":material/show_chart:",
                 key="exp-sweep"):
        start("sweep", lambda: lr_sweep_configs(recipe(mode, base.arch, **{
            k: v for k, v in base.to_dict().items() if k not in ("mode", "arch", "lr", "param_groups")}),
            sorted(lrs)))
if POLLING and st.button("Stop", icon=":material/stop:", key="exp-stop"):
    jobs.current_experiment().stop()
if jobs.job_running():
    st.caption("A run from the Train page is in progress in this tab; experiments start once it has ended.")
live_ui()
