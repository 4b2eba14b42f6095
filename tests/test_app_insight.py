"""The insight pages under AppTest: Evaluate & explain, Experiments, Grad-CAM on Predict, the exercises on Train."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import torch_facts
from conftest import REPO
from ftcore.config import recipe
from ftcore.insight.evaluation import evaluate_photos
from ftcore.models.checkpoint import checkpoint_bytes
from ftcore.runs import saved, snapshot
from ftcore.train.loop import fit

HOME = REPO / "streamlit_app.py"
EVALUATE, EXPERIMENTS, PREDICT, TRAIN = (f"app_pages/{name}.py" for name in ("evaluate", "experiments", "predict",
                                                                         "train"))


def app(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(HOME), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(page)
    return at.run()


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def titled(at: AppTest, words: str) -> dict:
    return next(s for s in plotly_specs(at) if words in s["layout"]["title"]["text"])


@pytest.fixture(scope="module")
def finished_run(tiny_data) -> saved.Run:
    result = fit(recipe("scratch", "resnet18", data=str(tiny_data), epochs=1, batch_size=8, image_size=32))
    return saved.Run("insight-run", snapshot.run_label(result.config), result.config, result.history, result)


# --------------------------------------------------------------------------------------------------
# Evaluate & explain


def test_evaluate_shows_accuracy_table_confusion_matrix_and_photos(tiny_data, finished_run):
    at = no_exception(app(EVALUATE, data_root=str(tiny_data), runs=[finished_run]))
    expected = evaluate_photos(finished_run.trained.model, ["blue", "red"], finished_run.trained.eval_transform,
                              str(tiny_data))
    assert at.metric[0].value == f"{expected.accuracy:.3f}"
    table = at.dataframe[0].value
    assert list(table["class"]) == ["blue", "red"] and list(table["support"]) == [8, 8]
    assert list(table["recall"]) == pytest.approx([m.recall for m in expected.per_class()])
    heatmap = titled(at, "Confusion matrix")["data"][0]
    assert heatmap["z"] == expected.confusion.tolist() and heatmap["y"] == ["blue", "red"]
    cell = at.selectbox(key="cell-insight-run").value
    if expected.confusion[0, 1] + expected.confusion[1, 0]:  # mistakes come first
        assert cell[0] != cell[1]
    shown = len(expected.cell(*cell)) + len(expected.worst(12))
    assert len(at.get("image")) == shown


def test_choosing_another_cell_shows_its_photos(tiny_data, finished_run):
    at = app(EVALUATE, data_root=str(tiny_data), runs=[finished_run])
    expected = evaluate_photos(finished_run.trained.model, ["blue", "red"], finished_run.trained.eval_transform,
                              str(tiny_data))
    at.selectbox(key="cell-insight-run").set_value((1, 1)).run()
    no_exception(at)
    assert len(at.get("image")) == len(expected.cell(1, 1)) + len(expected.worst(12))


def test_explain_shows_weight_change_and_on_demand_the_feature_map(tiny_data, finished_run):
    at = no_exception(app(EVALUATE, data_root=str(tiny_data), runs=[finished_run]))
    bars = titled(at, "What training changed")["data"]
    assert len(bars) == 1 and bars[0]["x"][0] == "conv1" and bars[0]["x"][-1] == "fc"
    assert all(v > 0 for v in bars[0]["y"])
    at.toggle(key="fmap-insight-run").set_value(True).run()
    no_exception(at)
    fmap = titled(at, "Penultimate-layer features")
    assert sum(len(trace["x"]) for trace in fmap["data"]) == 2 * 16  # before and after, 16 test photos each
    assert any("Before: random initial weights" in a["text"] for a in fmap["layout"]["annotations"])


def test_keep_and_share_offers_export_and_reruns_the_same_settings(tiny_data, finished_run):
    at = no_exception(app(EVALUATE, data_root=str(tiny_data), runs=[finished_run]))
    labels = [button.label for button in at.get("download_button")]  # and each chart's numbers as a CSV
    assert [label for label in labels if label != "Download the numbers (CSV)"] == ["Download TorchScript model"]
    assert any("N x 3 x 32 x 32" in i.value for i in at.info)
    settings = at.dataframe[-1].value
    assert dict(zip(settings["setting"], settings["value"], strict=True))["seed"] == "0"
    at.button(key="rerun-insight-run").click().run()
    job = at.session_state["job"]
    assert job.config.to_dict() == finished_run.config.to_dict()
    job.stop()
    assert job.join(timeout=60)


def test_evaluate_an_uploaded_checkpoint(tiny_data, finished_run):
    at = app(EVALUATE, data_root=str(tiny_data))
    assert at.selectbox(key="evaluate-model").value == "A checkpoint file (.pt)"
    at.file_uploader(key="evaluate-checkpoint").upload("run.pt", checkpoint_bytes(finished_run.trained))
    at.run()
    no_exception(at)
    assert titled(at, "Confusion matrix")["data"][0]["z"] == evaluate_photos(
        finished_run.trained.model, ["blue", "red"], finished_run.trained.eval_transform, str(tiny_data)
    ).confusion.tolist()


def test_evaluate_without_a_model_asks_for_one():
    at = no_exception(app(EVALUATE))
    assert any("No run in this tab yet" in c.value for c in at.caption)


# --------------------------------------------------------------------------------------------------
# Predict: Grad-CAM


def test_predict_with_grad_cam_shows_the_heatmap_of_the_predicted_class(finished_run):
    out = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), (220, 40, 40), dtype=np.uint8)).save(out, format="PNG")
    at = app(PREDICT, runs=[finished_run])
    at.file_uploader[0].upload("red.png", out.getvalue(), "image/png").run()
    at.toggle(key="gradcam").set_value(True).run()
    no_exception(at)
    verdict = next(m.value for m in at.markdown if "%" in m.value).split("**")[1]
    assert len(at.get("image")) == 1
    assert at.get("image")[0].proto.imgs[0].caption == f"red.png: Grad-CAM of {verdict}"


# --------------------------------------------------------------------------------------------------
# Train: the book's exercises


def test_train_exercises_explain_an_unavailable_head_init_and_freeze_the_body(tiny_data, random_resnet18_file):
    at = app(TRAIN, data_root=str(tiny_data))
    at.text_input(key="weights").set_value(str(random_resnet18_file)).run()
    no_exception(at)
    assert at.toggle(key="head-imagenet").disabled
    assert any("Unavailable: none of the classes (blue, red) is an ImageNet category" in c.value for c in at.caption)
    at.number_input(key="epochs").set_value(1).run()
    at.select_slider(key="batch").set_value(8).run()
    at.select_slider(key="size").set_value(64).run()
    at.toggle(key="freeze-body").set_value(True).run()
    at.button(key="start").click().run()  # Start
    job = at.session_state["job"]
    assert job.join(timeout=120) and job.snapshot().status == "finished"
    assert job.config.freeze_body is True and job.config.head_init == "xavier"


def test_the_train_page_draws_without_torchs_facts_then_finds_them_and_redraws(tiny_data, random_resnet18_file,
                                                                              monkeypatch):
    from ftcore.devices.placement import available_devices
    from ftcore.models.output_layer import head_init_status
    from ftcore.util.lru import LruStore

    monkeypatch.setattr(torch_facts, "TORCH_FACTS", LruStore(64))  # a server process that has found nothing yet
    weights, classes = str(random_resnet18_file), ["blue", "red"]
    assert torch_facts.device_names() is None and torch_facts.head_init_status("resnet18", weights, classes) is None
    at = app(TRAIN, data_root=str(tiny_data))
    at.text_input(key="weights").set_value(weights).run()
    no_exception(at)
    assert at.radio(key="device").options == available_devices() == torch_facts.device_names()
    assert torch_facts.head_init_status("resnet18", weights, classes) == head_init_status("resnet18", weights, classes)
    assert not any("Checking whether the weights" in c.value for c in at.caption)


def test_a_weights_file_torch_cannot_read_leaves_the_head_init_unavailable_with_why(tiny_data, tmp_path):
    broken = tmp_path / "not-weights.pth"
    broken.write_bytes(b"these are not weights")
    at = app(TRAIN, data_root=str(tiny_data))
    at.text_input(key="weights").set_value(str(broken)).run()
    no_exception(at)
    assert at.toggle(key="head-imagenet").disabled
    assert any(c.value.startswith(f"Unavailable: weights file {broken} is not a PyTorch state dict")
               for c in at.caption)


def test_the_head_init_switch_is_offered_for_hotdog_classes(tmp_path, random_resnet18_file):
    from conftest import write_tiny_imagefolder

    root = write_tiny_imagefolder(tmp_path / "hot", {"train": 1, "test": 1})
    for split in ("train", "test"):
        (root / split / "red").rename(root / split / "hotdog")
    at = app(TRAIN, data_root=str(root))
    at.text_input(key="weights").set_value(str(random_resnet18_file)).run()
    no_exception(at)
    assert not at.toggle(key="head-imagenet").disabled
    assert any("Available: hotdog = ImageNet row 934" in c.value for c in at.caption)


# --------------------------------------------------------------------------------------------------
# Experiments


def run_until_done(at: AppTest, timeout: float = 240) -> AppTest:
    deadline = time.monotonic() + timeout
    while not at.session_state["experiment"].snapshot().done:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        at.run()
        no_exception(at)
    return at.run()


def small_experiment(at: AppTest) -> None:
    at.number_input(key="exp-epochs").set_value(1).run()
    at.selectbox(key="exp-batch").set_value(8).run()
    at.select_slider(key="exp-size").set_value(64).run()
    at.number_input(key="exp-limit").set_value(4).run()


def test_an_lr_sweep_plots_final_accuracy_per_lr_and_keeps_its_runs(tiny_data):
    at = no_exception(app(EXPERIMENTS, data_root=str(tiny_data)))
    small_experiment(at)
    at.radio(key="exp-sweep-mode").set_value("scratch").run()
    at.multiselect(key="exp-lrs").set_value([5e-4, 1e-3]).run()
    at.button(key="exp-sweep").click().run()
    run_until_done(at)
    sweep = titled(at, "Learning-rate sweep")
    assert sweep["data"][0]["x"] == [5e-4, 1e-3] and sweep["layout"]["xaxis"]["type"] == "log"
    runs = at.session_state["runs"]
    assert [run.config.lr for run in runs] == [5e-4, 1e-3]
    assert sweep["data"][0]["y"] == [run.history.final().test_acc for run in runs]


def test_fine_tune_vs_scratch_is_one_button_with_the_books_numbers(tiny_data, random_resnet18_file, monkeypatch):
    monkeypatch.setenv("FTCORE_WEIGHTS", str(random_resnet18_file))
    at = no_exception(app(EXPERIMENTS, data_root=str(tiny_data)))
    small_experiment(at)
    at.button(key="exp-compare").click().run()
    run_until_done(at)
    chart = titled(at, "Fine-tune vs scratch")
    assert [t["name"] for t in chart["data"] if t.get("showlegend", True) is not False] == \
        ["fine-tune resnet18 lr 5e-05, head 10x", "scratch resnet18 lr 5e-04"]
    assert any("book fine-tune 0.939" in a["text"] for a in chart["layout"]["annotations"])
    assert [run.config.mode for run in at.session_state["runs"]] == ["finetune", "scratch"]
