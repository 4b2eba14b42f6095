"""Exports load on their own and predict what the live model predicts, and what the Predict page shows on photo files
(the exports themselves and the standalone snippet of docs/app.md)."""

from __future__ import annotations

import ast
import copy
import dataclasses
import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from conftest import REPO
from ftcore.config import recipe
from ftcore.data.images import EXIF_ORIENTATION, open_image
from ftcore.data.transforms import EvalPreset
from ftcore.errors import FtcoreError
from ftcore.insight import export
from ftcore.insight.predict import probabilities
from ftcore.models.trained import TrainedModel
from ftcore.train.loop import fit

# The first line of the standalone onnxruntime snippet in docs/app.md, which the docs test finds and runs.
SNIPPET_MARKER = "# classify.py:"
# What the exports and the snippet must agree with Predict to, per class probability.
AGREEMENT = 1e-4


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
    assert "N x 3 x 32 x 32" in note
    assert "resize to 37 x 37 with Pillow's bilinear filter (aspect ratio not kept)" in note
    assert "mean (0.485, 0.456, 0.406)" in note and "std (0.229, 0.224, 0.225)" in note
    assert "N x 2 logits for the classes blue, red" in note
    assert "turn it upright (EXIF orientation), lay any transparency on white" in note
    # torchvision's CenterCrop of 32 from 37 starts at the column whose value this ramp holds
    ramp = torch.arange(37.0).expand(1, 37, 37)
    start = int(TF.center_crop(ramp, [32, 32])[0, 0, 0])
    assert start == 2 and f"centre-crop 32 x 32 starting {start} px from the left and the top" in note


def test_the_note_of_a_shorter_side_resize_says_so_and_how_the_crop_rounds():
    note = export.input_note(EvalPreset(224, 232, resize="shorter", interpolation="bicubic"), ["a", "b"])
    assert "resize the shorter side to 232 with Pillow's bicubic filter, keeping the aspect ratio" in note
    assert "centre-crop 224 x 224 starting round((width - 224) / 2) px from the left" in note
    assert "halves to even" in note and "aspect ratio not kept" not in note


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


# Agreement with Predict on photo files: the exports, fed the preprocessing their own ftcore.json describes, and the
# docs' snippet, which prepares photos with Pillow and numpy alone, give the probabilities the Predict page shows.

# The run's own test transform (the book's square resize) and the other resize mode with the other filter.
PRESETS = {"square-bilinear": {}, "shorter-bicubic": {"resize": "shorter", "interpolation": "bicubic"}}


def write_photo_files(folder: Path) -> dict[str, Path]:
    """One file per kind of photo people bring: odd sizes either way round, greyscale, transparent (alpha and a
    palette's transparent index), small, and a JPEG whose EXIF says to turn it; noisy, so any pixel a preparation
    gets wrong changes the answer."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True, exist_ok=True)

    def noise(width: int, height: int, channels: int = 3) -> np.ndarray:
        shape = (height, width, channels) if channels > 1 else (height, width)
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    photos = {"odd-wide.png": Image.fromarray(noise(301, 177)), "odd-tall.jpg": Image.fromarray(noise(177, 301)),
              "grey.png": Image.fromarray(noise(211, 143, 1), mode="L"),
              "rgba.png": Image.fromarray(noise(160, 121, 4), mode="RGBA"), "small.png": Image.fromarray(noise(23, 29))}
    paths = {}
    for name, image in photos.items():
        image.save(folder / name)
        paths[name] = folder / name
    palette = Image.fromarray(noise(133, 97)).quantize(16)
    palette.save(folder / "palette.png", transparency=3)  # palette index 3 is transparent
    paths["palette.png"] = folder / "palette.png"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(noise(150, 90)).save(folder / "exif-rotated.jpg", exif=exif, quality=95)
    paths["exif-rotated.jpg"] = folder / "exif-rotated.jpg"
    return paths


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """The photo files of write_photo_files, written once for the module."""
    return write_photo_files(tmp_path_factory.mktemp("photos"))


# A one-epoch model answers close to 50:50 whatever the photo, so small preparation errors would hardly move its
# probabilities; multiplying its output layer by this makes the same decisions confident enough that they do.
SHARPEN = 20.0


@pytest.fixture(scope="module")
def decisive(trained: TrainedModel) -> TrainedModel:
    """The trained model with its output layer's weights and bias multiplied by SHARPEN."""
    model = copy.deepcopy(trained.model)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(SHARPEN)
        head.bias.mul_(SHARPEN)
    return dataclasses.replace(trained, model=model)


def with_preset(trained: TrainedModel, preset: str) -> TrainedModel:
    """`trained` measured with the test transform `preset` names (the same weights)."""
    transform = EvalPreset(trained.eval_transform.image_size, trained.eval_transform.resize_size, **PRESETS[preset])
    return dataclasses.replace(trained, eval_transform=transform)


def predict_page(trained: TrainedModel, paths: list[Path]) -> np.ndarray:
    """Class probabilities as the Predict page computes them: the app's decoder, the run's test transform and its
    BatchNorm-fused copy of the model."""
    return probabilities(trained, [open_image(path) for path in paths]).numpy()


def as_the_file_describes(meta: dict, paths: list[Path]) -> torch.Tensor:
    """The photos decoded as the app does and prepared as an export's own ftcore.json describes."""
    transform = EvalPreset.from_dict(meta["eval_transform"])
    return torch.stack([transform(open_image(path)) for path in paths])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's logits as probabilities."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_photo_files_are_the_kinds_promised(photo_files):
    modes = {name: Image.open(path).mode for name, path in photo_files.items()}
    assert modes["grey.png"] == "L" and modes["rgba.png"] == "RGBA" and modes["palette.png"] == "P"
    assert "transparency" in Image.open(photo_files["palette.png"]).info
    assert Image.open(photo_files["odd-wide.png"]).size == (301, 177)
    assert open_image(photo_files["exif-rotated.jpg"]).size == (90, 150)  # upright, as the phone shows it


@pytest.mark.parametrize("preset", PRESETS)
def test_onnx_gives_predicts_probabilities_on_photo_files(decisive, photo_files, preset):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    app_model = with_preset(decisive, preset)
    payload = export.export_bytes(app_model.model, app_model.eval_transform, app_model.classes, "resnet18", "onnx")
    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map[export.METADATA_FILE])
    assert meta["eval_transform"] == app_model.eval_transform.to_dict()
    paths = list(photo_files.values())
    (logits,) = session.run(None, {"images": as_the_file_describes(meta, paths).numpy()})
    np.testing.assert_allclose(softmax(logits), predict_page(app_model, paths), atol=AGREEMENT, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_torchscript_gives_predicts_probabilities_on_photo_files(decisive, photo_files, preset, tmp_path):
    app_model = with_preset(decisive, preset)
    out = export.save_export(app_model.model, app_model.eval_transform, app_model.classes, "resnet18",
                             "torchscript", tmp_path / "model.pt")
    files = {export.METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        loaded = torch.jit.load(str(out), _extra_files=files)
    meta = json.loads(files[export.METADATA_FILE])
    paths = list(photo_files.values())
    with torch.inference_mode():
        exported = torch.softmax(loaded(as_the_file_describes(meta, paths)), dim=1).numpy()
    np.testing.assert_allclose(exported, predict_page(app_model, paths), atol=AGREEMENT, rtol=0)


def test_a_preparation_off_by_one_pixel_would_be_caught(decisive, photo_files):
    """The agreement tests can fail: the model's answers move by far more than the tolerance when the crop is one
    pixel off (rounding CenterCrop's halves up instead of to even)."""
    path = photo_files["odd-wide.png"]
    transform = decisive.eval_transform
    resized = open_image(path).resize((transform.resize_size,) * 2, Image.Resampling.BILINEAR)
    left = (transform.resize_size - transform.image_size + 1) // 2  # halves rounded up
    shifted = resized.crop((left, left, left + transform.image_size, left + transform.image_size))
    batch = TF.normalize(TF.to_tensor(shifted), transform.mean, transform.std)[None]
    with torch.inference_mode():
        off = torch.softmax(decisive.model(batch), dim=1).numpy()
    assert np.abs(off - predict_page(decisive, [path])).max() > 10 * AGREEMENT


def docs_snippet() -> str:
    """The ```python block of docs/app.md that starts with SNIPPET_MARKER, exactly as written there."""
    text = (REPO / "docs" / "app.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    found = [block for block in blocks if block.startswith(SNIPPET_MARKER)]
    assert len(found) == 1, f"docs/app.md should hold one python block starting {SNIPPET_MARKER!r}"
    return found[0]


def test_the_docs_snippet_needs_only_onnxruntime_pillow_and_numpy():
    imported = set()
    for node in ast.walk(ast.parse(docs_snippet())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"onnxruntime", "PIL", "numpy", "json", "sys"}, imported
    assert len(docs_snippet().splitlines()) <= 35  # short enough to read beside the export


@pytest.mark.parametrize("preset", PRESETS)
def test_the_docs_snippet_run_as_written_gives_predicts_probabilities(decisive, photo_files, preset, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    app_model = with_preset(decisive, preset)
    model = export.save_export(app_model.model, app_model.eval_transform, app_model.classes, "resnet18", "onnx",
                               tmp_path / "model.onnx")
    script = tmp_path / "classify.py"
    script.write_text(docs_snippet(), encoding="utf-8")
    paths = list(photo_files.values())
    # -I: isolated from this repository (no PYTHONPATH, no script folder), as on a machine without the lab
    done = subprocess.run([sys.executable, "-I", str(script), str(model), *map(str, paths)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = {}
    for line in done.stdout.splitlines():
        path, _, ranked = line.rpartition(": ")
        printed[path] = dict(pair.rsplit(" ", 1) for pair in ranked.split(", "))
    assert list(printed) == [str(path) for path in paths]
    snippet = np.array([[float(printed[str(path)][c]) for c in app_model.classes] for path in paths])
    np.testing.assert_allclose(snippet, predict_page(app_model, paths), atol=AGREEMENT, rtol=0)
