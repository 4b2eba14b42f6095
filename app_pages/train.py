"""Train: fine-tune or train from scratch in a child process of its own, watch it live, compare runs."""

import dataclasses

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import choices, finder_view, jobs, lesson_view, runs_view, steering, tab, torch_facts, widgets
from ftcore.archs import ARCHITECTURES, arch_names, describe_output_layers, get_arch
from ftcore.config import (
    BALANCE_DESCRIPTIONS,
    BALANCE_WHEN_ASKED,
    CPU_DEVICES,
    LOSS_REDUCTIONS,
    MODES,
    PRECISIONS,
    TrainConfig,
    allows,
    book_lr,
    frozen_batchnorm_words,
    lr_words,
    mean_loss_lr,
    preset_for,
    recipe,
    recipe_note,
)
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.models.weights import weights_status
from ftcore.records import Status
from ftcore.runs.snapshot import JobSnapshot
from ftcore.train.steering import rates_text


def arch_ui(column: DeltaGenerator, fixed: dict[str, str]) -> tuple[str, str | None]:
    """The architecture: a built-in one, or any torchvision classification network by name; with the sentence
    that refuses a name torchvision does not have (the settings then show resnet18's)."""
    arch = column.radio("Architecture", [*ARCHITECTURES, choices.OTHER_ARCH], horizontal=True, key="arch",
                        format_func=lambda name: "Other" if name == choices.OTHER_ARCH else name, disabled=bool(LIVE),
                        help=fixed.get("arch"))
    if arch != choices.OTHER_ARCH:
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
        steering.hold_settings_to(LIVE.config, steering.live_rates())
    fixed = steering.FIXED_WHILE_TRAINING if LIVE else {}
    left, right = st.columns(2)
    mode = left.radio("Mode", MODES, format_func=choices.MODE_LABELS.get, horizontal=True, key="mode",
                      disabled=bool(LIVE), help=fixed.get("mode"))
    arch, arch_error = arch_ui(right, fixed)
    if arch_error:
        st.error(arch_error)
    spec = get_arch(arch)
    preset = st.radio("Recipe", list(choices.PRESET_LABELS), format_func=choices.PRESET_LABELS.get,
                      horizontal=True, key="preset", disabled=bool(LIVE), help=fixed.get("preset") or "The book's "
                      "recipe reproduces the book; quick and best train the new output layer on features the frozen "
                      "copied layers compute once per photo (docs/benchmarks.md, Speed).")
    st.caption(recipe_note(mode, preset))
    preset = preset_for(mode, preset)
    book = recipe(mode, arch, preset, data=root or "")
    left, middle, right = st.columns([3, 1, 1], vertical_alignment="center")
    current = st.session_state.setdefault(choices.lr_key(mode, arch), book.lr)  # the finder's Use button may set it
    now = "While this run trains, it changes the run's rate from its next batch. " if LIVE else ""
    lr = left.select_slider("Learning rate of the copied layers (log scale)",
                            sorted({*choices.LR_OPTIONS, book.lr, current, *choices.suggested_lrs(mode, arch)}),
                            format_func=choices.lr_label, key=choices.lr_key(mode, arch),
                            on_change=steering.steer_to_slider if LIVE else None, args=(choices.lr_key(mode, arch),),
                            help=f"{now}Default {book.lr:.0e}: {get_arch(arch).lr_source}, for the summed loss.")
    st.session_state.setdefault(f"groups-{mode}", book.param_groups)  # state, not value=: a live run sets it
    groups = middle.toggle("Output layer at 10x lr", key=f"groups-{mode}",
                           on_change=steering.steer_to_toggle if LIVE else None,
                           args=(f"groups-{mode}", book.head_lr_mult),
                           help=f"{now}The book's parameter groups: on for fine-tuning, off from scratch.")
    find = right.button("Find a learning rate", icon=":material/query_stats:", key="find-lr",
                        disabled=not root or STATE.finder,
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
                                     f"epochs-{preset}", help="Epochs of every trainable layer (the book: "
                                     f"{TrainConfig.default('epochs')}).")
    head_epochs = columns[5].number_input("Output-layer epochs", 0, 1000, book.head_epochs,
                                          disabled=not allows(mode, "head_epochs"),
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
                  head_epochs=int(head_epochs) if allows(mode, "head_epochs") else 0,
                  batch_size=batch_size, image_size=image_size, device=device, seed=int(seed),
                  limit=int(limit) or None, loss_reduction=reduction, precision=precision, weights=weights or None,
                  micro_batch=micro_batch, balance=BALANCE_WHEN_ASKED if balance else "none"), find, arch_error


def exercises_ui(config: TrainConfig, classes: list[str]) -> TrainConfig:
    """The book's exercises: freeze the copied layers; start the new output layer from ImageNet's rows."""
    finetune = allows(config.mode, "freeze_body")
    with st.expander("The book's exercises"):
        left, right = st.columns(2)
        freeze = left.toggle("Freeze the copied layers (feature extractor)", key="freeze-body", disabled=not finetune,
                             help="requires_grad=False on every copied layer, so only the new output layer trains; "
                             "compare it with full fine-tuning.")
        left.caption("Fine-tuning only: from scratch nothing is copied." if not finetune else
                     f"Only the output layer learns; {frozen_batchnorm_words(config.frozen_batchnorm)}.")
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


def output_layers_ui(config: TrainConfig, classes: list[str]) -> None:
    """The source model's output layer next to the target's, and their learning rates."""
    source, target = describe_output_layers(config.arch, len(classes) or 2)
    left, right = st.columns(2)
    # inline code, not st.code: st.code loads Streamlit's syntax highlighter, this page's largest file, first
    left.markdown(("**Source model output layer** (ImageNet, 1000 classes)" if config.mode == "finetune"
                   else "**Source model output layer** (unused: every weight starts random)") + f"\n\n`{source}`")
    init = ("ImageNet rows" if config.head_init == "imagenet" else "Xavier init") if config.mode == "finetune" \
        else "default init"
    right.markdown(f"**Target model output layer** ({', '.join(classes) or 'your classes'}; {init}, "
                   f"lr {config.head_lr:.0e})\n\n`{target}`")
    if config.mode == "finetune":
        state, sentence = weights_status(config.arch)
        (st.caption if state == "found" else st.warning)(f"{config.arch} ImageNet weights: {sentence}")


STATE = jobs.train_state()
POLLING, QUEUED, LIVE = STATE.polling, STATE.queued, STATE.live


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
    widgets.progress_ui(snap.progress, snap.status_line(), "train", snap.done)
    if snap.status == Status.QUEUED:
        return  # nothing to plot yet
    if snap.error:
        st.error(snap.error)
    if snap.batchnorm:
        st.caption(snap.batchnorm + ".")
    if snap.resumable and not POLLING:
        resumed_after = int(snap.epochs[-1].epoch) if snap.epochs else 0
        runs_view.resume_button(jobs.current_job().folder, f"Resume from epoch {resumed_after}", "live-resume")
    asked = steering.ask_lines(running=not snap.done)  # this tab's latest asks, and what became of each
    if snap.steerable or asked:
        steer_ui(snap, asked)
    if snap.steering:
        st.caption(snap.steering_text() + ".")
    left, right = st.columns(2)
    per_class = left.toggle("Each class's held-out accuracy", key="live-per-class",
                            help=f"One dotted curve per class: the share of its {snap.heldout} photos the model gets "
                            "right. A class far below the others is one the model has learned to overlook (often "
                            "the smallest).")
    widgets.chart_ui(charts.epoch_curves_figure(snap.epochs, snap.config.total_epochs,
                                                snap.config.mode if snap.config.arch == "resnet18" else None,
                                                snap.heldout, snap.steering, snap.classes if per_class else ()),
                     "live-epochs", left)
    widgets.chart_ui(charts.batch_loss_figure(snap.batches, snap.steering), "live-batches", right)


def steer_ui(snap: JobSnapshot, asked: list[str]) -> None:
    """Freeze or unfreeze the copied layers of the running run, and what came of this tab's latest asks."""
    frozen = snap.rates.lr == 0
    left, right = st.columns([1, 3], vertical_alignment="center")
    if snap.steerable:
        kept = frozen_batchnorm_words(snap.config.frozen_batchnorm)
        left.button("Unfreeze the copied layers" if frozen else "Freeze the copied layers", key="steer-freeze",
                    icon=":material/ac_unit:", on_click=steering.steer_now, kwargs={"freeze": not frozen},
                    disabled=snap.config.freeze_body, help="This run froze its copied layers from its start."
                    if snap.config.freeze_body else "Their rate set to 0 from the run's next batch, and back to "
                    f"their rate before: only the output layer learns; {kept}.")
        right.caption(f"Trains at {rates_text(snap.rates)}; the slider, the 10x toggle and this button change that "
                      "from its next batch.")
    if steering.last_problem():
        st.error(steering.last_problem())
    for line in asked:
        st.caption(line + ".")


st.title("Train")
summary = widgets.chosen_data()
if summary is not None and summary.unreadable:  # training would stop at the first of them
    st.error(summary.unreadable_message())
st.page_link("app_pages/explore.py", label="Change the data", icon=":material/photo_library:")

with st.expander("Experiments to try"):  # the book's comparisons, with the rates in the engine's words
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
finder_view.lr_finder_ui(config, find_lr and summary is not None, STATE.finder)
output_layers_ui(config, summary.classes if summary else [])

startable = summary is not None and not summary.unreadable and arch_error is None
lesson_view.lesson_ui(config, startable, POLLING or STATE.experiment, STATE.lesson)
start, stop, note = st.columns([1, 1, 4])
if start.button("Start", type="primary", disabled=POLLING or STATE.experiment or not startable,
                icon=":material/play_arrow:", key="start"):
    try:
        jobs.start_job(config)
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
runs_view.runs_ui()
runs_view.interrupted_runs_ui()
runs_view.saved_runs_ui()
torch_facts.find_what_was_missing(config, summary.classes if summary else [])  # last: the controls above draw first
