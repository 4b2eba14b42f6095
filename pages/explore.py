"""Dataset explorer: choose the photos, see their classes, sizes and the book's augmentations."""

import streamlit as st

from ftcore import charts, data, ui
from ftcore.errors import FtcoreError

SOURCES = ("Hot-dog set (d2l)", "Local folder", "Upload a .zip")


def hotdog_ui() -> str | None:
    """Use the hot-dog set found on this machine, or download d2l's hotdog.zip with a progress bar."""
    found = data.find_data()
    if found is not None:
        st.caption(f"Found on this machine: `{found}`")
        return str(found) if st.button("Use the hot-dog set") else None
    st.caption(f"Not on this machine yet. d2l's `hotdog.zip` comes from `{data.HOTDOG_URL}` (sha1-checked).")
    if not st.button("Download hotdog.zip", icon=":material/cloud_download:"):
        return None
    bar = st.progress(0.0, text="Downloading hotdog.zip...")

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=f"Downloading hotdog.zip: {done / 1e6:.0f} MB")

    return str(data.download_hotdog(progress=progress))


def folder_ui() -> str | None:
    """A path on this machine that holds train/<class>/ and test/<class>/ (inside the data root, if one is set)."""
    refusal = ui.folder_picking_refusal()
    if refusal:
        st.warning(refusal[0].upper() + refusal[1:] + ".", icon=":material/lock:")
        return None
    allowed = ui.allowed_data_root()
    if allowed is not None:
        st.caption(f"This server reads folders inside `{allowed}` only; give a path relative to it.")
    path = st.text_input("Folder holding train/ and test/", placeholder="hotdog" if allowed else "/path/to/hotdog")
    if st.button("Use this folder", disabled=not path):
        folder = ui.user_path(path)
        data.check_image_folder(folder)
        return str(folder)
    return None


def upload_ui() -> str | None:
    """A zipped ImageFolder tree, unpacked safely once per content."""
    upload = st.file_uploader("Zip of a folder with train/<class>/ and test/<class>/", type=["zip"])
    return ui.unpacked_upload(upload) if upload is not None else None


def choose_data_ui() -> None:
    """Pick where the photos come from; the choice lasts for this browser tab."""
    source = st.radio("Data source", SOURCES, horizontal=True, label_visibility="collapsed")
    try:
        chosen = {SOURCES[0]: hotdog_ui, SOURCES[1]: folder_ui, SOURCES[2]: upload_ui}[source]()
    except FtcoreError as e:
        ui.show_error(e)
        return
    if chosen is not None and chosen != ui.data_root():
        ui.set_data_root(chosen)
        st.rerun()


def grid_ui(grid: list[data.ImageRecord]) -> None:
    """The book's preview: the first 8 photos of the first class, the last 8 of the last class (2 x 8)."""
    half = len(grid) // 2
    for row in (grid[:half], grid[half:]):
        for column, record in zip(st.columns(8), row, strict=False):
            column.image(ui.thumbnail(record.path), caption=record.label, width="stretch")


def augmentation_ui(grid: list[data.ImageRecord]) -> None:
    """One photo through the train transform several times, next to the test transform."""
    names = [f"{r.label}: {r.path.rsplit('/', 1)[-1]}" for r in grid]
    left, right = st.columns([3, 1])
    choice = left.selectbox("Photo", range(len(grid)), format_func=names.__getitem__)
    draws = st.session_state.setdefault("augment_draw", 0)
    if right.button("New random crops", icon=":material/casino:"):
        st.session_state["augment_draw"] = draws = draws + 1
    train_views, test_view = ui.augmentation_preview(grid[choice].path, 224, 6, draws)
    columns = st.columns(7)
    for column, view in zip(columns, train_views, strict=False):
        column.image(view, caption="train: random crop + flip", width="stretch")
    columns[-1].image(test_view, caption="test: resize 256, centre crop 224", width="stretch")


st.title("Dataset explorer")
choose_data_ui()
root = ui.data_root()
if root is None:
    st.error("No data chosen yet: use the hot-dog set, a local folder or an uploaded zip above.")
    st.stop()
try:
    summary = ui.dataset_summary(root)
except FtcoreError as e:
    ui.show_error(e)
    st.stop()

st.success(f"Using `{summary.root}`: classes {', '.join(summary.classes)}.", icon=":material/folder_open:")
metrics = st.columns(4)
metrics[0].metric("Classes", len(summary.classes))
metrics[1].metric("Train images", summary.total("train"))
metrics[2].metric("Test images", summary.total("test"))
stats = summary.size_stats()
metrics[3].metric("Aspect ratios", f"{stats['aspect_min']:.2f}-{stats['aspect_max']:.2f}" if stats else "n/a")
if summary.unreadable:
    st.error(summary.unreadable_message(), icon=":material/broken_image:")
    with st.expander(f"The {len(summary.unreadable)} photo(s) that cannot be read"):
        st.dataframe([{"photo": path, "problem": summary.reasons.get(path, "")} for path in summary.unreadable],
                     hide_index=True)
if summary.ignored:
    st.caption(f"{len(summary.ignored)} file(s) beside the photos are not photos (or are links leading out of "
               f"the folder) and are ignored, e.g. `{summary.ignored[0]}`.")

left, right = st.columns(2)
left.plotly_chart(charts.class_counts_figure(summary), key="counts")
right.plotly_chart(charts.image_sizes_figure(summary), key="sizes")

st.subheader("The book's grid")
st.caption("The first 8 training photos of the first class and the last 8 of the last class: sizes and "
           "aspect ratios vary, so the transforms below crop and resize everything to 224 x 224.")
grid_ui(summary.book_grid())

st.subheader("Augmentation preview")
st.caption("Training sees a random crop (8-100 % of the area, aspect 3/4-4/3) resized to 224, flipped half of "
           "the time; testing resizes to 256 x 256 and takes the centre 224 x 224. Both normalise with ImageNet's "
           "mean and std (undone here for display).")
if summary.images:
    augmentation_ui(summary.book_grid())
else:
    st.info("No photo of this folder can be read, so there is nothing to preview.")
