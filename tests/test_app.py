"""The dashboard under streamlit.testing's AppTest: every page with no data, with data, and with a run."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import jobs
from conftest import REPO, after_photo_check, set_small_scratch_run
from ftcore.config import recipe
from ftcore.models.checkpoint import checkpoint_bytes
from ftcore.runs import saved, snapshot
from ftcore.runs.process import ProcessJob
from ftcore.train.loop import fit

HOME = REPO / "streamlit_app.py"
EXPLORE, TRAIN, PREDICT = (f"app_pages/{name}.py" for name in ("explore", "train", "predict"))


def app(page: str | None = None, **state) -> AppTest:
    """The app (absolute path: AppTest resolves relative ones against this file's folder), on one page."""
    at = AppTest.from_file(str(HOME), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    if page is not None:
        at.switch_page(page)
    return at.run()


def plotly_specs(at: AppTest) -> list[dict]:
    """The Plotly figures on the page, as the JSON the browser gets."""
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def png_bytes(color=(220, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), color, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def finished_run(tiny_data) -> saved.Run:
    """A finished run, as the Train page keeps it in session state."""
    result = fit(recipe("scratch", "resnet18", data=str(tiny_data), epochs=2, batch_size=8, image_size=32))
    return saved.Run("run0000001", snapshot.run_label(result.config), result.config, result.history, result)


@pytest.fixture
def no_data_anywhere(monkeypatch, tmp_path):
    monkeypatch.setattr("ftcore.data.download.shared_dir", lambda: None)
    monkeypatch.setattr("ftcore.models.weights.shared_dir", lambda: None)


# --------------------------------------------------------------------------------------------------
# Home


def test_home_with_data_shows_the_book_and_what_was_found(tiny_data, monkeypatch):
    monkeypatch.setenv("FTCORE_DATA", str(tiny_data))
    at = no_exception(app())
    assert at.title[0].value == "Fine-tuning lab"
    table = at.table[0].value
    assert list(table["test acc"]) == ["0.939", "0.843"] and list(table["train loss"]) == ["0.220", "0.374"]
    assert list(table["recipe"]) == ["fine-tune (ImageNet weights, lr 5e-5, output layer 10x)",
                                     "scratch (random weights, lr 5e-4, one lr)"]  # the book's rates, as it writes them
    assert any("$FTCORE_DATA" in s.value and "found" in s.value for s in at.success)
    assert any("resnet18" in w.value and "downloads resnet18-f37072fd.pth" in w.value for w in at.warning)
    assert at.session_state["data_root"] == str(tiny_data)


def test_home_with_no_data_says_what_is_missing(no_data_anywhere):
    at = no_exception(app())
    assert not any("found at" in s.value for s in at.success)
    assert any("download cache" in i.value and "nothing at" in i.value for i in at.info)
    assert at.session_state["data_root"] is None


# --------------------------------------------------------------------------------------------------
# Dataset explorer


def test_explorer_without_data_asks_for_some():
    at = no_exception(app(EXPLORE, data_root=None))
    assert any("No data chosen" in e.value for e in at.error)


def test_explorer_with_data_shows_counts_sizes_grid_and_augmentations(tiny_data):
    at = after_photo_check(no_exception(app(EXPLORE, data_root=str(tiny_data))))
    assert [m.value for m in at.metric][:3] == ["2", "32", "16"]
    counts, sizes = plotly_specs(at)
    assert counts["data"][0]["y"] == [16, 16] and counts["data"][1]["y"] == [8, 8]
    assert sum(len(trace["x"]) for trace in sizes["data"]) == 48
    assert len(at.get("image")) == 16 + 7  # the book's 2 x 8 grid, 6 train views and 1 test view


def test_home_and_explorer_with_a_finished_run(tiny_data, finished_run):
    no_exception(app(runs=[finished_run], data_root=str(tiny_data)))
    at = no_exception(app(EXPLORE, runs=[finished_run], data_root=str(tiny_data)))
    assert [m.value for m in at.metric][:3] == ["2", "32", "16"] and at.session_state["runs"] == [finished_run]


def test_a_run_that_ends_on_another_page_joins_the_runs(tiny_data):
    job = ProcessJob(recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=32),
                     jobs.runs_dir()).start()
    assert job.join(timeout=120)
    at = no_exception(app(PREDICT, job=job))
    assert [r.id for r in at.session_state["runs"]] == [job.id]
    assert at.selectbox[0].value == 0  # the new run is offered for prediction


def test_explorer_refuses_a_folder_that_is_not_a_tree(tmp_path, tiny_data):
    at = app(EXPLORE, data_root=str(tiny_data))
    at.radio[0].set_value("Local folder").run()
    at.text_input[0].set_value(str(tmp_path)).run()
    at.button[0].click().run()
    no_exception(at)
    assert any("class folder(s); it needs at least two" in e.value for e in at.error)
    assert at.session_state["data_root"] == str(tiny_data)


def test_explorer_takes_an_uploaded_zip(tiny_data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in sorted(tiny_data.rglob("*.png")):
            zf.write(f, f"colours/{f.relative_to(tiny_data).as_posix()}")
    at = app(EXPLORE, data_root=None)
    at.radio[0].set_value("Upload a .zip").run()
    at.file_uploader[0].upload("colours.zip", buffer.getvalue(), "application/zip").run()
    no_exception(at)
    assert Path(at.session_state["data_root"]).name == "colours"
    assert [m.value for m in at.metric][:3] == ["2", "32", "16"]


# --------------------------------------------------------------------------------------------------
# Train


def output_layers(at) -> list[str]:
    """The source and target output layers the Train page shows, as code in its two markdown blocks."""
    return [m.value.split("`")[-2] for m in at.markdown if "model output layer**" in m.value]


def test_train_widgets_have_the_books_defaults(tiny_data):
    at = no_exception(app(TRAIN, data_root=str(tiny_data)))
    assert at.radio(key="mode").value == "finetune" and at.radio(key="arch").value == "resnet18"
    assert at.select_slider(key="lr-finetune-resnet18").value == 5e-5
    assert at.toggle(key="groups-finetune").value is True
    assert (at.number_input(key="epochs").value, at.select_slider(key="batch").value) == (5, 128)
    assert (at.select_slider(key="size").value, at.radio(key="device").value, at.number_input(key="seed").value) \
        == (224, "auto", 0)
    # no select box or code block: each has the browser fetch more files before it draws any of the page
    assert not at.selectbox and not at.multiselect and not at.code
    assert output_layers(at) == ["Linear(in_features=512, out_features=1000, bias=True)",
                                 "Linear(in_features=512, out_features=2, bias=True)"]
    at.radio(key="mode").set_value("scratch").run()
    assert at.select_slider(key="lr-scratch-resnet18").value == 5e-4
    assert at.toggle(key="groups-scratch").value is False
    at.radio(key="arch").set_value("resnet50").run()
    assert output_layers(at)[1] == "Linear(in_features=2048, out_features=2, bias=True)"


def test_train_takes_any_torchvision_network_by_name(tiny_data):
    at = no_exception(app(TRAIN, data_root=str(tiny_data)))
    assert at.toggle(key="balance").value is False  # off, as in the book
    at.radio(key="arch").set_value("other").run()
    assert at.text_input(key="arch-other").value == "efficientnet_b0"
    assert output_layers(at) == ["Linear(in_features=1280, out_features=1000, bias=True)",
                                 "Linear(in_features=1280, out_features=2, bias=True)"]
    assert any("not checked for efficientnet_b0" in c.value for c in at.caption)
    assert not at.error and not at.button(key="start").disabled
    at.text_input(key="arch-other").input("efficentnet_b0").run()
    assert [e.value for e in at.error] == [
        "unknown architecture 'efficentnet_b0': torchvision has no classification network of that name; did you "
        "mean efficientnet_b0 or efficientnet_b7 or efficientnet_b6?"]
    assert at.button(key="start").disabled
    at.text_input(key="arch-other").input("vit_b_16").run()
    assert not at.error and not at.button(key="start").disabled
    assert any(c.value == "Image size 224: vit_b_16 takes 224 x 224 photos only." for c in at.caption)
    assert "size" not in [slider.key for slider in at.select_slider]  # the one size it takes, not a slider
    at.text_input(key="arch-other").input("squeezenet1_0").run()
    assert output_layers(at)[1] == "Conv2d(512, 2, kernel_size=(1, 1), stride=(1, 1))"
    at.radio(key="arch").set_value("resnet18").run()
    assert at.select_slider(key="size").value == 224 and not at.error


def test_train_without_data_cannot_start():
    at = no_exception(app(TRAIN, data_root=None))
    assert any("No data chosen" in e.value for e in at.error)
    assert at.button(key="start").disabled


def test_start_then_polling_shows_a_growing_history(tiny_data):
    at = app(TRAIN, data_root=str(tiny_data))
    at.radio(key="mode").set_value("scratch").run()
    at.number_input(key="epochs").set_value(3).run()
    at.select_slider(key="batch").set_value(8).run()
    at.select_slider(key="size").set_value(64).run()
    at.button(key="start").click().run()  # Start
    no_exception(at)
    seen = []
    deadline = time.monotonic() + 300
    while not at.session_state["job"].snapshot().done and time.monotonic() < deadline:
        time.sleep(0.1)
        at.run()
        no_exception(at)
        seen.append(len(plotly_specs(at)[1]["data"][0]["x"]))  # the per-batch chart as drawn
    at.run()  # the run that notices the end
    seen.append(len(plotly_specs(at)[1]["data"][0]["x"]))
    snap = at.session_state["job"].snapshot()
    assert snap.status == "finished" and len(snap.batches) == 12
    assert seen == sorted(seen) and len(set(seen)) >= 2 and seen[-1] == 12  # the chart grew while it ran
    runs = at.session_state["runs"]
    assert len(runs) == 1 and runs[0].history.final().epoch == 3
    assert at.dataframe[0].value["run"][0] == "scratch resnet18 lr 5e-04"


def test_changing_a_widget_while_training_neither_kills_nor_restarts(tiny_data):
    at = app(TRAIN, data_root=str(tiny_data))
    set_small_scratch_run(at, 50)
    at.button(key="start").click().run()
    job = at.session_state["job"]
    at.number_input(key="seed").set_value(3).run()  # a setting for the next run
    assert at.session_state["job"] is job and not job.snapshot().done
    deadline = time.monotonic() + 120
    while not job.snapshot().batches and time.monotonic() < deadline:  # out of the queue and training
        time.sleep(0.1)
    at.run()
    # what the run was built on cannot change while it trains, each control says why
    assert all(at.radio(key=key).disabled and at.radio(key=key).help.startswith("Fixed while this run trains")
               for key in ("mode", "arch"))
    assert at.select_slider(key="batch").disabled and at.select_slider(key="size").disabled
    at.button(key="stop").click().run()  # Stop
    assert job.join(timeout=60) and job.snapshot().status == "stopped"
    assert job.config.seed == 0 and job.config.mode == "scratch"  # the run kept its own settings
    at.run()
    assert at.session_state["runs"][0].history.stopped


def test_train_with_a_finished_run_compares_it(tiny_data, finished_run):
    at = no_exception(app(TRAIN, data_root=str(tiny_data), runs=[finished_run]))
    assert at.dataframe[0].value["run"][0] == finished_run.label
    compare = plotly_specs(at)[-1]
    assert compare["data"][0]["y"] == [e.test_acc for e in finished_run.history.epochs]
    labels = [button.label for button in at.get("download_button")]
    assert labels.count("Checkpoint #1") == 1 and "Download the numbers (CSV)" in labels  # and the chart's numbers


# --------------------------------------------------------------------------------------------------
# Predict


def test_predict_with_no_runs_offers_a_checkpoint_upload():
    at = no_exception(app(PREDICT))
    assert at.selectbox[0].value == "A checkpoint file (.pt)" and len(at.file_uploader) == 2


def test_predict_an_uploaded_png_with_a_run(finished_run):
    at = app(PREDICT, runs=[finished_run])
    at.file_uploader[0].upload("red.png", png_bytes(), "image/png").run()
    no_exception(at)
    (spec,) = plotly_specs(at)
    probabilities = spec["data"][0]["x"]
    assert sorted(spec["data"][0]["y"]) == ["blue", "red"] and sum(probabilities) == pytest.approx(1)
    assert any("%" in m.value and ("red" in m.value or "blue" in m.value) for m in at.markdown)


def measured_as(run: saved.Run, run_id: str, test_acc: float) -> saved.Run:
    """A copy of `run` whose last epoch measured `test_acc` (its model and the rest of its history kept)."""
    history = copy.deepcopy(run.history)
    history.epochs[-1].test_acc = test_acc
    trained = dataclasses.replace(run.trained, history=history)
    return saved.Run(run_id, f"{run.label} {run_id}", run.config, history, trained)


def test_predict_opens_on_the_best_run_and_says_why(finished_run):
    runs = [measured_as(finished_run, "a", 0.745), measured_as(finished_run, "b", 0.5)]  # fine-tune, then scratch
    at = no_exception(app(PREDICT, runs=runs))
    assert at.selectbox[0].value == 0  # #1, not the newer #2
    assert "Opened on this run: the best test accuracy of this tab's 2 measured runs, 0.745; next: #2 at " \
           "0.500." in [c.value for c in at.caption]
    tie = [measured_as(finished_run, "a", 0.8), measured_as(finished_run, "b", 0.8)]
    assert no_exception(app(PREDICT, runs=tie)).selectbox[0].value == 1  # the newest of the best


def test_predict_warns_beside_the_answers_of_a_model_at_chance(finished_run):
    at = app(PREDICT, runs=[measured_as(finished_run, "a", 0.54)])
    at.file_uploader[0].upload("red.png", png_bytes(), "image/png").run()
    no_exception(at)
    assert [w.value for w in at.warning] == [
        "This model's test accuracy, 0.540, is within 5 points of guessing (0.500 for 2 classes): it has not "
        "learned to tell them apart, so its answers mean little; choose a run that learned."]
    assert "From a model at chance: see the warning above." in [c.value for c in at.caption]
    at = app(PREDICT, runs=[measured_as(finished_run, "a", 0.56)])
    at.file_uploader[0].upload("red.png", png_bytes(), "image/png").run()
    assert not no_exception(at).warning  # 6 points above guessing: no warning


def test_predict_a_bad_upload_is_one_error_line(finished_run):
    at = app(PREDICT, runs=[finished_run])
    at.file_uploader[0].upload("holiday.png", b"this is not a picture", "image/png").run()
    no_exception(at)
    assert [e.value for e in at.error] == ["holiday.png is not an image (UnidentifiedImageError); use a JPEG, PNG "
                                           "or WebP photo"]


def test_predict_with_an_uploaded_checkpoint(finished_run):
    at = app(PREDICT)
    at.file_uploader[0].upload("run.pt", checkpoint_bytes(finished_run.trained)).run()
    at.file_uploader[1].upload("blue.png", png_bytes((30, 30, 220)), "image/png").run()
    no_exception(at)
    assert len(plotly_specs(at)) == 1


def test_predict_with_a_broken_checkpoint_says_so():
    at = app(PREDICT)
    at.file_uploader[0].upload("run.pt", b"not a checkpoint").run()
    no_exception(at)
    assert any("cannot be read" in e.value for e in at.error)


def test_photos_per_forward_pass_reaches_the_runs_config(tiny_data):
    at = no_exception(app(TRAIN, data_root=str(tiny_data)))
    assert at.select_slider(key="micro").value == 0  # auto: the whole batch where it fits
    set_small_scratch_run(at, 1)
    at.select_slider(key="micro").set_value(128).run()
    at.button(key="start").click().run()
    job = at.session_state["job"]
    assert job.join(timeout=120)
    assert job.config.micro_batch == 128 and job.snapshot().status == "finished"
