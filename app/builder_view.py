"""The Dataset explorer's own photos: the datasets built on this machine, and the builder (name classes, add photos
by upload or webcam, save)."""

from __future__ import annotations

import streamlit as st

from app import widgets
from ftcore.data import builder
from ftcore.errors import FtcoreError

BUILDER_KEY = "builder"  # session state: this tab's builder.PendingPhotos
NEW_DATASET = "A new dataset"


def own_photos_ui() -> str | None:
    """Datasets built here, and the builder: name classes, add photos by upload or webcam, save."""
    built = builder.list_built()
    if built:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        index = left.selectbox("Datasets built on this machine", range(len(built)), key="built-choice",
                               format_func=lambda i: f"{built[i].name}: " + ", ".join(
                                   f"{name} {n}" for name, n in built[i].counts.items()))
        if right.button("Use this dataset", key="use-built"):
            return str(built[index].path)
    st.markdown("**Build a dataset**: name two or more classes, add photos to each, save.")
    return builder_ui(built)


def pending_photos() -> builder.PendingPhotos:
    """This tab's photos waiting to be saved."""
    return st.session_state.setdefault(BUILDER_KEY, builder.PendingPhotos())


def uploaded(files: list) -> list[tuple[str, str, bytes]]:
    """Streamlit uploads (or a webcam shot) as (id, name, bytes)."""
    return [(f.file_id, f.name, f.getvalue()) for f in files]


def builder_ui(built: list[builder.BuiltDataset]) -> str | None:
    """The class cards, the save target and the Save button; returns the saved dataset's folder."""
    pending = pending_photos()
    targets = [NEW_DATASET] + [b.name for b in built]
    target = st.selectbox("Save into", targets, key="builder-target",
                          help="A new dataset, or more photos (and classes) for one built before.")
    existing = next((b.counts for b in built if b.name == target), {})
    for name in existing:
        pending.classes.setdefault(name, {})
    left, right = st.columns(2, vertical_alignment="bottom")
    dataset_name = (left.text_input("Dataset name", key="builder-name", placeholder="my-photos")
                    if target == NEW_DATASET else target)
    with right.form("builder-add-class", clear_on_submit=True, border=False):
        inner_left, inner_right = st.columns([3, 1], vertical_alignment="bottom")
        new_class = inner_left.text_input("Class name", placeholder="e.g. hotdog")
        if inner_right.form_submit_button("Add class"):
            try:
                pending.add_class(new_class)
            except FtcoreError as e:
                widgets.show_error(e)
    names = list(pending.classes)
    for start in range(0, len(names), 3):
        for column, name in zip(st.columns(3), names[start:start + 3], strict=False):
            with column.container(border=True):
                class_card_ui(pending, name, existing.get(name, 0))
    for sentence in pending.refused:
        st.warning(sentence, icon=":material/block:")
    ready = pending.ready(existing)
    if st.button(f"Save {pending.waiting} photo(s)", type="primary", disabled=not ready or not pending.waiting,
                 key="builder-save", icon=":material/save:"):
        return str(pending.save(dataset_name, new=target == NEW_DATASET).path)
    if not ready:
        st.caption(f"Save needs at least {builder.MIN_CLASSES} classes, each with a photo.")
    return None


def class_card_ui(pending: builder.PendingPhotos, name: str, saved: int) -> None:
    """One class: its photo count, uploads (many at once), the webcam, and removal."""
    waiting = pending.classes[name]
    st.markdown(f"**{name}**")
    count = st.empty()  # drawn once this run's uploads and shot are taken in
    uploads = st.file_uploader(f"Photos of {name}", type=list(builder.PHOTO_SUFFIXES.values()) + ["jpeg"],
                               accept_multiple_files=True, key=f"builder-upload-{name}")
    pending.take(name, uploaded(uploads or []))
    if st.toggle("Webcam", key=f"builder-webcam-{name}"):
        shot = st.camera_input(f"Photo of {name}", key=f"builder-camera-{name}")
        if shot is not None:
            pending.take(name, uploaded([shot]))
    with count.container():
        st.metric("Photos", saved + len(waiting), help="Saved before, plus the ones waiting to be saved.",
                  label_visibility="collapsed")
        st.caption(f"{saved} saved, {len(waiting)} waiting to be saved" if saved else f"{len(waiting)} photo(s)")
    if not saved and st.button("Remove class", key=f"builder-remove-{name}", icon=":material/delete:"):
        del pending.classes[name]
        st.rerun()
