"""Exports load on their own and predict what the live model predicts."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ftcore.config import recipe
from ftcore.errors import FtcoreError
from ftcore.insight import export
from ftcore.train.loop import fit


@pytest.fixture(scope="module")
def trained(tiny_data):
    return fit(recipe("scratch", data=str(tiny_data), epochs=1, batch_size=8, image_size=32))


def photos_batch(result, tiny_data) -> torch.Tensor:
    """Four test photos through the run's own test transform, as a user of the export must prepare them."""
    paths = sorted((tiny_data / "test").rglob("*.png"))[::4]
    return torch.stack([result.eval_transform(Image.open(p).convert("RGB")) for p in paths])


def live_logits(result, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return result.model(batch).float()


def test_torchscript_predicts_what_the_live_model_predicts(trained, tiny_data, tmp_path):
    out = export.save_export(trained.model, trained.eval_transform, trained.classes, "resnet18", "torchscript",
                             tmp_path / "model.pt")
    files = {export.METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        loaded = torch.jit.load(str(out), _extra_files=files)
    batch = photos_batch(trained, tiny_data)
    with torch.inference_mode():
        exported = loaded(batch)
    torch.testing.assert_close(exported, live_logits(trained, batch), atol=1e-4, rtol=1e-4)
    meta = json.loads(files[export.METADATA_FILE])
    assert meta["classes"] == ["blue", "red"] and meta["input_shape"] == [None, 3, 32, 32]
    assert meta["eval_transform"] == {"image_size": 32, "resize_size": 37, "mean": [0.485, 0.456, 0.406],
                                      "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "resize": "square"}


def test_exporting_leaves_the_live_model_as_it_was(trained):
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    export.torchscript_bytes(trained.model, trained.eval_transform, trained.classes, "resnet18")
    assert not trained.model.training
    assert all(torch.equal(before[k], v) for k, v in trained.model.state_dict().items())
    assert next(trained.model.parameters()).is_contiguous(memory_format=torch.channels_last)  # still as trained


def test_onnx_predicts_what_the_live_model_predicts(trained, tiny_data):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    payload = export.export_bytes(trained.model, trained.eval_transform, trained.classes, "resnet18", "onnx")
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    batch = photos_batch(trained, tiny_data)  # 4 photos: the batch axis is dynamic (traced with 1)
    (exported,) = session.run(None, {"images": batch.numpy()})
    np.testing.assert_allclose(exported, live_logits(trained, batch).numpy(), atol=1e-4, rtol=1e-4)
    meta = json.loads(session.get_modelmeta().custom_metadata_map[export.METADATA_FILE])
    assert meta["classes"] == ["blue", "red"] and "N x 3 x 32 x 32" in meta["note"]


def test_onnx_without_the_onnx_package_is_one_clear_error(trained, monkeypatch):
    monkeypatch.setattr(export, "onnx_available", lambda: False)
    with pytest.raises(FtcoreError, match="ONNX export needs the onnx package; install it"):
        export.onnx_bytes(trained.model, trained.eval_transform, trained.classes, "resnet18")


def test_the_note_says_size_normalisation_and_classes(trained):
    note = export.input_note(trained.eval_transform, trained.classes)
    assert "N x 3 x 32 x 32" in note and "resize to 37 x 37" in note and "centre-crop 32 x 32" in note
    assert "mean (0.485, 0.456, 0.406)" in note and "std (0.229, 0.224, 0.225)" in note
    assert "N x 2 logits for the classes blue, red" in note


def test_unknown_format_and_unwritable_target_are_user_errors(trained, tmp_path):
    with pytest.raises(FtcoreError, match="export format must be torchscript or onnx"):
        export.export_bytes(trained.model, trained.eval_transform, trained.classes, "resnet18", "tflite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FtcoreError, match="cannot write"):
        export.save_export(trained.model, trained.eval_transform, trained.classes, "resnet18", "torchscript",
                           blocker / "model.pt")


def test_torchscript_bytes_round_trip_through_memory(trained):
    payload = export.torchscript_bytes(trained.model, trained.eval_transform, trained.classes, "resnet18")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(io.BytesIO(payload))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), live_logits(trained, x), atol=1e-4, rtol=1e-4)
