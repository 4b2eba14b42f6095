"""Dataset explorer: choose the photos (or build a dataset), see their layout, splits, sizes and augmentations."""

import re

import streamlit as st

from app import builder_view, cached, jobs, paths, tab, widgets
from ftcore.data import dataset, download, splits
from ftcore.data.summary import DatasetSummary, ImageRecord
from ftcore.errors import FtcoreError
from ftcore.insight import charts

SOURCES = ("Hot-dog set (d2l)", "Local folder", "Upload a .zip", "Your own photos")


def hotdog_ui() -> str | None:
    """Use the hot-dog set found on this machine, or download d2l's hotdog.zip with a progress bar."""
    found = download.find_data()
    if found is not None:
        st.caption(f"Found on this machine: `{found}`")
        return str(found) if st.button("Use the hot-dog set") else None
    st.caption(f"Not on this machine yet. d2l's `hotdog.zip` comes from `{download.HOTDOG_URL}` (sha1-checked).")
    if not st.button("Download hotdog.zip", icon=":material/cloud_download:"):
        return None
    bar = st.progress(0.0, text="Downloading hotdog.zip...")

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=f"Downloading hotdog.zip: {done / 1e6:.0f} MB")

    return str(download.download_hotdog(progress=progress))


def folder_ui() -> str | None:
    """A dataset folder on this machine in any layout (inside the data root, if one is set)."""
    refusal = paths.folder_picking_refusal()
    if refusal:
        st.warning(widgets.as_sentence(refusal), icon=":material/lock:")
        return None
    allowed = paths.allowed_data_root()
    if allowed is not None:
        st.caption(f"This server reads folders inside `{allowed}` only; give a path relative to it.")
    path = st.text_input("Dataset folder", placeholder="hotdog" if allowed else "/path/to/hotdog",
                         help="A folder of <class>/ folders, or one holding train/ with test/, val/ (or valid/) "
                         "or both beside it.")
    if st.button("Use this folder", disabled=not path):
        folder = paths.user_path(path)
        dataset.check_image_folder(folder)
        return str(folder)
    return None


def upload_ui() -> str | None:
    """A zipped dataset in any layout, unpacked safely once per content."""
    upload = st.file_uploader("Zip of a dataset folder: <class>/ folders, or train/ with test/ or val/",
                              type=["zip"])
    return cached.unpacked_upload(upload) if upload is not None else None


def choose_data_ui() -> None:
    """Pick where the photos come from; the choice lasts for this browser tab."""
    source = st.radio("Data source", SOURCES, horizontal=True, label_visibility="collapsed")
    try:
        pick = {SOURCES[0]: hotdog_ui, SOURCES[1]: folder_ui, SOURCES[2]: upload_ui,
                SOURCES[3]: builder_view.own_photos_ui}
        chosen = pick[source]()
    except FtcoreError as e:
        widgets.show_error(e)
        return
    if chosen is not None and chosen != tab.data_root():
        tab.set_data_root(chosen)
        st.rerun()


def split_ui(summary: DatasetSummary) -> None:
    """The layout found, its splits per class, and how validation photos are held out where the data has none."""
    description = splits.LAYOUTS[summary.layout]
    st.markdown(f"**Layout: {summary.layout}** ({description}).")
    val_fraction, split_seed = tab.data_split()
    holds_out = summary.layout in splits.HOLDOUT_LAYOUTS
    if summary.layout == splits.BOOK_LAYOUT:
        carve = st.toggle("Hold out a validation split from train/", value=bool(val_fraction), key="carve-val",
                          help="Off: the book's way, every per-epoch figure is on test. On: curves, the best epoch "
                          "and every choice use the validation photos, and test is measured once, at the end.")
        if not carve:
            if val_fraction:
                tab.set_data_split(None, 0)
                st.rerun()
            return
        holds_out = True
    if not holds_out:
        st.caption(f"Validation comes from the data's own {summary.splits[1]}/ folder: curves and choices use it"
                   + ("; test is measured once, at the end." if "test" in summary.splits else "."))
        return
    left, right = st.columns([3, 1])
    share = left.slider("Validation share of each class (%)", 5, 50,
                        round(100 * (val_fraction or splits.DEFAULT_VAL_FRACTION)), step=5,
                        key=f"val-share-{summary.root}", help="Each photo's side is fixed by a hash of the seed and "
                        "its path, so adding photos never moves the ones already placed; every class keeps at least "
                        "one photo on each side.")
    seed = right.number_input("Split seed", 0, 2**31 - 1, split_seed, key=f"split-seed-{summary.root}")
    wanted = (share / 100, int(seed))
    if (val_fraction, split_seed) != wanted:
        tab.set_data_split(*wanted)
        st.rerun()


def markdown_escaped(text: str) -> str:
    """`text` shown literally in Markdown (a class may be named `*new*` or `a|b`)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+\-.!|~$])", r"\\\1", text)


def counts_ui(summary: DatasetSummary) -> None:
    """Photos per class and split with each class's share, as a table (in Markdown: a data grid would load pandas
    on a cold server first), and a warning where the training photos' classes are unequal."""
    def row(name: str, cells: list[str]) -> str:
        return f"| {name} | " + " | ".join(cells) + " |"

    shares = {split: summary.shares(split) for split in summary.splits}
    lines = [row("class", summary.splits), "|---|" + "---:|" * len(summary.splits)]
    lines += [row(markdown_escaped(name), [f"{summary.counts[split][name]} ({shares[split][name]:.0%})"
                                           for split in summary.splits]) for name in summary.classes]
    lines.append(row("**all**", [str(summary.total(split)) for split in summary.splits]))
    st.markdown("\n".join(lines))
    if imbalance := summary.imbalance_message():
        st.warning(widgets.as_sentence(f"{imbalance} (Train, More settings, Balance classes)"),
                   icon=":material/balance:")


def grid_ui(grid: list[ImageRecord]) -> None:
    """The book's preview: the first 8 photos of the first class, the last 8 of the last class (2 x 8)."""
    half = len(grid) // 2
    for row in (grid[:half], grid[half:]):
        for column, record in zip(st.columns(8), row, strict=False):
            try:
                column.image(cached.thumbnail(record.path), caption=record.label, width="stretch",
                             alt=f"a {record.label} photo, {record.path.rsplit('/', 1)[-1]}")
            except FtcoreError:  # the listing shows photos before the check has read them
                column.caption(f"{record.label}: `{record.path.rsplit('/', 1)[-1]}` cannot be read")


@st.fragment(run_every=jobs.POLL_SECONDS)
def photo_check_ui(root: str) -> None:
    """The background check of every photo: its progress while it runs; the page again, once, when it ends."""
    check = cached.photo_check(root)
    if check.done:
        st.rerun()  # the whole page: sizes, broken photos and leakage are known now (or why they are not)
    st.progress(check.done_count / max(check.total, 1),
                text=f"Checking every photo in the background: {check.done_count} of {check.total} decoded "
                "(sizes, photos that cannot be read, the same photo in two splits). The counts and the grid "
                "come from the file listing and are ready now.")


def augmentation_ui(grid: list[ImageRecord]) -> None:
    """One photo through the train transform several times, next to the test transform."""
    names = [f"{r.label}: {r.path.rsplit('/', 1)[-1]}" for r in grid]
    left, right = st.columns([3, 1])
    choice = left.selectbox("Photo", range(len(grid)), format_func=names.__getitem__)
    draws = st.session_state.setdefault("augment_draw", 0)
    if right.button("New random crops", icon=":material/casino:"):
        st.session_state["augment_draw"] = draws = draws + 1
    train_views, test_view = cached.augmentation_preview(grid[choice].path, 224, 6, draws)
    columns = st.columns(7)
    for column, view in zip(columns, train_views, strict=False):
        column.image(view, caption="train: random crop + flip", width="stretch",
                     alt=f"{names[choice]} through the training transform: a random crop, maybe flipped")
    columns[-1].image(test_view, caption="test: resize 256, centre crop 224", width="stretch",
                      alt=f"{names[choice]} through the test transform: resized to 256, centre 224 cropped")


st.title("Dataset explorer")
choose_data_ui()
root = tab.data_root()
if root is None:
    st.error("No data chosen yet: use the hot-dog set, a local folder, an uploaded zip or your own photos above.")
    st.stop()
try:
    summary = cached.dataset_summary(root)
except FtcoreError as e:
    widgets.show_error(e)
    st.stop()

st.success(f"Using `{summary.root}`: classes {', '.join(summary.classes)}.", icon=":material/folder_open:")
try:
    split_ui(summary)
except FtcoreError as e:
    widgets.show_error(e)
metrics = st.columns(2 + len(summary.splits))
metrics[0].metric("Classes", len(summary.classes))
for column, split in zip(metrics[1:], summary.splits, strict=False):
    column.metric(f"{split.capitalize()} images", summary.total(split))
check = cached.photo_check(root)
stats = summary.size_stats()
metrics[-1].metric("Aspect ratios", f"{stats['aspect_min']:.2f}-{stats['aspect_max']:.2f}" if stats else
                   "n/a" if summary.checked or check.error else "checking...")
if check.error:
    st.error(widgets.as_sentence(f"{check.error}; the counts come from the file listing, and a run that meets a "
                                 "photo it cannot read stops and names it"))
elif not summary.checked:
    photo_check_ui(root)
if summary.duplicates:
    st.warning(widgets.as_sentence(summary.leakage_message()), icon=":material/warning:")
if summary.unreadable:
    st.error(summary.unreadable_message(), icon=":material/broken_image:")
    with st.expander(f"The {len(summary.unreadable)} photo(s) that cannot be read"):
        st.dataframe([{"photo": path, "problem": summary.reasons.get(path, "")} for path in summary.unreadable],
                     hide_index=True)
if summary.ignored:
    st.caption(f"{len(summary.ignored)} file(s) beside the photos are not photos (or are links leading out of "
               f"the folder) and are ignored, e.g. `{summary.ignored[0]}`.")

counts_ui(summary)
st.page_link("app_pages/check.py", label="Check the photos for wrong labels, duplicates and leaks",
             icon=":material/fact_check:")
st.subheader("The book's grid")
st.caption("The first 8 training photos of the first class and the last 8 of the last class: sizes and "
           "aspect ratios vary, so the transforms below crop and resize everything to 224 x 224.")
grid_ui(summary.book_grid())

# The charts come once the check has ended, below the grid: Plotly is the largest script file of the app, the
# browser draws nothing below a chart until it has it, and reading it holds up the rest (docs/benchmarks.md)
if summary.checked:
    left, right = st.columns(2)
    widgets.chart_ui(charts.class_counts_figure(summary), "counts", left)
    widgets.chart_ui(charts.image_sizes_figure(summary), "sizes", right)
else:
    st.info("No charts: they come with the photo check, which stopped (above)." if check.error else
            "Charts of the counts per class and of the photos' sizes appear here once the background check has "
            "decoded every photo.")

st.subheader("Augmentation preview")
st.caption("Training sees a random crop (8-100 % of the area, aspect 3/4-4/3) resized to 224, flipped half of "
           "the time; testing resizes to 256 x 256 and takes the centre 224 x 224. Both normalise with ImageNet's "
           "mean and std (undone here for display).")
if summary.images and summary.checked:
    augmentation_ui(summary.book_grid())
elif summary.images:
    st.info("No preview: it comes with the photo check, which stopped (above)." if check.error else
            "The preview appears once the background check has found which photos can be read.")
else:
    st.info("No photo of this folder can be read, so there is nothing to preview.")
