"""Fine-tuning lab: `streamlit run streamlit_app.py`. Home page and navigation; widgets and layout only."""

import streamlit as st

from app import a11y, paths, tab
from ftcore import archs
from ftcore.config import BOOK_RESULTS, BOOK_SETUP, book_lr, lr_words
from ftcore.data import download
from ftcore.data.dataset import is_image_folder
from ftcore.models import weights

st.set_page_config(page_title="Fine-tuning lab", page_icon=":material/model_training:", layout="wide")


def book_table_ui() -> None:
    """The book's final numbers, as printed in d2l 13.2: a static table, which draws sooner than a data grid."""
    rows = [{"recipe": f"fine-tune (ImageNet weights, lr {lr_words(book_lr(mode))}, output layer 10x)"
             if mode == "finetune" else f"scratch (random weights, lr {lr_words(book_lr(mode))}, one lr)",
             "train loss": f"{r['train_loss']:.3f}", "train acc": f"{r['train_acc']:.3f}",
             "test acc": f"{r['test_acc']:.3f}", "examples/sec": f"{r['examples_per_sec']:.1f}"}
            for mode, r in BOOK_RESULTS.items()]
    st.table(rows, hide_index=True, width="content")
    st.caption(f"d2l 13.2: {BOOK_SETUP}.")


def data_status_ui() -> None:
    """Where the photos can come from on this machine, with a status each."""
    for label, path in download.data_candidates():
        if is_image_folder(path):
            st.success(f"**{label}**: found at `{path}`", icon=":material/check_circle:")
        else:
            st.info(f"**{label}**: nothing at `{path}`", icon=":material/radio_button_unchecked:")
    st.info(f"**d2l download**: `{download.HOTDOG_URL}` (needs internet; the Dataset page downloads it, "
            "or run `python -m ftcore data --download`).", icon=":material/cloud_download:")


def weights_status_ui() -> None:
    """Where each architecture's ImageNet weights come from, with a status each."""
    for arch in archs.ARCHITECTURES:
        state, sentence = weights.weights_status(arch)
        icon = {"found": ":material/check_circle:", "downloadable": ":material/cloud_download:"}.get(
            state, ":material/error:")
        box = st.success if state == "found" else st.warning if state == "downloadable" else st.error
        box(f"**{arch}**: {sentence}", icon=icon)


def home() -> None:
    """What fine-tuning is, the book's results, and what this machine has."""
    st.title("Fine-tuning lab")
    st.markdown(
        "Transfer learning the way [d2l.ai 13.2](https://d2l.ai/chapter_computer-vision/fine-tuning.html) "
        "does it, on the book's hot-dog photos:\n"
        "1. **Source model**: a ResNet-18 trained on ImageNet (1.2 M photos, 1000 classes).\n"
        "2. **Target model**: a copy of every layer and weight of the source model *except its output layer*, "
        "whose 1000 outputs belong to ImageNet's labels.\n"
        "3. **New output layer**: `Linear(512, 2)` for hot dog / not hot dog, randomly initialised (Xavier).\n"
        "4. **Fine-tune**: train on the target data with a *small* learning rate for the copied layers, which "
        "already know edges, textures and shapes, and *10x* that rate for the new layer, which knows nothing yet.\n\n"
        "Trained from scratch instead, the same network starts from random weights everywhere and, on 2000 "
        "photos, ends well below the fine-tuned one.")
    book_table_ui()
    st.subheader("On this machine")
    left, right = st.columns(2)
    with left:
        st.markdown("**Data**")
        data_status_ui()
    with right:
        st.markdown("**ImageNet weights**")
        weights_status_ui()
    st.subheader("Start")
    st.page_link("app_pages/explore.py", label="Explore the dataset", icon=":material/photo_library:")
    st.page_link("app_pages/check.py", label="Find mislabeled, duplicated and leaked photos",
                 icon=":material/fact_check:")
    st.page_link("app_pages/train.py", label="Fine-tune or train from scratch", icon=":material/model_training:")
    st.page_link("app_pages/experiments.py", label="Fine-tune vs scratch, and an lr sweep", icon=":material/science:")
    st.page_link("app_pages/predict.py", label="Classify your own photos", icon=":material/image_search:")
    st.page_link("app_pages/evaluate.py", label="Evaluate and explain a model", icon=":material/insights:")


pages = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/explore.py", title="Dataset explorer", icon=":material/photo_library:"),
    st.Page("app_pages/check.py", title="Check the photos", icon=":material/fact_check:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("app_pages/evaluate.py", title="Evaluate & explain", icon=":material/insights:"),
]
paths.keep_files_private()  # served to others: what the server writes, its own account alone reads
tab.attach_tab()  # this tab's id in the URL: a refresh gets its job and runs back
tab.data_root()  # pick this session's data once, before any page needs it
a11y.keyboard_styles_ui()  # every page: what the theme cannot set for the keyboard
st.navigation(pages).run()
