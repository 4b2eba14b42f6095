"""Cached features, output-layer epochs, the presets, precision auto and BatchNorm folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ftcore.config import recipe
from ftcore.data.dataset import open_split
from ftcore.data.transforms import EvalPreset
from ftcore.devices.precision import native_bf16, resolve_precision
from ftcore.errors import FtcoreError
from ftcore.models.build import build_model, fused_for_inference
from ftcore.records import BatchEnded, EpochEnded
from ftcore.train.evaluate import evaluate
from ftcore.train.features import extract_features
from ftcore.train.loop import fit


def randomised_batchnorm(model: nn.Module) -> nn.Module:
    """Running statistics away from 0/1, so that folding them into the convolutions is a real change."""
    torch.manual_seed(5)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_folding_batchnorm_keeps_the_outputs(arch):
    model = randomised_batchnorm(build_model(arch, 2, pretrained=False)[0])
    x = torch.randn(3, 3, 48, 48)
    fused = fused_for_inference(model)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-4)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) == 0  # every BatchNorm folded away


def test_features_are_what_the_output_layer_receives(tiny_data):
    model = randomised_batchnorm(build_model("resnet18", 2, pretrained=False)[0])
    test_set = open_split(tiny_data, "test", EvalPreset(32))
    batches = [(torch.stack([test_set[i][0] for i in range(8)]), torch.tensor(test_set.targets[:8]))]
    features, labels = extract_features(model, "resnet18", batches, torch.device("cpu"))
    body = nn.Sequential(*list(model.children())[:-1], nn.Flatten())  # every layer up to fc, by hand
    with torch.no_grad():
        assert torch.allclose(features, body(batches[0][0]), atol=1e-5)
    assert labels.tolist() == test_set.targets[:8] and features.shape == (8, 512)


def test_evaluation_with_folded_batchnorm_gives_the_same_accuracy(tiny_data):
    model = randomised_batchnorm(build_model("resnet18", 2, pretrained=False)[0])
    test_set = open_split(tiny_data, "test", EvalPreset(32))
    loader = torch.utils.data.DataLoader(test_set, batch_size=5)
    cpu = torch.device("cpu")
    assert evaluate(model, loader, cpu, 2, fuse=True) == evaluate(model, loader, cpu, 2, fuse=False)


def head_then_full(tiny_data, weights, **overrides):
    config = recipe("finetune", "resnet18", data=str(tiny_data), weights=str(weights), batch_size=8,
                    image_size=32, head_epochs=3, epochs=1, head_views=1, head_lr_decay=True, precision="fp32",
                    **overrides)
    events = []
    return fit(config, events.append), events


def test_output_layer_epochs_then_full_epochs(tiny_data, random_resnet18_file):
    result, events = head_then_full(tiny_data, random_resnet18_file)
    history = result.history
    assert [e.stage for e in history.epochs] == ["head", "head", "head", "full"]
    assert [e.epoch for e in history.epochs] == [1, 2, 3, 4] and not history.stopped
    assert all(e.test_acc is not None for e in history.epochs)
    assert history.epochs[0].examples == 64  # 32 photos through the test transform + 1 augmented view of each
    assert history.epochs[-1].examples == 32 and history.feature_seconds > 0
    steps = {e.epoch: e.steps for e in events if isinstance(e, BatchEnded)}
    assert steps == {1: 8, 2: 8, 3: 8, 4: 4}  # 64 cached features / 8, then 32 photos / 8
    assert sum(isinstance(e, EpochEnded) for e in events) == 4


def test_streaming_and_decoding_once_train_the_same_output_layer(tiny_data, random_resnet18_file):
    """The test transform on decoded uint8 crops is exact, so cached features, and the layer trained on them,
    do not depend on how the photos were loaded."""
    runs = [fit(recipe("finetune", "resnet18", "quick", data=str(tiny_data), weights=str(random_resnet18_file),
                       batch_size=8, image_size=32, head_epochs=4, precision="fp32", decode_once=decode_once))
            for decode_once in (True, False)]
    decoded, streamed = ([round(e.train_loss, 4) for e in r.history.epochs] for r in runs)
    assert decoded == streamed and len(decoded) == 4
    assert torch.allclose(runs[0].model.fc.weight, runs[1].model.fc.weight, atol=1e-5)


def test_the_quick_preset_trains_the_output_layer_only(tiny_data, random_resnet18_file):
    config = recipe("finetune", "resnet18", "quick", data=str(tiny_data), weights=str(random_resnet18_file),
                    batch_size=8, image_size=32)
    assert (config.head_epochs, config.epochs) == (20, 0)
    start, _ = build_model("resnet18", 2, pretrained=True, weights_file=str(random_resnet18_file))
    result = fit(config)
    trained = result.model.state_dict()
    for name, tensor in start.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(trained[name].cpu(), tensor), name  # the copied layers never moved
    assert result.history.epochs[-1].stage == "head" and result.history.examples_per_sec > 0


def test_output_layer_epochs_are_for_fine_tuning():
    with pytest.raises(FtcoreError, match="output-layer epochs"):
        recipe("scratch", "resnet18", "quick", data="d").validate()


def test_precision_auto_follows_the_hardware_and_the_architecture(tiny_data):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    with pytest.raises(FtcoreError, match="auto, fp32 or bf16"):
        resolve_precision("fp8", cpu)
    settings = {"data": str(tiny_data), "epochs": 1, "batch_size": 16, "image_size": 32, "limit": 4}
    assert fit(recipe("scratch", "mobilenet_v2", **settings)).history.precision == "fp32"  # measured: fp32 wins
    assert fit(recipe("scratch", "resnet18", **settings)).history.precision == resolve_precision("auto", cpu)
