"""Evaluate & explain: confusion matrix, per-class metrics, worst photos, feature map, weight change, export."""

from pathlib import Path

import streamlit as st

from app import cached, cleaning, jobs, paths, tab, widgets
from app.widgets import ModelChoice, model_picker_ui
from ftcore.config import TrainConfig
from ftcore.data.dataset import is_image_folder
from ftcore.errors import FtcoreError
from ftcore.insight import charts, export
from ftcore.insight.evaluation import Evaluation
from ftcore.models.trained import TrainedModel
from ftcore.train.steering import changes_text

GRID = 6  # photos per row in the galleries
MAX_CELL_PHOTOS = 24  # photos shown for one confusion-matrix cell


def model_ui() -> tuple[ModelChoice, TrainedModel] | None:
    """Choose one of this tab's runs, a run saved on this machine, or an uploaded checkpoint."""
    choice = model_picker_ui("evaluate")
    return None if choice is None else (choice, choice.trained_model())


def readable(folder: str) -> str | None:
    """`folder` when this server may read it (a checkpoint names any path; served apps keep to their data root)."""
    try:
        return str(paths.user_path(folder)) if folder else None
    except FtcoreError:
        return None


def data_ui(trained: TrainedModel) -> tuple[str, int | None] | None:
    """The data to evaluate on (this tab's, else the run's own: its test split, else its val split) and a cap
    per class."""
    candidates = [root for root in (tab.data_root(), readable(trained.config.data)) if root and is_image_folder(root)]
    if not candidates:
        st.error("No photos to evaluate on: choose the data the model was trained on in the Dataset explorer.")
        return None
    left, right = st.columns([3, 1])
    root = left.selectbox("Held-out photos from (test split, else val)", list(dict.fromkeys(candidates)),
                          key="evaluate-data")
    limit = right.number_input("Photos per class (0 = all)", 0, 100_000, 200, step=50, key="evaluate-limit",
                               help="Each photo is one forward pass of the model; 200 per class keeps a CPU quick.")
    return root, int(limit) or None


def gallery(outcomes: list, caption) -> None:
    """Thumbnails of test photos with `caption(outcome)` under each and, for a screen reader, the true class, the
    predicted one and the confidence; GRID to a row (the photos are the test set's own files)."""
    for start in range(0, len(outcomes), GRID):
        columns = st.columns(GRID)
        for column, o in zip(columns, outcomes[start:start + GRID], strict=False):
            column.image(cached.thumbnail(o.path), caption=caption(o), width="stretch",
                         alt=f"{Path(o.path).name}: a {o.true} photo, predicted {o.predicted} with "
                             f"{o.probability:.0%} confidence")


def evaluate_ui(key: str, ev: Evaluation, root: str) -> None:
    """Accuracy (and without the photos that leaked from train, where the photo check found some), the per-class
    table, the clickable confusion matrix and the worst photos."""
    left, right = st.columns([1, 2])
    left.metric("Accuracy", f"{ev.accuracy:.3f}", help=f"On {len(ev.paths)} {ev.split} photos.")
    left.metric("Balanced accuracy", f"{ev.balanced_accuracy:.3f}",
                help="The mean of the classes' recalls: accuracy as if every class had as many photos. Far below "
                "the accuracy, the model favours the larger classes.")
    without, leaked = ev.accuracy_without(cleaning.leaked_photos(root))
    if leaked:
        left.metric("Accuracy without leaked photos", f"{without:.3f}", help=f"{leaked} of these {ev.split} photos "
                    "also sit in another split (Check the photos found them), so the model may have trained on them; "
                    "here they are left out.")
    if ev.note:
        left.caption(widgets.as_sentence(ev.note))
    right.dataframe([{"class": m.name, "precision": m.precision, "recall": m.recall, "F1": m.f1,
                      "support": m.support} for m in ev.per_class()], hide_index=True,
                    column_config=widgets.three_decimals("precision", "recall", "F1"))
    n = len(ev.classes)
    chart_key = f"confusion-{key}"
    event = widgets.chart_ui(charts.confusion_matrix_figure(ev.confusion.tolist(), ev.classes), chart_key,
                             on_select="rerun", selection_mode="points")
    points = event["selection"]["points"] if event else []  # one point per clicked cell marker
    clicked = next(((int(p["customdata"][0]), int(p["customdata"][1])) for p in points if p.get("customdata")),
                   None)
    cell_key, seen_key = f"cell-{key}", f"cell-clicked-{key}"
    if clicked is not None and clicked != st.session_state.get(seen_key):
        st.session_state[cell_key] = clicked  # a click picks the cell; the selectbox can still change it
    st.session_state[seen_key] = clicked
    confusion = ev.confusion
    cell = st.selectbox("Photos in the cell", ev.cells_by_mistakes(), key=cell_key,
                        format_func=lambda c: f"true {ev.classes[c[0]]}, predicted {ev.classes[c[1]]} "
                                              f"({confusion[c]} photos{', mistakes' if c[0] != c[1] else ''})")
    photos = ev.cell(*cell)
    if photos:
        cut = f"; the first {MAX_CELL_PHOTOS} shown" if len(photos) > MAX_CELL_PHOTOS else ""
        st.caption(f"Highest loss first{cut}.")
        gallery(photos[:MAX_CELL_PHOTOS], lambda o: f"{Path(o.path).name}: p({o.predicted}) {o.probability:.2f}")
    else:
        st.caption("No photo in this cell.")
    if n:
        st.subheader("Worst photos")
        st.caption("The test photos the model paid the highest loss on: its most confident mistakes first.")
        gallery(ev.worst(GRID * 2), lambda o: f"true {o.true} → {o.predicted} ({o.probability:.2f}), loss {o.loss:.2f}")


def feature_map_ui(key: str, trained: TrainedModel, root: str, limit: int | None) -> None:
    """PCA of the penultimate features before and after training, side by side."""
    st.subheader("Feature map")
    st.caption("Each test photo's penultimate-layer features (what the output layer reads), projected to 2-D with "
               "PCA and coloured by class: before training (the starting weights) and after. With ImageNet "
               "weights the classes already lie apart before any training: that separation is what the new output "
               "layer draws its line through. From random weights they start mixed.")
    if not st.toggle("Compute the feature map (two passes over the test photos)", key=f"fmap-{key}"):
        return
    fmap = cached.feature_map(key, trained, root, limit)
    start = ("source model (ImageNet weights)" if trained.config.mode == "finetune"
             else "random initial weights")
    figure = charts.feature_map_figure([(f"Before: {start}", *fmap["before"]), ("After training", *fmap["after"])],
                                       fmap["targets"].tolist(), trained.classes, fmap["names"])
    widgets.chart_ui(figure, f"feature-map-{key}")


def weight_change_ui(choice: ModelChoice, trained: TrainedModel) -> None:
    """Relative change per block of this run and, for contrast, of the session's runs of the other mode."""
    st.subheader("What training changed")
    st.caption("||W after − W before|| / ||W before|| for each block, from the input side (left) to the output "
               "layer (right). Fine-tuning with a small lr moves the copied layers little and the new output layer "
               "most; from scratch every block moves. A frozen block changed 0, which a log scale cannot draw.")
    shown = [(choice.key, choice.label, lambda: trained)]
    if choice.run is not None:
        others = [run for run in jobs.runs() if run.id != choice.key]
        contrast = st.multiselect("Compare with", range(len(others)), key=f"wchange-with-{choice.key}",
                                  default=[i for i, run in enumerate(others)
                                           if run.config.mode != trained.config.mode][-1:],
                                  format_func=lambda i: others[i].label)
        shown += [(others[i].id, others[i].label, lambda run=others[i]: run.trained) for i in contrast]
    series = []
    for key, label, load in shown:
        try:
            series.append((label, cached.weight_changes(key, load())))
        except FtcoreError as e:
            st.warning(f"{label}: {e}")
    if series:
        widgets.chart_ui(charts.weight_change_figure(series), f"weight-change-{choice.key}")


def keep_ui(key: str, trained: TrainedModel) -> None:
    """Every setting of the run, re-run it, and export the model."""
    st.subheader("Settings of this run")
    settings = trained.config.to_dict()
    st.caption(f"Seed {settings['seed']}; these settings are stored with the run (in its checkpoint and "
               "metrics.json). On a CPU the same settings and seed give the same curves.")
    st.dataframe([{"setting": k, "value": str(v)} for k, v in settings.items()], hide_index=True,
                 key=f"settings-{key}")
    if st.button("Re-run this", icon=":material/replay:", key=f"rerun-{key}",
                 disabled=jobs.job_running() or jobs.experiment_running(),
                 help="Start a new run with exactly these settings; watch it on the Train page."):
        try:
            paths.user_path(settings["data"])  # an uploaded checkpoint may name any folder: the same rule as typing it
            jobs.start_job(TrainConfig.from_dict(settings))
            st.switch_page("app_pages/train.py")
        except FtcoreError as e:
            widgets.show_error(e)

    st.subheader("Export")
    formats = [f for f in export.FORMATS if f == "torchscript" or export.onnx_available()]
    fmt = st.radio("Format", formats, horizontal=True, key=f"export-format-{key}",
                   format_func={"torchscript": "TorchScript", "onnx": "ONNX"}.get)
    if not export.onnx_available():
        st.caption("ONNX export needs the onnx package (`pip install onnx`); TorchScript needs nothing more.")
    st.info(export.input_note(trained.eval_transform, trained.classes), icon=":material/info:")
    st.download_button(f"Download {'TorchScript' if fmt == 'torchscript' else 'ONNX'} model",
                       data=lambda: cached.export_file(key, trained, fmt),
                       file_name=f"{key}{export.SUFFIXES[fmt]}", mime="application/octet-stream",
                       on_click="ignore", icon=":material/download:", key=f"export-{key}")


st.title("Evaluate & explain")
chosen_model = widgets.value_or_error(model_ui)
if chosen_model is None:
    st.stop()
choice, trained = chosen_model
measured = trained.history.accuracy_text()
steered = "; steered " + changes_text(trained.history.steering) \
    if trained.history.steering else ""
st.caption(f"{choice.label}: {trained.arch}, classes {', '.join(trained.classes)}"
           + (f"; {measured} when trained" if measured else "") + steered + ".")
chosen = data_ui(trained)
if chosen is None:
    st.stop()
root, limit = chosen

evaluate_tab, explain_tab, keep_tab = st.tabs(["Evaluate", "Explain", "Keep and share"])
try:
    evaluation = cached.evaluation(choice.key, trained, root, limit)
    with evaluate_tab:
        evaluate_ui(choice.key, evaluation, root)
    with explain_tab:
        st.caption("Grad-CAM heatmaps of single photos are on the Predict page (switch on \"Grad-CAM\").")
        weight_change_ui(choice, trained)
        feature_map_ui(choice.key, trained, root, limit)
except FtcoreError as e:
    widgets.show_error(e)
with keep_tab:
    keep_ui(choice.key, trained)
