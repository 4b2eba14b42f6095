"""Train: fine-tune or train from scratch in a child process of its own, watch it live, compare runs."""

import dataclasses

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import choices, jobs, tab, torch_facts, widgets
from ftcore.archs import ARCHITECTURES, arch_names, describe_output_layers, get_arch
from ftcore.config import (
    BALANCE_DESCRIPTIONS,
    BALANCE_WHEN_ASKED,
    CPU_DEVICES,
    LOSS_REDUCTIONS,
    MODES,
    PRECISIONS,
    PRESET_DESCRIPTIONS,
    PRESETS,
    TrainConfig,
    book_lr,
    lr_text,
    lr_words,
    mean_loss_lr,
    preset_for,
    recipe,
)
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.lab import lesson
from ftcore.lr_find.finding import FinderSettings, recipe_differences, trains_output_layer_only, two_digits
from ftcore.lr_find.suggest import DEFAULT_RULE, RULES
from ftcore.models.weights import weights_status
from ftcore.records import Status
from ftcore.runs.snapshot import JobSnapshot
from ftcore.train.steering import Rates, rates_text

PRESET_LABELS = {"book": "The book's", "quick": "Quick (output layer on cached features)",
                 "best": "Best (plus augmented views)"}
# The settings a run is built on, which cannot change while it trains, and why (one line each).
FIXED_WHILE_TRAINING = {
    "mode": "Fixed while this run trains: its weights started from ImageNet or at random.",
    "arch": "Fixed while this run trains: its network was built at its start.",
    "preset": "Fixed while this run trains: its epochs were planned at its start.",
    "batch": "Fixed while this run trains: its batches (and BatchNorm's) were set at its start.",
    "size": "Fixed while this run trains: its photos were decoded at this size at its start.",
}
OTHER_ARCH = "other"  # the architecture radio's last option: a torchvision network named in a text field
STEER_NOTE = "steer-note"  # session state: the jobs.SteerNote of this tab's last steering ask


def hold_settings_to(config: TrainConfig, rates: tuple[Rates, float] | None = None) -> None:
    """Show the running run's own mode, architecture, batch and image size in the (disabled) controls, and
    its learning rate and 10x as it trains at them (or was just asked to), so that the slider and toggle start there."""
    held = {"mode": (config.mode, MODES), "arch": (config.arch, ARCHITECTURES),
            "batch": (config.batch_size, choices.BATCH_SIZES), "size": (config.image_size, choices.IMAGE_SIZES)}
    st.session_state.update({key: value for key, (value, options) in held.items() if value in options})
    if config.arch not in ARCHITECTURES:
        st.session_state.update({"arch": OTHER_ARCH, "arch-other": config.arch})
    if rates is not None:
        now, unfrozen_lr = rates
        copied = now.lr or unfrozen_lr  # frozen: the rate unfreezing goes back to
        st.session_state[choices.lr_key(config.mode, config.arch)] = copied
        st.session_state[f"groups-{config.mode}"] = now.head_lr != copied


def steer_now(**change) -> None:
    """Ask this tab's run for other rates from its next batch (a control's callback); say what came of it."""
    try:
        wanted = jobs.steer(**change)
        st.session_state[STEER_NOTE] = jobs.SteerNote(text=f"Asked this run for {rates_text(wanted)}: it takes them at "
                                                 "its next batch.", wanted=wanted) if wanted else None
    except FtcoreError as e:
        st.session_state[STEER_NOTE] = jobs.SteerNote(text=str(e), wanted=None)


def steer_to_slider(key: str) -> None:
    """The slider moved during the run: the copied layers' new rate."""
    steer_now(lr=st.session_state[key])


def steer_to_toggle(key: str, factor: float) -> None:
    """The 10x toggle flipped during the run: the output layer at `factor` times the copied layers, or at 1x."""
    steer_now(head_factor=factor if st.session_state[key] else 1.0)


def start_steer_run(base: TrainConfig) -> None:
    """Start a run made to be steered, and hold the controls to its settings (a button's callback)."""
    try:
        config = lesson.steer_config(base)
        jobs.start_job(config)
    except FtcoreError as e:
        st.session_state[STEER_NOTE] = jobs.SteerNote(text=str(e), wanted=None)
        return
    hold_settings_to(config)
    st.session_state[choices.lr_key(config.mode, config.arch)] = config.lr
    st.session_state[f"groups-{config.mode}"] = config.param_groups
    st.session_state.pop(STEER_NOTE, None)


def arch_ui(column: DeltaGenerator, fixed: dict[str, str]) -> tuple[str, str | None]:
    """The architecture: a built-in one, or any torchvision classification network by name; with the sentence
    that refuses a name torchvision does not have (the settings then show resnet18's)."""
    arch = column.radio("Architecture", [*ARCHITECTURES, OTHER_ARCH], horizontal=True, key="arch",
                        format_func=lambda name: "Other" if name == OTHER_ARCH else name, disabled=bool(LIVE),
                        help=fixed.get("arch"))
    if arch != OTHER_ARCH:
        return arch, None
    st.session_state.setdefault("arch-other", "efficientnet_b0")  # state, not value=: a live run sets it
    name = column.text_input("Other torchvision network", key="arch-other", disabled=bool(LIVE),
                             help=f"Any of the {len(arch_names())} classification networks torchvision lists "
                             "(efficientnet_b0, convnext_tiny, regnet_y_400mf, vit_b_16, ...): its ImageNet weights "
                             "and preprocessing come from torchvision, its learning rates are the book's carried "
                             "over.").strip()
    try:
        return get_arch(name).name, None
    except FtcoreError as e:
        return TrainConfig.default("arch"), str(e)


def settings_ui(root: str | None) -> tuple[TrainConfig, bool, str | None]:
    """The run's settings (each mode and architecture keeps its own lr, defaulting to the book's), whether
    "Find a learning rate" was pressed, and why the architecture asked for cannot train (None when it can)."""
    # Radios and select sliders, not select boxes: the browser draws a page only as far as the first widget whose
    # script files it has not fetched yet, and select boxes add a dozen files (docs/benchmarks.md, Cold start)
    if LIVE:
        hold_settings_to(LIVE.config, jobs.live_rates())
    fixed = FIXED_WHILE_TRAINING if LIVE else {}
    left, right = st.columns(2)
    mode = left.radio("Mode", MODES, format_func=choices.MODE_LABELS.get, horizontal=True, key="mode",
                      disabled=bool(LIVE), help=fixed.get("mode"))
    arch, arch_error = arch_ui(right, fixed)
    if arch_error:
        st.error(arch_error)
    spec = get_arch(arch)
    preset = st.radio("Recipe", list(PRESET_LABELS), format_func=PRESET_LABELS.get, horizontal=True, key="preset",
                      disabled=bool(LIVE), help=fixed.get("preset") or "The book's recipe reproduces the book; quick "
                      "and best train the new output layer on features the frozen copied layers compute once per "
                      "photo (docs/benchmarks.md, Speed).")
    if preset_for(mode, preset) != preset:
        st.caption("Quick and best start from copied ImageNet layers, so they are for fine-tuning; from scratch "
                   "uses the book's recipe.")
        preset = preset_for(mode, preset)
    elif mode != "finetune":
        st.caption("The book's recipe from scratch: 5 epochs of every layer, all at one lr.")
    else:
        st.caption(PRESET_DESCRIPTIONS[preset].capitalize() + ".")
    book = recipe(mode, arch, preset, data=root or "")
    left, middle, right = st.columns([3, 1, 1], vertical_alignment="center")
    current = st.session_state.setdefault(choices.lr_key(mode, arch), book.lr)  # the finder's Use button may set it
    now = "While this run trains, it changes the run's rate from its next batch. " if LIVE else ""
    lr = left.select_slider("Learning rate of the copied layers (log scale)",
                            sorted({*choices.LR_OPTIONS, book.lr, current, *choices.suggested_lrs(mode, arch)}),
                            format_func=choices.lr_label, key=choices.lr_key(mode, arch),
                            on_change=steer_to_slider if LIVE else None, args=(choices.lr_key(mode, arch),),
                            help=f"{now}Default {book.lr:.0e}: {get_arch(arch).lr_source}, for the summed loss.")
    st.session_state.setdefault(f"groups-{mode}", book.param_groups)  # state, not value=: a live run sets it
    groups = middle.toggle("Output layer at 10x lr", key=f"groups-{mode}",
                           on_change=steer_to_toggle if LIVE else None,
                           args=(f"groups-{mode}", book.head_lr_mult),
                           help=f"{now}The book's parameter groups: on for fine-tuning, off from scratch.")
    find = right.button("Find a learning rate", icon=":material/query_stats:", key="find-lr",
                        disabled=not root or FINDER_POLLING,
                        help="A learning-rate range test on these settings: up to 100 steps with the lr rising "
                        "from 1e-7 (fewer once the loss diverges), then a suggestion for the slider (below). "
                        "Quick and best step the output layer alone on cached features, in seconds.")
    how = "fine-tuning" if mode == "finetune" else "from scratch"
    st.caption(f"Defaults for {arch} {how}: lr {book.lr:.0e}, output layer 10x "
               f"{'on' if book.param_groups else 'off'}, batch {book.batch_size}, {book.epochs} epochs"
               f"{f' after {book.head_epochs} output-layer epochs' if book.head_epochs else ''}, summed loss: "
               f"{get_arch(arch).lr_source}.")
    columns = st.columns(6)
    epochs = columns[0].number_input("Epochs", 0, 100, book.epochs, key="epochs" if preset == "book" else
                                     f"epochs-{preset}", help="Epochs of every trainable layer (the book: 5).")
    head_epochs = columns[5].number_input("Output-layer epochs", 0, 1000, book.head_epochs, disabled=mode != "finetune",
                                          key=f"head-epochs-{preset}", help="Before those: epochs of the output "
                                          "layer alone on features the frozen copied layers compute once per photo.")
    st.session_state.setdefault("batch", book.batch_size)
    st.session_state.setdefault("size", book.image_size)
    sizes = spec.sizes_among(choices.IMAGE_SIZES)
    if not spec.fixed_size and st.session_state["size"] not in sizes:  # below the network's smallest
        st.session_state["size"] = sizes[0]
    batch_size = columns[1].select_slider("Batch size", choices.BATCH_SIZES, key="batch",
                                          disabled=bool(LIVE), help=fixed.get("batch"))
    if spec.fixed_size:
        image_size = spec.fixed_size
        columns[2].caption(f"Image size {image_size}: {spec.fixed_size_rule}.")
    else:
        image_size = columns[2].select_slider("Image size", sizes, key="size", disabled=bool(LIVE),
                                              help=fixed.get("size"))
    device = columns[3].radio("Device", torch_facts.device_names() or CPU_DEVICES, horizontal=True, key="device")
    seed = columns[4].number_input("Seed", 0, 2**31 - 1, book.seed, key="seed")
    with st.expander("More settings"):
        columns = st.columns(6)
        limit = columns[0].number_input("Images per class and split (0 = all)", 0, 100_000, 0, key="limit")
        reduction = columns[1].radio("Loss over the batch", LOSS_REDUCTIONS, horizontal=True, key="reduction",
                                     help="The book backpropagates the sum; with the mean, gradients are "
                                     "batch-size times smaller, so good lrs are that much larger.")
        precision = columns[2].radio("Precision", PRECISIONS, horizontal=True, key="precision",
                                     help="auto: bf16 where the device computes it natively (ResNets train ~2x "
                                     "faster on AVX512-BF16 CPUs; MobileNetV2 trains in fp32); fp32: the book's.")
        weights = columns[3].text_input("ImageNet weights file (optional)", key="weights",
                                        help="Empty: $FTCORE_WEIGHTS, torchvision's cache, then its download.")
        micro_batch = columns[4].select_slider("Photos per forward pass", choices.MICRO_BATCHES, key="micro",
                                               format_func=lambda m: f"{m}" if m else "auto",
                                               help=choices.MICRO_BATCH_HELP)
        balance = columns[5].toggle("Balance classes", key="balance",
                                    help="Each class counts equally in training, however many photos it has: "
                                    f"{BALANCE_DESCRIPTIONS[BALANCE_WHEN_ASKED]}. Off in the book.")
    val_fraction, split_seed = tab.data_split()
    return recipe(mode, arch, preset, data=root or "", lr=lr, param_groups=groups, epochs=int(epochs),
                  val_fraction=val_fraction, split_seed=split_seed,
                  head_epochs=int(head_epochs) if mode == "finetune" else 0,
                  batch_size=batch_size, image_size=image_size, device=device, seed=int(seed),
                  limit=int(limit) or None, loss_reduction=reduction, precision=precision, weights=weights or None,
                  micro_batch=micro_batch, balance=BALANCE_WHEN_ASKED if balance else "none"), find, arch_error


def exercises_ui(config: TrainConfig, classes: list[str]) -> TrainConfig:
    """The book's exercises: freeze the copied layers; start the new output layer from ImageNet's rows."""
    finetune = config.mode == "finetune"
    with st.expander("The book's exercises"):
        left, right = st.columns(2)
        freeze = left.toggle("Freeze the copied layers (feature extractor)", key="freeze-body", disabled=not finetune,
                             help="requires_grad=False on every copied layer, so only the new output layer trains; "
                             "compare it with full fine-tuning.")
        left.caption("Fine-tuning only: from scratch nothing is copied." if not finetune else
                     "Only the output layer learns; the copied layers stay exactly as ImageNet left them.")
        status = (torch_facts.head_init_status(config.arch, config.weights, classes) if finetune
                  else (False, "it needs the ImageNet weights, so fine-tuning only"))
        available, sentence = status or (False, "")
        imagenet = right.toggle("Start the output layer from ImageNet's rows", key="head-imagenet",
                                disabled=not available, help="Instead of Xavier: each class named like an ImageNet "
                                "category starts from that category's output row (the book: hotdog is row 934).")
        right.caption("Checking whether the weights carry ImageNet's output layer..." if status is None else
                      ("Available: " if available else "Unavailable: ") + sentence + ".")
    return dataclasses.replace(config, freeze_body=freeze and finetune,
                               head_init="imagenet" if imagenet and available else "xavier")


def torch_facts_ui(config: TrainConfig, classes: list[str]) -> None:
    """Find what the page drew without, since only torch knows it: the devices, and whether the weights carry
    ImageNet's output layer. Then draw the page again with them (once per server process and set of weights)."""
    head_init = config.mode == "finetune" and torch_facts.head_init_status(config.arch, config.weights, classes) is None
    if torch_facts.device_names() is None or head_init:
        torch_facts.find_torch_facts(config.arch, config.weights, classes if head_init else None)
        st.rerun()


def output_layers_ui(config: TrainConfig, classes: list[str]) -> None:
    """The source model's output layer next to the target's, and their learning rates."""
    source, target = describe_output_layers(config.arch, len(classes) or 2)
    left, right = st.columns(2)
    # inline code, not st.code: st.code has the browser load Streamlit's syntax highlighter, the largest file of
    # this page, before it shows the page's controls
    left.markdown(("**Source model output layer** (ImageNet, 1000 classes)" if config.mode == "finetune"
                   else "**Source model output layer** (unused: every weight starts random)") + f"\n\n`{source}`")
    init = ("ImageNet rows" if config.head_init == "imagenet" else "Xavier init") if config.mode == "finetune" \
        else "default init"
    right.markdown(f"**Target model output layer** ({', '.join(classes) or 'your classes'}; {init}, "
                   f"lr {config.head_lr:.0e})\n\n`{target}`")
    if config.mode == "finetune":
        state, sentence = weights_status(config.arch)
        (st.caption if state == "found" else st.warning)(f"{config.arch} ImageNet weights: {sentence}")


POLLING = jobs.job_running()
EXPERIMENT_RUNNING = jobs.experiment_running()  # a lesson here, or a series from Experiments
LESSON_POLLING = EXPERIMENT_RUNNING and jobs.current_experiment().kind in lesson.LESSONS
FINDER_POLLING = jobs.finder_running()
QUEUED = POLLING and jobs.collect_job().status == Status.QUEUED
# While this tab's run trains epochs of every layer, the slider, the 10x toggle and Freeze steer it.
LIVE = snap if POLLING and (snap := jobs.collect_job()) is not None and snap.steerable else None


@st.fragment(run_every=(jobs.QUEUED_POLL_SECONDS if QUEUED else jobs.POLL_SECONDS) if POLLING else None)
def live_ui() -> None:
    """The current job's progress and curves, redrawn every second while it runs (its place in the queue,
    every few seconds, while it waits)."""
    snap = jobs.collect_job()
    if snap is None:
        st.info("No run yet: choose the settings above and press Start.")
        return
    if POLLING and snap.done or QUEUED and snap.status != Status.QUEUED or snap.steerable and not LIVE:
        st.rerun()  # refresh the whole page once: buttons, run list, comparison, the polling interval, live controls
    waiting = "waiting for its turn" if snap.status == Status.QUEUED else "loading data and model..."
    st.markdown(f"**{snap.label}** · {snap.weights or waiting}")
    st.progress(snap.progress, text=snap.status_line())
    if snap.status == Status.QUEUED:
        return  # nothing to plot yet
    if snap.error:
        st.error(snap.error)
    if snap.warning:
        st.warning(snap.warning)
    if snap.batchnorm:
        st.caption(snap.batchnorm + ".")
    if snap.resumable and not POLLING:
        resumed_after = int(snap.epochs[-1].epoch) if snap.epochs else 0
        resume_button(jobs.current_job().folder, f"Resume from epoch {resumed_after}", "live-resume")
    if snap.steerable:
        steer_ui(snap)
    if snap.steering:
        st.caption(snap.steering_text() + ".")
    left, right = st.columns(2)
    per_class = left.toggle("Each class's held-out accuracy", key="live-per-class",
                            help=f"One dotted curve per class: the share of its {snap.heldout} photos the model gets "
                            "right. A class far below the others is one the model has learned to overlook (often "
                            "the smallest).")
    left.plotly_chart(charts.epoch_curves_figure(snap.epochs, snap.config.total_epochs,
                                                 snap.config.mode if snap.config.arch == "resnet18" else None,
                                                 snap.heldout, snap.steering, snap.classes if per_class else ()),
                      key="live-epochs")
    right.plotly_chart(charts.batch_loss_figure(snap.batches, snap.steering), key="live-batches")


def steer_ui(snap: JobSnapshot) -> None:
    """Freeze or unfreeze the copied layers of the running run, and what came of the last ask."""
    frozen = snap.rates.lr == 0
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button("Unfreeze the copied layers" if frozen else "Freeze the copied layers", key="steer-freeze",
                icon=":material/ac_unit:", on_click=steer_now, kwargs={"freeze": not frozen},
                disabled=snap.config.freeze_body, help="Their rate set to 0 from the run's next batch (only the "
                "output layer learns), and back to their rate before." if not snap.config.freeze_body else
                "This run froze its copied layers from its start (the book's exercise).")
    note = st.session_state.get(STEER_NOTE)
    if note is not None and note.wanted is None:
        right.error(note.text)
    elif note is not None and note.wanted != snap.rates:  # asked, not taken yet
        right.info(note.text)
    else:
        right.caption(f"Trains at {rates_text(snap.rates)}; the slider, the 10x toggle and this button change that "
                      "from its next batch.")


def lesson_ui(config: TrainConfig, startable: bool) -> None:
    """The lesson in a minute: the book's comparisons, scaled down, trained side by side on one chart."""
    st.subheader("The lesson in a minute")
    st.caption(f"{lesson.scaled_down_text()} The runs train side by side and their curves grow together. The full "
               "recipe is one click away: Start below trains the settings above, and Experiments runs the book's "
               "fine-tune vs scratch at full size.")
    busy = POLLING or EXPERIMENT_RUNNING or not startable
    rates = ", ".join(lr_text(rate) for rate in lesson.row_rates(config.lr))
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button("Steer a run", icon=":material/tune:", disabled=busy, key="start-steer", on_click=start_steer_run,
                args=(config,), width="stretch", help=PRESET_DESCRIPTIONS["steer"].capitalize() + ".")
    right.caption(f"One fine-tuning run of {PRESETS['steer']['epochs']} epochs at the lesson's size: move the slider "
                  "while it trains, try a rate ten times higher, watch the loss answer within seconds, and bring it "
                  "back.")
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
    if LESSON_POLLING and st.button("Stop the lesson", icon=":material/stop:", key="lesson-stop"):
        jobs.current_experiment().stop()
    if LESSON_POLLING:
        lesson_steer_ui()
    lesson_live_ui()


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
                jobs.steer_lesson(**change)
            except FtcoreError as e:
                widgets.show_error(e)


@st.fragment(run_every=jobs.POLL_SECONDS if LESSON_POLLING else None)
def lesson_live_ui() -> None:
    """The lesson's runs and their curves on one chart, redrawn every second while they train."""
    experiment = jobs.current_experiment()
    if experiment is None or experiment.kind not in lesson.LESSONS:
        return
    snap = experiment.snapshot()
    jobs.runs()  # its runs join this tab's runs as they end
    if LESSON_POLLING and snap.done:
        st.rerun()
    st.progress(snap.progress, text=f"{snap.title}: {snap.status}")
    for job in snap.jobs:
        line = f"**{job.label}**: {job.status_line()}"
        (st.error if job.error else st.markdown)(f"{line}. {job.error}" if job.error else line)
    series = [(job.label, job.epochs, job.batches) for job in snap.jobs]
    st.plotly_chart(charts.runs_progress_figure(series, title=snap.chart_title,
                                                steering=[job.steering for job in snap.jobs]), key="lesson-chart")


def lr_finder_ui(config: TrainConfig, find: bool) -> None:
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
        finder_live_ui(config)


@st.fragment(run_every=jobs.POLL_SECONDS if FINDER_POLLING else None)
def finder_live_ui(config: TrainConfig) -> None:
    """The finder's progress and curve, redrawn every second while it runs; its suggestion once it ends (usable
    while the settings that move the lr are still those it ran on)."""
    snap = jobs.finder_snapshot()
    if snap is None:
        return
    if FINDER_POLLING and snap.done:
        st.rerun()  # once: the slider offers the suggestion, and the polling stops
    st.progress(snap.progress, text=snap.status_line())
    if not snap.done and st.button("Stop the finder", icon=":material/stop:", key="finder-stop"):
        jobs.current_finder().stop()
    if snap.error:
        st.error(snap.error)
    run, finding = snap.config, snap.finding
    lrs, losses, smoothed = snap.curve()
    if lrs:
        current = st.session_state.get(choices.lr_key(run.mode, run.arch))
        st.plotly_chart(charts.lr_finder_figure(lrs, losses, smoothed, finding.suggestion if finding else None,
                                                current, run.loss_reduction), key="finder-chart")
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
    st.plotly_chart(charts.compare_runs_figure([(f"#{i + 1} {runs[i].label}", runs[i].history) for i in chosen]),
                    key="compare")
    columns = st.columns(min(len(runs), 4))
    for i, run in enumerate(runs):
        columns[i % len(columns)].download_button(
            f"Checkpoint #{i + 1}", data=lambda run=run: run.checkpoint_bytes(), file_name=f"{run.id}.pt",
            mime="application/octet-stream", on_click="ignore", key=f"download-{run.id}")


def resume_button(folder, label: str, key: str) -> None:
    """A button that continues the interrupted run in `folder` as this tab's job."""
    if st.button(label, key=key, icon=":material/resume:", disabled=jobs.job_running()):
        try:
            jobs.resume_job(folder)
            st.rerun()
        except FtcoreError as e:
            widgets.show_error(e)


def interrupted_runs_ui() -> None:
    """Runs on this machine that ended before their last epoch (killed, stopped, a server restart): resumable."""
    folders = jobs.interrupted_runs()
    current = jobs.current_job()
    folders = [f for f in folders if current is None or f != current.folder]
    if not folders:
        return
    with st.expander(f"Interrupted runs on this machine ({len(folders)})"):
        st.caption("Each saved its state after its last finished epoch; Resume continues it from there and ends "
                   "where an uninterrupted run would.")
        choice = st.selectbox("Interrupted run", range(len(folders)), format_func=lambda i: folders[i].name,
                              key="interrupted-choice")
        resume_button(folders[choice], "Resume", "resume-interrupted")


def saved_runs_ui() -> None:
    """Runs saved on this machine (other tabs, earlier sessions, before a restart); chosen ones join this tab's."""
    saved, problems = jobs.saved_runs()
    if not saved and not problems:
        return
    with st.expander(f"Saved runs on this machine ({len(saved)})"):
        for problem in problems:
            st.warning(problem)
        if not saved:
            return
        st.caption(f"Every finished or stopped run is saved in `{jobs.runs_dir()}`; add any to this tab's runs to "
                   "compare it or to classify photos with it on Predict.")
        chosen = st.multiselect("Saved runs", range(len(saved)), key="saved-runs",
                                format_func=lambda i: f"{saved[i].id} {saved[i].label}")
        if st.button("Add to this tab's runs", disabled=not chosen, key="add-saved-runs"):
            jobs.add_saved_runs([saved[i] for i in chosen])
            st.rerun()


st.title("Train")
summary = widgets.chosen_data()
if summary is not None and summary.unreadable:  # training would stop at the first of them
    st.error(summary.unreadable_message())
st.page_link("app_pages/explore.py", label="Change the data", icon=":material/photo_library:")

with st.expander("Experiments to try"):
    st.markdown(
        "- **Fine-tune vs scratch**: run both with their book defaults and compare: the copied ImageNet layers "
        "start out knowing edges, textures and shapes, so the fine-tuned model is ahead from the first epoch.\n"
        f"- **Learning rate {lr_words(book_lr())} vs {lr_words(100 * book_lr())}** when fine-tuning: a large rate "
        "overwrites what the copied layers knew.\n"
        "- **Output layer at 10x off**: the new, random layer then learns as slowly as the copied ones.\n"
        "- **Loss: mean** (More settings) at the same lr: the gradient shrinks by the batch size, so training "
        f"barely moves; the book's {lr_words(book_lr())} with the sum equals "
        f"{lr_words(mean_loss_lr(book_lr(), TrainConfig.default('batch_size')))} with the mean at batch "
        f"{TrainConfig.default('batch_size')}.")
    st.page_link("app_pages/experiments.py", label="Fine-tune vs scratch and an lr sweep, one button each",
                 icon=":material/science:")
config, find_lr, arch_error = settings_ui(summary.root if summary else None)
config = exercises_ui(config, summary.classes if summary else [])
lr_finder_ui(config, find_lr and summary is not None)
output_layers_ui(config, summary.classes if summary else [])

startable = summary is not None and not summary.unreadable and arch_error is None
lesson_ui(config, startable)
start, stop, note = st.columns([1, 1, 4])
if start.button("Start", type="primary", disabled=POLLING or EXPERIMENT_RUNNING or not startable,
                icon=":material/play_arrow:", key="start"):
    try:
        jobs.start_job(config)
        st.session_state.pop(STEER_NOTE, None)
        st.rerun()
    except FtcoreError as e:
        widgets.show_error(e)
if stop.button("Cancel" if QUEUED else "Stop", disabled=not POLLING, icon=":material/stop:", key="stop",
               help="A queued run is taken out of the queue; a training run ends after its current batch and keeps "
               "its model."):
    jobs.current_job().stop()
if LIVE:
    note.caption("The learning rate, the output layer's 10x and Freeze act on this run now, from its next batch; the "
                 "other settings are for the next run.")
elif POLLING:
    note.caption("Changing the settings now only affects the next run; this one keeps its own.")
elif cluster := jobs.cluster_note():
    note.caption(cluster)

live_ui()
runs_ui()
interrupted_runs_ui()
saved_runs_ui()
torch_facts_ui(config, summary.classes if summary else [])  # last: the controls above draw first
