"""Checkpoints: a run saved and loaded back predicts exactly as before; bad files are one clear error."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from ftcore.config import recipe
from ftcore.data.images import open_image
from ftcore.errors import FtcoreError
from ftcore.insight.predict import probabilities
from ftcore.models.checkpoint import checkpoint_bytes, checkpoint_dict, load_checkpoint
from ftcore.runs.saved import save_run
from ftcore.train.loop import fit


@pytest.fixture(scope="module")
def trained(tiny_data):
    return fit(recipe("scratch", "resnet18", data=str(tiny_data), epochs=1, batch_size=8, image_size=32))


def test_round_trip_predicts_the_same(trained, tiny_data, tmp_path):
    checkpoint_path, metrics_path = save_run(trained, tmp_path / "run")
    loaded = load_checkpoint(checkpoint_path)
    assert loaded.arch == "resnet18" and loaded.classes == ["blue", "red"]
    assert loaded.config == trained.config and loaded.history == trained.history
    assert loaded.eval_transform.to_dict() == trained.eval_transform.to_dict() and not loaded.model.training
    photos = [open_image(tiny_data / "test" / c / "001.png") for c in ("blue", "red")]
    before = probabilities(trained, photos)
    after = probabilities(loaded, photos)
    torch.testing.assert_close(after, before)
    metrics = json.loads(metrics_path.read_text())
    assert metrics["classes"] == ["blue", "red"] and metrics["config"]["mode"] == "scratch"
    assert len(metrics["history"]["epochs"]) == 1 and metrics["history"]["epochs"][0]["test_acc"] is not None


def test_checkpoints_load_with_weights_only(trained, tmp_path, monkeypatch):
    path, _ = save_run(trained, tmp_path)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    load_checkpoint(path)
    assert calls and all(k.get("weights_only") is True for k in calls)


def test_checkpoint_bytes_is_the_same_checkpoint(trained, tmp_path):
    path = tmp_path / "downloaded.pt"
    path.write_bytes(checkpoint_bytes(trained))
    assert load_checkpoint(path).classes == ["blue", "red"]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("content, words", [
    (b"", "cannot be read"),
    (b"just text", "cannot be read"),
    (pickle.dumps(Evil()), "cannot be read"),
])
def test_unreadable_checkpoints_are_refused(tmp_path, content, words):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(FtcoreError, match=words):
        load_checkpoint(bad)


def test_a_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(FtcoreError, match="not an ftcore checkpoint"):
        load_checkpoint(path)


def test_a_damaged_checkpoint_is_refused(trained, tmp_path):
    d = checkpoint_dict(trained)
    d["classes"] = ["a", "b", "c"]  # the output layer has 2 outputs
    path = tmp_path / "damaged.pt"
    torch.save(d, path)
    with pytest.raises(FtcoreError, match=r"lists 3 classes \(a, b, c\) but its output layer has 2 outputs"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FtcoreError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_weights_provenance_is_stored_as_data_not_as_a_sentence(tiny_data, random_resnet18_file, tmp_path,
                                                               monkeypatch):
    import hashlib

    from ftcore.models.weights import WeightsSource

    result = fit(recipe("finetune", "resnet18", data=str(tiny_data), epochs=1, batch_size=8, image_size=32,
                        weights=str(random_resnet18_file)))
    expected = WeightsSource("file", str(random_resnet18_file),
                             sha256=hashlib.sha256(random_resnet18_file.read_bytes()).hexdigest())
    assert result.weights == expected
    path, metrics = save_run(result, tmp_path / "run")
    assert json.loads(metrics.read_text())["weights_source"] == expected.to_dict()
    # rewording the sentence for people changes nothing a program reads back
    monkeypatch.setattr(WeightsSource, "describe", lambda self: "started from somewhere")
    assert load_checkpoint(path).weights == expected


def test_checkpoints_saved_before_provenance_was_data_still_say_where_they_started(trained, tmp_path):
    from ftcore.models.weights import WeightsSource

    path, _ = save_run(trained, tmp_path / "run")
    d = torch.load(path, weights_only=True)
    del d["weights_source"]
    d["weights"] = "ImageNet weights from torch cache: /cache/resnet18-f37072fd.pth"
    torch.save(d, path)
    assert load_checkpoint(path).weights == WeightsSource("torch cache", "/cache/resnet18-f37072fd.pth")
