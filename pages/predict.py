"""Predict: classify uploaded photos with a run of this tab or a checkpoint file."""

import streamlit as st

from ftcore import charts, ui
from ftcore.errors import FtcoreError
from ftcore.predict import UPLOAD_TYPES, Predictor

CHECKPOINT = "A checkpoint file (.pt)"


def model_ui() -> tuple[str, Predictor] | None:
    """Choose the model: one of this tab's runs, or an uploaded checkpoint; returns (cache key, predictor)."""
    runs = ui.runs()
    options = list(range(len(runs))) + [CHECKPOINT]
    choice = st.selectbox("Model", options, index=max(len(runs) - 1, 0),
                          format_func=lambda o: o if o == CHECKPOINT else f"#{o + 1} {runs[o].label}")
    if choice != CHECKPOINT:
        run = runs[choice]
        last = run.history.final()
        st.caption(f"Trained in this tab; test acc {last.test_acc:.3f}." if last and last.test_acc is not None
                   else "Trained in this tab (stopped before a test).")
        return run.id, ui.predictor_for_run(run)
    if not runs:
        st.caption("No run in this tab yet: train one on the Train page, or load a checkpoint.")
    upload = st.file_uploader("Checkpoint written by training (checkpoint.pt)", type=["pt", "pth"])
    if upload is None:
        return None
    checkpoint = ui.checkpoint_from_upload(upload.getvalue())
    last = checkpoint.history.final()
    st.caption(f"{checkpoint.arch}, classes {', '.join(checkpoint.classes)}"
               + (f"; test acc {last.test_acc:.3f}" if last and last.test_acc is not None else "") + ".")
    return f"checkpoint-{upload.file_id}", ui.predictor_for_checkpoint(checkpoint)


st.title("Predict")
try:
    chosen = model_ui()
except FtcoreError as e:
    ui.show_error(e)
    chosen = None
photos = st.file_uploader("Photos", type=list(UPLOAD_TYPES), accept_multiple_files=True,
                          help="JPEG, PNG or WebP; each is resized to 256 x 256 and centre-cropped, as in testing.")
if chosen is None:
    if photos:
        st.warning("Choose a model first: a run from the Train page or a checkpoint file.")
    st.stop()
if not photos:
    st.stop()

key, predictor = chosen
results = ui.classify(key, predictor, [(photo.name, photo.getvalue()) for photo in photos])
for i, result in enumerate(results):
    if result.error:
        st.error(result.error)
        continue
    left, right = st.columns([1, 2], vertical_alignment="center")
    left.image(result.thumbnail, caption=result.name, width="stretch")
    label, probability = result.ranked[0]
    right.markdown(f"**{label}** ({probability:.1%})")
    right.plotly_chart(charts.probabilities_figure(result.ranked), key=f"probabilities-{i}")
