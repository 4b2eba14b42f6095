"""Checkpoints: loaded only with weights_only=True; altered, foreign or mismatched files are named and refused."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import REPO, trained_model
from ftcore.errors import FtcoreError
from ftcore.models.build import build_model
from ftcore.models.checkpoint import checkpoint_dict, load_checkpoint
from ftcore.models.trained import TrainedModel
from ftcore.models.weights import WeightsSource
from ftcore.runs.saved import save_run


@pytest.fixture(scope="module")
def untrained() -> TrainedModel:
    """An untrained resnet18 for two classes (no training needed to test the file format)."""
    torch.manual_seed(0)
    return trained_model(build_model("resnet18", 2, pretrained=False)[0], ["blue", "red"])


@pytest.fixture
def saved(untrained, tmp_path) -> Path:
    return save_run(untrained, tmp_path / "run")[0]


def rewrite(path: Path, change) -> Path:
    """Load the checkpoint's dict (as weights_only allows), let `change` edit it, and save it back."""
    d = torch.load(path, weights_only=True)
    change(d)
    torch.save(d, path)
    return path


def test_checkpoints_are_only_ever_loaded_with_weights_only(saved, monkeypatch):
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    load_checkpoint(saved)
    assert len(calls) == 1 and all(k.get("weights_only") is True for k in calls)


class Payload:
    """An object whose unpickling would run code: it would create the file named in `marker`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(untrained, tmp_path):
    marker = tmp_path / "code-ran"
    d = checkpoint_dict(untrained)
    d["history"] = Payload(str(marker))
    path = tmp_path / "evil.pt"
    torch.save(d, path)
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(path)
    assert str(info.value) == (f"checkpoint {path} cannot be read (UnpicklingError); pass the checkpoint.pt a "
                               "training run wrote")
    assert not marker.exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload(str(marker)), protocol=2))
    with pytest.raises(FtcoreError, match="cannot be read"):
        load_checkpoint(raw)
    assert not marker.exists()


def test_altered_weights_are_detected(saved):
    payload = bytearray(saved.read_bytes())
    payload[len(payload) // 2] ^= 0x40  # the middle of the file is tensor data, which torch.load does not check
    saved.write_bytes(bytes(payload))
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(saved)
    assert str(info.value) == (f"checkpoint {saved} was altered after it was saved (its weights do not match the "
                               "checksum stored with them); use the original file or train again")


def test_a_truncated_checkpoint_cannot_be_read(saved):
    saved.write_bytes(saved.read_bytes()[: os.path.getsize(saved) // 3])
    with pytest.raises(FtcoreError, match=rf"^checkpoint {saved} cannot be read \(\w+\); pass the checkpoint.pt"):
        load_checkpoint(saved)


def test_weights_of_another_architecture_are_named(saved):
    rewrite(saved, lambda d: d.update(arch="mobilenet_v2"))
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(saved)
    assert str(info.value).startswith(f"checkpoint {saved} says mobilenet_v2 but holds the weights of another "
                                      "architecture (")
    assert "missing and" in str(info.value)
    assert str(info.value).endswith("it was altered after training, so train again")


def test_settings_naming_another_architecture_are_named(saved):
    rewrite(saved, lambda d: d["config"].update(arch="resnet34"))
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(saved)
    assert str(info.value) == (f"checkpoint {saved} holds resnet18 weights but its settings say resnet34; it was "
                               "altered after training, so train again")


def test_an_unknown_architecture_is_named(saved):
    rewrite(saved, lambda d: d.update(arch="vgg99"))
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(saved)
    assert str(info.value) == (f"checkpoint {saved} is for the architecture 'vgg99', which this version of "
                               "torchvision does not have; use a checkpoint of a network it lists")


def test_a_class_list_that_does_not_fit_the_output_layer_is_named(saved):
    rewrite(saved, lambda d: d.update(classes=["cat", "dog", "fox"]))
    with pytest.raises(FtcoreError) as info:
        load_checkpoint(saved)
    assert str(info.value) == (f"checkpoint {saved} lists 3 classes (cat, dog, fox) but its output layer has 2 "
                               "outputs; it was altered after training, so train again")


def test_a_checkpoint_used_on_data_with_other_classes_names_both_lists(saved, tmp_path, tiny_data):
    from PIL import Image

    from ftcore.insight.evaluation import check_classes

    checkpoint = load_checkpoint(saved)
    check_classes(checkpoint.classes, str(tiny_data))  # the same classes: fine
    other = tmp_path / "other"
    for split in ("train", "test"):
        for name in ("hotdog", "not-hotdog"):
            (other / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(other / split / name / "a.png")
    with pytest.raises(FtcoreError) as info:
        check_classes(checkpoint.classes, str(other))
    assert str(info.value) == (f"data folder {other} has classes hotdog, not-hotdog but the model was trained on "
                               "blue, red; choose the data it was trained on")


def test_a_loaded_checkpoint_is_the_saved_run(untrained, saved):
    again = load_checkpoint(saved)
    assert again.classes == ["blue", "red"] and again.config == untrained.config
    assert again.weights == WeightsSource("random")
    assert again.eval_transform.to_dict() == untrained.eval_transform.to_dict()
    for key, value in untrained.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key


def test_the_predict_page_names_an_altered_checkpoint_and_keeps_working(saved):
    payload = bytearray(saved.read_bytes())
    payload[len(payload) // 2] ^= 0x40
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120)
    at.switch_page("app_pages/predict.py").run()
    at.file_uploader[0].upload("run.pt", bytes(payload)).run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("checkpoint ") and error.value.endswith(
        "was altered after it was saved (its weights do not match the checksum stored with them); use the original "
        "file or train again")
    good = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), 200, dtype=np.uint8)).save(good, format="PNG")
    at.file_uploader[0].upload("run.pt", saved.read_bytes()).run()  # the right file: the page works again
    at.file_uploader[1].upload("grey.png", good.getvalue(), "image/png").run()
    assert not at.exception and not at.error and len(at.get("plotly_chart")) == 1
