"""Evaluate & explain: confusion matrix, per-class metrics, worst photos, feature map, weight change, export."""

from pathlib import Path

import streamlit as st

from app import ui
from app.widgets import model_picker_ui
from ftcore import charts, export
from ftcore.data import is_image_folder
from ftcore.errors import FtcoreError
from ftcore.evaluation import Evaluation, TrainedModel
from ftcore.training import TrainConfig

GRID = 6  # photos per row in the galleries
MAX_CELL_PHOTOS = 24  # photos shown for one confusion-matrix cell


def model_ui() -> TrainedModel | None:
    """Choose one of this tab's runs, a run saved on this machine, or an uploaded checkpoint."""
    choice = model_picker_ui("evaluate")
    if choice is None:
        return None
    if choice.run is not None:
        return TrainedModel.from_run(choice.run)
    return ui.trained_model_for_checkpoint(choice.key, choice.upload.name, choice.upload.getvalue())


def readable(folder: str) -> str | None:
    """`folder` when this server may read it (a checkpoint names any path; served apps keep to their data root)."""
    try:
        return str(ui.user_path(folder)) if folder else None
    except FtcoreError:
        return None


def data_ui(subject: TrainedModel) -> tuple[str, int | None] | None:
    """The data to evaluate on (this tab's, else the run's own: its test split, else its val split) and a cap
    per class."""
    candidates = [root for root in (ui.data_root(), readable(subject.config.data)) if root and is_image_folder(root)]
    if not candidates:
        st.error("No photos to evaluate on: choose the data the model was trained on in the Dataset explorer.")
        return None
    left, right = st.columns([3, 1])
    root = left.selectbox("Held-out photos from (test split, else val)", list(dict.fromkeys(candidates)),
                          key="evaluate-data")
    limit = right.number_input("Photos per class (0 = all)", 0, 100_000, 200, step=50, key="evaluate-limit",
                               help="Each photo is one forward pass of the model; 200 per class keeps a CPU quick.")
    return root, int(limit) or None


def gallery(items: list[tuple[str, str]]) -> None:
    """Thumbnails with captions, GRID to a row (the photos are the test set's own files)."""
    for start in range(0, len(items), GRID):
        columns = st.columns(GRID)
        for column, (path, caption) in zip(columns, items[start:start + GRID], strict=False):
            column.image(ui.thumbnail(path), caption=caption, width="stretch")


def cells_in_order(ev: Evaluation) -> list[tuple[int, int]]:
    """Every confusion-matrix cell, mistakes first (largest first), then the right answers."""
    n = len(ev.classes)
    confusion = ev.confusion
    return sorted(((t, p) for t in range(n) for p in range(n)), key=lambda c: (c[0] == c[1], -confusion[c]))


def evaluate_ui(subject: TrainedModel, ev: Evaluation) -> None:
    """Accuracy, the per-class table, the clickable confusion matrix and the worst photos."""
    left, right = st.columns([1, 2])
    left.metric("Accuracy", f"{ev.accuracy:.3f}", help=f"On {len(ev.paths)} {ev.split} photos.")
    if ev.note:
        left.caption(ev.note[0].upper() + ev.note[1:] + ".")
    right.dataframe([{"class": m.name, "precision": m.precision, "recall": m.recall, "F1": m.f1,
                      "support": m.support} for m in ev.per_class()], hide_index=True,
                    column_config=ui.three_decimals("precision", "recall", "F1"))
    n = len(ev.classes)
    chart_key = f"confusion-{subject.key}"
    event = st.plotly_chart(charts.confusion_matrix_figure(ev.confusion.tolist(), ev.classes), key=chart_key,
                            on_select="rerun", selection_mode="points")
    points = event["selection"]["points"] if event else []  # one point per clicked cell marker
    clicked = next(((int(p["customdata"][0]), int(p["customdata"][1])) for p in points if p.get("customdata")),
                   None)
    cell_key, seen_key = f"cell-{subject.key}", f"cell-clicked-{subject.key}"
    if clicked is not None and clicked != st.session_state.get(seen_key):
        st.session_state[cell_key] = clicked  # a click picks the cell; the selectbox can still change it
    st.session_state[seen_key] = clicked
    confusion = ev.confusion
    cell = st.selectbox("Photos in the cell", cells_in_order(ev), key=cell_key,
                        format_func=lambda c: f"true {ev.classes[c[0]]}, predicted {ev.classes[c[1]]} "
                                              f"({confusion[c]} photos{', mistakes' if c[0] != c[1] else ''})")
    photos = ev.cell(*cell)
    if photos:
        cut = f"; the first {MAX_CELL_PHOTOS} shown" if len(photos) > MAX_CELL_PHOTOS else ""
        st.caption(f"Highest loss first{cut}.")
        gallery([(o.path, f"{Path(o.path).name}: p({o.predicted}) {o.probability:.2f}")
                 for o in photos[:MAX_CELL_PHOTOS]])
    else:
        st.caption("No photo in this cell.")
    if n:
        st.subheader("Worst photos")
        st.caption("The test photos the model paid the highest loss on: its most confident mistakes first.")
        gallery([(o.path, f"true {o.true} → {o.predicted} ({o.probability:.2f}), loss {o.loss:.2f}")
                 for o in ev.worst(GRID * 2)])


def feature_map_ui(subject: TrainedModel, root: str, limit: int | None) -> None:
    """PCA of the penultimate features before and after training, side by side."""
    st.subheader("Feature map")
    st.caption("Each test photo's penultimate-layer features (what the output layer reads), projected to 2-D with "
               "PCA and coloured by class: before training (the starting weights) and after. With ImageNet "
               "weights the classes already lie apart before any training: that separation is what the new output "
               "layer draws its line through. From random weights they start mixed.")
    if not st.toggle("Compute the feature map (two passes over the test photos)", key=f"fmap-{subject.key}"):
        return
    fmap = ui.feature_map(subject.key, subject, root, limit)
    start = ("source model (ImageNet weights)" if subject.config.mode == "finetune"
             else "random initial weights")
    figure = charts.feature_map_figure([(f"Before: {start}", *fmap["before"]), ("After training", *fmap["after"])],
                                       fmap["targets"].tolist(), subject.classes, fmap["names"])
    st.plotly_chart(figure, key=f"feature-map-{subject.key}")


def weight_change_ui(subject: TrainedModel) -> None:
    """Relative change per block of this run and, for contrast, of the session's runs of the other mode."""
    st.subheader("What training changed")
    st.caption("||W after − W before|| / ||W before|| for each block, from the input side (left) to the output "
               "layer (right). Fine-tuning with a small lr moves the copied layers little and the new output layer "
               "most; from scratch every block moves. A frozen block changed 0, which a log scale cannot draw.")
    subjects = [subject]
    if not subject.key.startswith("checkpoint-"):
        others = [run for run in ui.runs() if run.id != subject.key]
        contrast = st.multiselect("Compare with", range(len(others)), key=f"wchange-with-{subject.key}",
                                  default=[i for i, run in enumerate(others)
                                           if run.config.mode != subject.config.mode][-1:],
                                  format_func=lambda i: others[i].label)
        subjects += [TrainedModel.from_run(others[i]) for i in contrast]
    series = []
    for s in subjects:
        try:
            series.append((s.label, ui.weight_changes(s.key, s)))
        except FtcoreError as e:
            st.warning(f"{s.label}: {e}")
    if series:
        st.plotly_chart(charts.weight_change_figure(series), key=f"weight-change-{subject.key}")


def keep_ui(subject: TrainedModel) -> None:
    """Every setting of the run, re-run it, and export the model."""
    st.subheader("Settings of this run")
    settings = subject.config.to_dict()
    st.caption(f"Seed {settings['seed']}; these settings are stored with the run (in its checkpoint and "
               "metrics.json). On a CPU the same settings and seed give the same curves.")
    st.dataframe([{"setting": k, "value": str(v)} for k, v in settings.items()], hide_index=True,
                 key=f"settings-{subject.key}")
    if st.button("Re-run this", icon=":material/replay:", key=f"rerun-{subject.key}",
                 disabled=ui.job_running() or ui.experiment_running(),
                 help="Start a new run with exactly these settings; watch it on the Train page."):
        try:
            ui.user_path(settings["data"])  # an uploaded checkpoint may name any folder: the same rule as typing it
            ui.start_job(TrainConfig.from_dict(settings))
            st.switch_page("pages/train.py")
        except FtcoreError as e:
            ui.show_error(e)

    st.subheader("Export")
    formats = [f for f in export.FORMATS if f == "torchscript" or export.onnx_available()]
    fmt = st.radio("Format", formats, horizontal=True, key=f"export-format-{subject.key}",
                   format_func={"torchscript": "TorchScript", "onnx": "ONNX"}.get)
    if not export.onnx_available():
        st.caption("ONNX export needs the onnx package (`pip install onnx`); TorchScript needs nothing more.")
    st.info(export.input_note(subject.transform, subject.classes), icon=":material/info:")
    st.download_button(f"Download {'TorchScript' if fmt == 'torchscript' else 'ONNX'} model",
                       data=lambda: ui.export_file(subject.key, subject, fmt),
                       file_name=f"{subject.key}{export.SUFFIXES[fmt]}", mime="application/octet-stream",
                       on_click="ignore", icon=":material/download:", key=f"export-{subject.key}")


st.title("Evaluate & explain")
subject = ui.value_or_error(model_ui)
if subject is None:
    st.stop()
measured = subject.history.accuracy_text()
st.caption(f"{subject.label}: {subject.arch}, classes {', '.join(subject.classes)}"
           + (f"; {measured} when trained" if measured else "") + ".")
chosen = data_ui(subject)
if chosen is None:
    st.stop()
root, limit = chosen

evaluate_tab, explain_tab, keep_tab = st.tabs(["Evaluate", "Explain", "Keep and share"])
try:
    evaluation = ui.evaluation(subject.key, subject, root, limit)
    with evaluate_tab:
        evaluate_ui(subject, evaluation)
    with explain_tab:
        st.caption("Grad-CAM heatmaps of single photos are on the Predict page (switch on \"Grad-CAM\").")
        weight_change_ui(subject)
        feature_map_ui(subject, root, limit)
except FtcoreError as e:
    ui.show_error(e)
with keep_tab:
    keep_ui(subject)
