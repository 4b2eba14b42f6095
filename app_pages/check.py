"""Check the photos: label suspects, duplicates and leaks, and a map of every photo; each fixed with one click in this
tab's edit log, never in the photo folder. Widgets and layout only (the glue is app/cleaning.py).

A page of its own rather than a section of the Dataset explorer: the check runs a network over every photo, its
results need room (a grid, groups side by side, a map), and a person comes back to it after a run to fix more."""

import altair as alt
import streamlit as st

from app import cleaning, jobs, widgets
from ftcore import archs
from ftcore.clean.report import CheckReport, DuplicateRow, SuspectRow
from ftcore.config import CHECK_ARCH
from ftcore.data.edits import EditKind, Edits
from ftcore.errors import FtcoreError

PAGE = 12  # suspects and duplicate groups shown at a time (the most suspect first)
COLUMNS = 3  # suspects to a row
SHOWN_KEY = "check-shown"  # how many suspects this tab shows
# Okabe and Ito's colours, told apart with the common colour blindnesses too (black last, for the ninth class on)
OKABE_ITO = ["#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def arch_ui() -> str:
    """The network whose ImageNet layers embed the photos: any built-in one (the quickest by default)."""
    names = list(archs.ARCHITECTURES)
    return st.selectbox("Network that looks at the photos", names, index=names.index(CHECK_ARCH),
                        help="Its ImageNet layers turn each photo into a vector once; the check compares those. "
                        "The vectors are kept, so checking again reads only new or changed photos.")


@st.fragment(run_every=jobs.POLL_SECONDS)
def progress_ui(root: str, arch: str) -> None:
    """The running check's progress; the page again, once, when it ends."""
    job = cleaning.check_job(root, arch)
    if job is None or job.finished:
        st.rerun()
    shown = f"{job.done} of {job.total} photos read" if job.total else "starting"
    st.progress(job.done / max(job.total, 1), text=f"Checking the photos in the background: {shown}. Photos already "
                "seen come from the cache at once; then the classifier, the duplicates and the map take seconds.")
    if st.button("Stop the check", icon=":material/stop:"):
        job.stop()


def tally_ui(root: str, edits: Edits, log: list) -> None:
    """What this tab edited, Undo, the whole log, and whether runs train on the edits."""
    left, middle, right = st.columns([3, 1, 2])
    left.markdown(f"**Edits in force:** {len(edits.relabeled)} relabeled, {len(edits.excluded)} excluded, "
                  f"{len(edits.kept)} marked as looking right. The photo folder itself is never changed.")
    middle.button("Undo", icon=":material/undo:", disabled=not log, on_click=cleaning.record,
                  args=(root, EditKind.UNDO), help="Take back the last edit (the log keeps both).")
    as_is = right.toggle("Train on the folder as it is", value=cleaning.trains_as_is(),
                         help="Off (the default): this tab's runs train on the photos as edited here. On: on the "
                         "photos exactly as the folder files them.")
    if as_is != cleaning.trains_as_is():
        cleaning.set_trains_as_is(as_is)
    if log:
        with st.expander(f"All {len(log)} edits, oldest first"):
            st.markdown("\n".join(f"- {edit.text()}" for edit in log))


def relabel_buttons(root: str, suspect: SuspectRow, classes: list[str], column, key: str) -> None:
    """Relabel as the suggested class in one click (as another class, too, where there are more than two)."""
    column.button(f"Relabel as {suspect.suggested}", key=f"relabel-{key}", type="primary", on_click=cleaning.record,
                  args=(root, EditKind.RELABEL, suspect.path, suspect.suggested))
    others = [name for name in classes if name not in (suspect.given, suspect.suggested)]
    if others:
        with column.popover("Relabel as another class"):
            for name in others:
                st.button(name, key=f"relabel-{key}-{name}", on_click=cleaning.record,
                          args=(root, EditKind.RELABEL, suspect.path, name))


def suspect_card(root: str, suspect: SuspectRow, classes: list[str], column, key: str) -> None:
    """One suspect: the photo, its label and the suggested one, and the three one-click fixes."""
    picture = cleaning.thumbnail(root, suspect.path)
    caption = (f"{suspect.path}: filed as {suspect.given}, looks like {suspect.suggested} "
               f"({suspect.confidence:.0%})")
    if picture is not None:
        column.image(picture, caption=caption, width="stretch", alt=f"{suspect.path}, a photo filed as {suspect.given}")
    else:
        column.caption(f"{caption}; it cannot be read any more")
    relabel_buttons(root, suspect, classes, column, key)
    left, right = column.columns(2)
    left.button("Exclude", key=f"exclude-{key}", on_click=cleaning.record, args=(root, EditKind.EXCLUDE, suspect.path),
                help="Leave this photo out of training and measuring.")
    right.button("Looks right", key=f"keep-{key}", on_click=cleaning.record, args=(root, EditKind.KEEP, suspect.path),
                 help="Its label is right: take it off the suspects.")


def suspects_ui(root: str, found: CheckReport, edits: Edits) -> None:
    """The suspects not yet dealt with, most suspect first, PAGE at a time."""
    open_ones = [s for s in found.suspects if s.path not in edits.touched()]
    st.subheader(f"Labels that look wrong ({len(open_ones)} to look at)")
    if not open_ones:
        st.info("No suspect left: every photo whose label the check doubted has been dealt with." if found.suspects
                else "The check doubts no label: each photo looks like the class it is filed under.")
        return
    st.caption("Each photo was judged by a classifier that never saw it (5-fold, on the network's vectors). The "
               "percentage is how sure it is of the suggested class.")
    shown = st.session_state.setdefault(SHOWN_KEY, PAGE)
    for start in range(0, min(shown, len(open_ones)), COLUMNS):
        for column, suspect in zip(st.columns(COLUMNS), open_ones[start:start + COLUMNS], strict=False):
            suspect_card(root, suspect, found.classes, column.container(border=True), suspect.path)
    if len(open_ones) > shown and st.button(f"Show {PAGE} more", icon=":material/expand_more:"):
        st.session_state[SHOWN_KEY] = shown + PAGE
        st.rerun()


def duplicate_ui(root: str, group: DuplicateRow, edits: Edits, index: int) -> None:
    """One group side by side, each photo with its split and an Exclude button."""
    box = st.container(border=True)
    if group.leak:
        box.warning(f"A leak: this photo is in {' and '.join(sorted(set(group.splits)))}, so the "
                    f"{next(s for s in group.splits if s != 'train')} accuracy counts it twice: the model is measured "
                    "on a photo it trained on. Exclude the training copy.", icon=":material/warning:")
    else:
        box.caption(f"The same photo {len(group.paths)} times in {group.splits[0]} (similarity "
                    f"{group.similarity:.2f}): it weighs more in training than the others.")
    for column, path, split in zip(box.columns(max(len(group.paths), 3)), group.paths, group.splits, strict=False):
        picture = cleaning.thumbnail(root, path)
        if picture is not None:
            column.image(picture, caption=f"{split}: {path}", width="stretch", alt=f"{path}, a {split} photo")
        if path in edits.excluded:
            column.caption("Excluded.")
        else:
            column.button("Exclude", key=f"dup-exclude-{index}-{path}", on_click=cleaning.record,
                          args=(root, EditKind.EXCLUDE, path), help=f"Leave {path} out of training and measuring.")


def duplicates_ui(root: str, found: CheckReport, edits: Edits) -> None:
    """The groups of photos that are one photo, leaks first."""
    leaks = sum(group.leak for group in found.duplicates)
    st.subheader(f"Duplicates and leaks ({leaks} leak(s), {len(found.duplicates) - leaks} copies within a split)")
    if not found.duplicates:
        st.info("No photo appears twice, resized, re-saved or lightly cropped, in this folder.")
        return
    for index, group in enumerate(found.duplicates[:PAGE]):
        duplicate_ui(root, group, edits, index)
    if len(found.duplicates) > PAGE:
        st.caption(f"And {len(found.duplicates) - PAGE} more groups: `python -m ftcore clean --data ...` lists all.")


def map_ui(root: str, found: CheckReport, edits: Edits) -> None:
    """Every photo on a plane, alike photos close, coloured by label; suspects and leaks marked; hover shows the
    photo, a click selects it."""
    st.subheader("A map of the photos")
    st.caption("Each dot is a photo, placed by t-SNE so that photos the network sees as alike sit together, and "
               "coloured by its class (as edited here). A photo among another class's photos is worth a look: "
               "hover for the photo, click to fix it below.")
    suspects = {s.path: s for s in found.suspects}
    leaked = {path for group in found.duplicates if group.leak for path in group.paths}
    full = tuple(f"{found.root}/{p.path}" for p in found.photos)
    pictures = cleaning.map_thumbnails(full)
    rows = [{"path": p.path, "class": edits.relabeled.get(p.path, p.label), "split": p.split, "x": p.x, "y": p.y,
             "mark": "leak" if p.path in leaked else "suspect" if p.path in suspects else "photo",
             "image": pictures.get(f"{found.root}/{p.path}", "")} for p in found.photos if p.path not in edits.excluded]
    pick = alt.selection_point(fields=["path"], name="photo")
    chart = alt.Chart(alt.Data(values=rows)).mark_point(filled=True, size=60).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
        color=alt.Color("class:N", title="class", scale=alt.Scale(range=OKABE_ITO)),
        shape=alt.Shape("mark:N", title="marked", scale=alt.Scale(domain=["photo", "suspect", "leak"],
                                                                  range=["circle", "triangle-up", "square"])),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=["image:N", "path:N", "class:N", "split:N", "mark:N"]).add_params(pick).properties(height=480)
    event = st.altair_chart(chart, on_select="rerun", key=f"map-{found.arch}", width="stretch",
                            alt=cleaning.map_summary(rows))
    widgets.numbers_ui([{k: row[k] for k in ("path", "class", "split", "mark", "x", "y")} for row in rows],
                       f"map-{found.arch}")
    chosen = (event or {}).get("selection", {}).get("photo") or []
    path = chosen[0].get("path") if chosen else None
    if path:
        suspect = suspects.get(path) or SuspectRow(path=path, given=next(p.label for p in found.photos
                                                                         if p.path == path),
                                                   suggested="", score=1.0, confidence=0.0)
        box = st.container(border=True)
        box.markdown(f"**Selected:** `{path}`")
        if suspect.suggested:
            suspect_card(root, suspect, found.classes, box, f"map-{path}")
        else:
            picture = cleaning.thumbnail(root, path)
            if picture is not None:
                box.image(picture, caption=f"{path}: filed as {suspect.given}", width=240,
                          alt=f"{path}, a photo filed as {suspect.given}")
            for name in [c for c in found.classes if c != suspect.given]:
                box.button(f"Relabel as {name}", key=f"map-relabel-{path}-{name}", on_click=cleaning.record,
                           args=(root, EditKind.RELABEL, path, name))
            box.button("Exclude", key=f"map-exclude-{path}", on_click=cleaning.record,
                       args=(root, EditKind.EXCLUDE, path))


st.title("Check the photos")
summary = widgets.chosen_data()
if summary is None:
    st.stop()
root = summary.root
arch = arch_ui()
job = cleaning.check_job(root, arch)
found = cleaning.report(root, arch)
if job is not None and not job.finished:
    progress_ui(root, arch)
else:
    if job is not None and job.error:
        st.error(widgets.as_sentence(job.error))
    label = "Check again" if found is not None else "Check the photos"
    if st.button(label, type="primary" if found is None else "secondary", icon=":material/fact_check:"):
        cleaning.start_check(root, arch)
        st.rerun()
if found is None:
    st.info("The check reads every photo once with the network above and finds photos filed under the wrong "
            "class, the same photo twice, and test photos that sit in train too (a leak). It changes nothing: each "
            "fix is an edit in this tab's log, which training uses and Undo takes back.")
    st.stop()
st.caption(widgets.as_sentence(found.summary()) + (f" {len(found.unreadable)} photo(s) cannot be read and were left "
                                                   "out (Dataset explorer)." if found.unreadable else ""))
if problem := cleaning.take_problem():
    st.error(widgets.as_sentence(problem))
edits, log = cleaning.edits(root)
tally_ui(root, edits, log)
if st.button("Train on the cleaned photos", icon=":material/model_training:",
             disabled=edits.empty or cleaning.trains_as_is(),
             help="Starts this tab's settings (those of its latest run on this data, else the book's recipe) on the "
             "photos as edited. The Train page's comparison then overlays the runs before and after."):
    try:
        cleaning.start_cleaned_run(root, arch)
        st.switch_page("app_pages/train.py")
    except FtcoreError as e:
        widgets.show_error(e)
suspects_ui(root, found, edits)
duplicates_ui(root, found, edits)
map_ui(root, found, edits)
