"""Predict: classify uploaded photos with a run of this tab or a checkpoint file."""

import streamlit as st

from app import cached, choices, widgets
from app.widgets import model_picker_ui
from ftcore.errors import FtcoreError
from ftcore.insight import charts
from ftcore.insight.predict import UPLOAD_TYPES
from ftcore.models.trained import TrainedModel


def model_ui() -> tuple[str, TrainedModel] | None:
    """Choose the model: one of this tab's runs, a run saved on this machine, or an uploaded checkpoint;
    returns (cache key, model)."""
    choice = model_picker_ui("predict")
    if choice is None:
        return None
    if choice.run is not None:  # said before the model loads: a saved run may need its file read first
        where = "Trained in this tab" if choice.in_tab else f"Saved in `{choice.run.path}`"
        measured = choice.run.history.accuracy_text()
        st.caption(f"{where}; {measured}." if measured else f"{where} (stopped before a test).")
        if choice.why:
            st.caption(f"Opened on this run: {choice.why}.")
    trained = choice.trained_model()
    if choice.run is None:
        measured = trained.history.accuracy_text()
        st.caption(f"{trained.arch}, classes {', '.join(trained.classes)}" + (f"; {measured}" if measured else "")
                   + ".")
    return choice.key, trained


st.title("Predict")
chosen = widgets.value_or_error(model_ui)
size = chosen[1].eval_transform.image_size if chosen else None
photos = st.file_uploader("Photos", type=list(UPLOAD_TYPES), accept_multiple_files=True,
                          help="JPEG, PNG or WebP; each is resized and centre-cropped as the model's test photos were"
                          + (f" ({size} x {size} px)." if size else "."))
if st.toggle("Webcam", key="predict-webcam", help="Take a photo with this device's camera; it is classified "
             "beside the uploads (the browser asks for permission first)."):
    shot = st.camera_input("Take a photo to classify", key="predict-camera")
    photos = [*photos, shot] if shot is not None else photos
gradcam = st.toggle("Grad-CAM heatmaps", key="gradcam", help="Colour each photo by how much each region raised the "
                    "predicted class's score (Grad-CAM on the last convolutional block): red most, blue least. "
                    "The border the centre crop cuts off stays blue: the model never saw it.")
if chosen is None:
    if photos:
        st.warning("Choose a model first: a run from the Train page or a checkpoint file.")
    st.stop()
if not photos:
    st.stop()

if len(photos) > choices.MAX_PHOTOS:
    st.warning(f"{len(photos)} photos uploaded; the first {choices.MAX_PHOTOS} are classified. Remove some, or "
               "classify the rest in another go.")
    photos = photos[:choices.MAX_PHOTOS]
key, trained = chosen
results = cached.classify(key, trained, [(photo.name, photo.getvalue()) for photo in photos])
at_chance = trained.history.chance_note(len(trained.classes))
if at_chance:
    st.warning(widgets.as_sentence(at_chance), icon=":material/casino:")
for i, result in enumerate(results):
    if result.error:
        st.error(result.error)
        continue
    left, right = st.columns([1, 2], vertical_alignment="center")
    label, probability = result.ranked[0]
    said = f"{result.name}: predicted {label} with probability {probability:.1%}"
    if gradcam:
        try:
            heatmap, explained = cached.grad_cam_overlay(key, trained, result.name, photos[i].getvalue())
        except FtcoreError as e:  # a network without a feature map (a vision transformer): said once
            st.warning(f"{e}.")
            gradcam = False
    if gradcam:
        left.image(heatmap, caption=f"{result.name}: Grad-CAM of {explained}", width="stretch",
                   alt=f"{said}; the Grad-CAM heatmap of {explained} over the photo shows where the model looked")
    else:
        left.image(result.thumbnail, caption=result.name, width="stretch", alt=said)
    right.markdown(f"**{label}** ({probability:.1%})")
    if at_chance:
        right.caption("From a model at chance: see the warning above.")
    widgets.chart_ui(charts.probabilities_figure(result.ranked), f"probabilities-{i}", right)
