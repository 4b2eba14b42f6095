"""Train: fine-tune or train from scratch in a background thread, watch it live, compare runs."""

import streamlit as st

from ftcore import charts, ui
from ftcore.checkpoints import checkpoint_bytes
from ftcore.devices import PRECISIONS, available_devices
from ftcore.errors import FtcoreError
from ftcore.jobs import JobSnapshot
from ftcore.models import ARCHITECTURES, describe_output_layers, get_arch, weights_status
from ftcore.training import LOSS_REDUCTIONS, MODES, TrainConfig, recipe

MODE_LABELS = {"finetune": "Fine-tune (ImageNet weights)", "scratch": "From scratch (random weights)"}
LR_OPTIONS = [float(f"{m}e{e}") for e in range(-6, -1) for m in (1, 2, 5)] + [0.1]  # 1e-6 ... 1e-1, log scale
BATCH_SIZES = [8, 16, 32, 64, 128, 256]
IMAGE_SIZES = [64, 96, 128, 160, 192, 224]


def settings_ui(root: str | None) -> TrainConfig:
    """The run's settings; each mode and architecture keeps its own lr, defaulting to the book's."""
    left, right = st.columns(2)
    mode = left.radio("Mode", MODES, format_func=MODE_LABELS.get, horizontal=True, key="mode")
    arch = right.selectbox("Architecture", list(ARCHITECTURES), key="arch")
    book = recipe(mode, arch, data=root or "")
    left, right = st.columns([3, 1])
    lr = left.select_slider("Learning rate of the copied layers (log scale)", sorted({*LR_OPTIONS, book.lr}),
                            value=book.lr, format_func=lambda v: f"{v:.0e}", key=f"lr-{mode}-{arch}",
                            help=f"Default {book.lr:.0e}: {get_arch(arch).lr_source}, for the summed loss.")
    groups = right.toggle("Output layer at 10x lr", value=book.param_groups, key=f"groups-{mode}",
                          help="The book's parameter groups: on for fine-tuning, off from scratch.")
    how = "fine-tuning" if mode == "finetune" else "from scratch"
    st.caption(f"Defaults for {arch} {how}: lr {book.lr:.0e}, output layer 10x "
               f"{'on' if book.param_groups else 'off'}, batch 128, 5 epochs, summed loss: "
               f"{get_arch(arch).lr_source}.")
    columns = st.columns(5)
    epochs = columns[0].number_input("Epochs", 1, 100, book.epochs, key="epochs")
    batch_size = columns[1].selectbox("Batch size", BATCH_SIZES, BATCH_SIZES.index(book.batch_size), key="batch")
    image_size = columns[2].select_slider("Image size", IMAGE_SIZES, book.image_size, key="size")
    device = columns[3].selectbox("Device", available_devices(), key="device")
    seed = columns[4].number_input("Seed", 0, 2**31 - 1, book.seed, key="seed")
    with st.expander("More settings"):
        columns = st.columns(4)
        limit = columns[0].number_input("Images per class and split (0 = all)", 0, 100_000, 0, key="limit")
        reduction = columns[1].selectbox("Loss", LOSS_REDUCTIONS, format_func=lambda r: f"{r} over the batch",
                                         key="reduction", help="The book backpropagates the sum; with the mean, "
                                         "gradients are batch-size times smaller, so good lrs are that much larger.")
        precision = columns[2].selectbox("Precision", PRECISIONS, key="precision",
                                         help="bf16 autocast: about 2x faster ResNets on CPUs with AVX512-BF16.")
        weights = columns[3].text_input("ImageNet weights file (optional)", key="weights",
                                        help="Empty: $FTCORE_WEIGHTS, torchvision's cache, then its download.")
    return recipe(mode, arch, data=root or "", lr=lr, param_groups=groups, epochs=int(epochs),
                  batch_size=batch_size, image_size=image_size, device=device, seed=int(seed),
                  limit=int(limit) or None, loss_reduction=reduction, precision=precision, weights=weights or None)


def output_layers_ui(config: TrainConfig, classes: list[str]) -> None:
    """The source model's output layer next to the target's, and their learning rates."""
    source, target = describe_output_layers(config.arch, len(classes) or 2)
    head_lr = config.lr * config.head_lr_mult if config.param_groups else config.lr
    left, right = st.columns(2)
    left.markdown("**Source model output layer** (ImageNet, 1000 classes)" if config.mode == "finetune"
                  else "**Source model output layer** (unused: every weight starts random)")
    left.code(source, language=None)
    init = "Xavier init" if config.mode == "finetune" else "default init"
    right.markdown(f"**Target model output layer** ({', '.join(classes) or 'your classes'}; {init}, "
                   f"lr {head_lr:.0e})")
    right.code(target, language=None)
    if config.mode == "finetune":
        state, sentence = weights_status(config.arch)
        (st.caption if state == "found" else st.warning)(f"{config.arch} ImageNet weights: {sentence}")


def status_line(snap: JobSnapshot) -> str:
    """Epoch, batch, speed and devices of a job, in one line."""
    steps = snap.steps_per_epoch or 1
    done = len(snap.batches)
    epoch, step = (done - 1) // steps + 1 if done else 1, (done - 1) % steps + 1 if done else 0
    speed = f"{snap.examples_per_sec:.1f} examples/sec on {', '.join(snap.devices)}" if snap.devices else "starting"
    return f"{snap.status}: epoch {epoch}/{snap.config.epochs}, batch {step}/{steps}; {speed}; {snap.elapsed:.0f} s"


POLLING = ui.job_running()


@st.fragment(run_every=ui.POLL_SECONDS if POLLING else None)
def live_ui() -> None:
    """The current job's progress and curves, redrawn every second while it runs."""
    snap = ui.collect_job()
    if snap is None:
        st.info("No run yet: choose the settings above and press Start.")
        return
    if POLLING and snap.done:
        st.rerun()  # refresh the whole page once: buttons, run list, comparison
    st.markdown(f"**{snap.label}** · {snap.weights or 'loading data and model...'}")
    st.progress(snap.progress, text=status_line(snap))
    if snap.error:
        st.error(snap.error)
    left, right = st.columns(2)
    left.plotly_chart(charts.epoch_curves_figure(snap.epochs, snap.config.epochs,
                                                 snap.config.mode if snap.config.arch == "resnet18" else None),
                      key="live-epochs")
    right.plotly_chart(charts.batch_loss_figure(snap.batches), key="live-batches")


def runs_ui() -> None:
    """Every finished or stopped run of this tab, in a table and overlaid against the book."""
    runs = ui.runs()
    if not runs:
        return
    st.subheader("Runs in this tab")
    rows = []
    for run in runs:
        last = run.history.final()
        rows.append({"run": run.label, "epochs": last.epoch if last else 0,
                     "train loss": last.train_loss if last else None, "train acc": last.train_acc if last else None,
                     "test acc": last.test_acc if last else None,
                     "examples/sec": round(run.history.examples_per_sec, 1),
                     "devices": ", ".join(run.history.devices), "stopped": run.history.stopped})
    st.dataframe(rows, hide_index=True, column_config=ui.three_decimals("train loss", "train acc", "test acc"))
    chosen = st.multiselect("Compare", range(len(runs)), default=list(range(len(runs))),
                            format_func=lambda i: f"#{i + 1} {runs[i].label}")
    st.plotly_chart(charts.compare_runs_figure([(f"#{i + 1} {runs[i].label}", runs[i].history) for i in chosen]),
                    key="compare")
    columns = st.columns(min(len(runs), 4))
    for i, run in enumerate(runs):
        columns[i % len(columns)].download_button(
            f"Checkpoint #{i + 1}", data=lambda run=run: checkpoint_bytes(run.result), file_name=f"{run.id}.pt",
            mime="application/octet-stream", on_click="ignore", key=f"download-{run.id}")


st.title("Train")
root = ui.data_root()
summary = None
if root is None:
    st.error("No data chosen: pick the photos on the Dataset explorer page first.")
else:
    try:
        summary = ui.dataset_summary(root)
        st.caption(f"Data: `{summary.root}`, {summary.total('train')} train / {summary.total('test')} test images.")
    except FtcoreError as e:
        ui.show_error(e)
st.page_link("pages/explore.py", label="Change the data", icon=":material/photo_library:")

with st.expander("Experiments to try"):
    st.markdown(
        "- **Fine-tune vs scratch**: run both with their book defaults and compare: the copied ImageNet layers "
        "start out knowing edges, textures and shapes, so the fine-tuned model is ahead from the first epoch.\n"
        "- **Learning rate 5e-5 vs 5e-3** when fine-tuning: a large rate overwrites what the copied layers "
        "knew.\n"
        "- **Output layer at 10x off**: the new, random layer then learns as slowly as the copied ones.\n"
        "- **Loss: mean** (More settings) at the same lr: the gradient shrinks by the batch size, so training "
        "barely moves; the book's 5e-5 with the sum equals 6.4e-3 with the mean at batch 128.")
config = settings_ui(summary.root if summary else None)
output_layers_ui(config, summary.classes if summary else [])

start, stop, note = st.columns([1, 1, 4])
if start.button("Start", type="primary", disabled=POLLING or summary is None, icon=":material/play_arrow:"):
    try:
        ui.start_job(config)
        st.rerun()
    except FtcoreError as e:
        ui.show_error(e)
if stop.button("Stop", disabled=not POLLING, icon=":material/stop:"):
    ui.current_job().stop()
if POLLING:
    note.caption("Changing the settings now only affects the next run; this one keeps its own.")

live_ui()
runs_ui()
