"""Explanations against hand-computed answers: Grad-CAM's formula and where it looks, PCA, and weight change."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from ftcore.archs import ARCHITECTURES
from ftcore.config import recipe
from ftcore.data.dataset import open_split
from ftcore.data.transforms import EvalPreset
from ftcore.insight import explain
from ftcore.insight.evaluation import evaluate_photos
from ftcore.models.build import build_model
from ftcore.train.loop import fit

SQUARE = 16  # side of the planted white square, in pixels
SIZE = 96  # crop size of the planted-square model: ResNet-18's layer4 is then 3 x 3


def planted_photo(rng: np.random.Generator, square_at: tuple[int, int] | None, size=(SIZE, SIZE)) -> Image.Image:
    """Dark noise; with `square_at` = (row, column), a white SQUARE x SQUARE square there."""
    width, height = size
    pixels = rng.integers(0, 120, size=(height, width, 3)).astype(np.uint8)
    if square_at is not None:
        r, c = square_at
        pixels[r:r + SQUARE, c:c + SQUARE] = 255
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def square_model() -> torch.nn.Module:
    """A ResNet-18 trained from scratch to tell photos with a white square (class 1, anywhere) from without."""
    rng = np.random.default_rng(0)
    transform = EvalPreset(SIZE, resize_size=SIZE)
    positions = [tuple(rng.integers(0, SIZE - SQUARE, size=2)) for _ in range(128)]
    X = torch.stack([transform(planted_photo(rng, positions[i] if i % 2 else None)) for i in range(128)])
    y = torch.arange(128) % 2
    torch.manual_seed(0)
    model, _ = build_model("resnet18", 2, pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    model.train()
    for _ in range(25):  # enough for 100% accuracy and a localised map on every seed tried (0-3)
        batch = torch.randint(0, 128, (16,))
        optimizer.zero_grad()
        F.cross_entropy(model(X[batch]), y[batch]).backward()
        optimizer.step()
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Grad-CAM


def hottest_square(cam: np.ndarray) -> tuple[int, int]:
    """Top-left corner of the SQUARE x SQUARE window (stride 4) where the map's mean is highest."""
    means = F.avg_pool2d(torch.from_numpy(cam)[None, None], SQUARE, stride=4)[0, 0]
    i, j = divmod(int(means.argmax()), means.shape[1])
    return 4 * i, 4 * j


def test_grad_cam_is_the_books_formula_on_a_resnet():
    """For a ResNet the class score is fc(mean of layer4), so d score / d A_k(i, j) = w_ck / (h w) everywhere:
    Grad-CAM = relu(sum_k w_ck / (h w) A_k), upsampled and scaled to a maximum of 1."""
    torch.manual_seed(1)
    model, _ = build_model("resnet18", 3, pretrained=False)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    cam, chosen = explain.grad_cam(model, x, class_index=2, arch="resnet18")
    with torch.no_grad():
        a = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
        h, w = a.shape[-2:]
        alpha = model.fc.weight[2] / (h * w)
        expected = F.relu((alpha.view(1, -1, 1, 1) * a).sum(1, keepdim=True))
        expected = F.interpolate(expected, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
        expected = expected / expected.max()
    assert chosen == 2 and cam.shape == (64, 64)
    np.testing.assert_allclose(cam, expected.numpy(), atol=1e-5)


def test_grad_cam_is_highest_over_the_square_the_model_learned(square_model):
    rng = np.random.default_rng(5)
    transform = EvalPreset(SIZE, resize_size=SIZE)
    for r, c in [(4, 4), (4, SIZE - 20), (SIZE - 20, 4), (SIZE - 20, SIZE - 20), (SIZE // 2 - 8, SIZE // 2 - 8)]:
        photo = planted_photo(rng, (r, c))
        cam, chosen = explain.grad_cam_photo(square_model, transform, photo, arch="resnet18")
        assert chosen == 1  # it sees the square
        assert cam.shape == (SIZE, SIZE) and cam.min() >= 0 and cam.max() == pytest.approx(1)
        inside = np.zeros(cam.shape, dtype=bool)
        inside[r:r + SQUARE, c:c + SQUARE] = True
        i, j = hottest_square(cam)
        assert abs(i - r) < SQUARE and abs(j - c) < SQUARE, ((r, c), (i, j))  # the hottest window overlaps it
        assert cam[inside].mean() > cam[~inside].mean() + 0.2, (r, c)


@pytest.mark.parametrize("resize", ["square", "shorter"])
def test_grad_cam_maps_back_onto_a_photo_of_any_size(square_model, resize):
    """A 150 x 120 photo is squashed to the test resize (the book's), or its shorter side brought to it (torchvision's
    weights': 137 x 110), and centre-cropped; the map covers the whole photo, is 0 where the crop cut the photo
    off, and peaks over the square."""
    rng = np.random.default_rng(9)
    transform = EvalPreset(SIZE, resize=resize)  # resize 110, centre crop 96: a border of resized pixels is cut
    # At (16, 108) in the photo the square lands at rows 8-22, columns 72-84 of the crop: inside one of
    # layer4's 3 x 3 cells (the top-right one), so the map has no reason to spread to a neighbour.
    photo = planted_photo(rng, (16, 108), size=(150, 120))
    cam, _ = explain.grad_cam_photo(square_model, transform, photo, class_index=1)
    assert cam.shape == (120, 150) and 0 <= cam.min() and cam.max() <= 1
    assert cam[0, :].max() == 0 and cam[:, 0].max() == 0  # outside the crop: never seen by the model
    i, j = hottest_square(cam)
    assert abs(i - 16) < SQUARE and abs(j - 108) < SQUARE, (i, j)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_grad_cam_works_on_every_architecture_and_leaves_the_model_untouched(arch):
    torch.manual_seed(0)
    model, _ = build_model(arch, 2, pretrained=False)
    model.eval()
    for p in model.parameters():  # a frozen body (feature-extractor mode) must not stop it
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():  # as the app calls it, next to cached inference
        cam, chosen = explain.grad_cam(model, torch.randn(1, 3, 64, 64), arch=arch)
    assert cam.shape == (64, 64) and 0 <= cam.min() and cam.max() <= 1 and chosen in (0, 1)
    layer = explain.cam_layer(model, arch)
    assert layer is explain.cam_layer(model)  # found by name as well
    assert not layer._forward_hooks and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_activations_are_read_without_hooks_from_a_view_sharing_the_models_weights():
    from ftcore.models.activations import activations

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval()
    x = torch.randn(2, 3, 64, 64)
    view = activations(model, {"flatten": "features", "fc": "logits"})
    out = view(x)
    torch.testing.assert_close(out["logits"], model(x))
    torch.testing.assert_close(model.fc(out["features"]), out["logits"])  # what the output layer receives
    assert activations(model, {"fc": "logits", "flatten": "features"}) is view  # traced once per model
    with torch.no_grad():
        model.fc.weight.mul_(2)  # the view shares the weights
    torch.testing.assert_close(view(x)["logits"], model(x))
    assert not any(m._forward_hooks for m in model.modules())


def test_overlay_keeps_the_photo_size_and_colours_hot_regions_red():
    photo = Image.new("RGB", (30, 20), (128, 128, 128))
    cam = np.zeros((20, 30))
    cam[:, 15:] = 1.0
    out = np.asarray(explain.overlay(photo, cam))
    assert out.shape == (20, 30, 3)
    assert out[0, 20, 0] > out[0, 20, 2] and out[0, 5, 2] > out[0, 5, 0]  # hot: red; cold: blue
    assert explain.heat_colors(np.array([0.0, 0.5, 1.0])).tolist() == [[0, 0, 128], [128, 255, 128], [128, 0, 0]]


# --------------------------------------------------------------------------------------------------
# Feature map


def test_pca_of_points_on_a_line_by_hand():
    # Centred rows are (-1, -2), (0, 0), (1, 2): all variance along (1, 2) / sqrt(5).
    coords, ratio = explain.pca_2d(np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
    np.testing.assert_allclose(coords[:, 0], [-math.sqrt(5), 0, math.sqrt(5)], atol=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-12)
    np.testing.assert_allclose(ratio, [1.0, 0.0], atol=1e-12)


def test_pca_agrees_with_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])
    coords, ratio = explain.pca_2d(x)
    centred = x - x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(coords), np.abs(centred @ top), atol=1e-9)
    np.testing.assert_allclose(ratio, values[::-1][:2] / values.sum(), atol=1e-9)


def test_pca_of_too_few_points_is_zeros():
    coords, ratio = explain.pca_2d(np.ones((1, 4)))
    assert coords.tolist() == [[0.0, 0.0]] and ratio.tolist() == [0.0, 0.0]


def test_evaluation_features_are_the_output_layers_input(tiny_data):
    torch.manual_seed(0)
    model, _ = build_model("resnet18", 2, pretrained=False)
    model.eval()
    evaluation = evaluate_photos(model, ["blue", "red"], EvalPreset(32), str(tiny_data), limit=3, arch="resnet18")
    test_set = open_split(tiny_data, "test", EvalPreset(32), 3)
    x = torch.stack([test_set[i][0] for i in range(len(test_set))])
    with torch.no_grad():
        body = torch.nn.Sequential(*list(model.children())[:-1])  # everything but fc
        expected = body(x).flatten(1)
    assert evaluation.features.shape == (6, 512)
    np.testing.assert_allclose(evaluation.features, expected.numpy(), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# What training changed


def test_block_names_for_resnets_and_mobilenet():
    assert [explain.block_name(n) for n in ("conv1.weight", "bn1.bias", "layer1.0.conv1.weight",
                                            "layer4.1.downsample.0.weight", "fc.weight")] == \
        ["conv1", "bn1", "layer1.0", "layer4.1", "fc"]
    assert [explain.block_name(n) for n in ("features.0.0.weight", "features.17.conv.1.0.weight",
                                            "classifier.1.bias")] == ["features.0", "features.17", "classifier.1"]
    assert explain.block_name("layer1.0.conv1.weight", "layer") == "layer1.0.conv1"


def test_weight_change_by_hand():
    before = {"layer1.0.conv1.weight": torch.tensor([3.0, 4.0]), "layer1.0.bn1.bias": torch.tensor([0.0]),
              "layer1.0.bn1.running_mean": torch.tensor([1.0]), "fc.weight": torch.tensor([1.0, 0.0])}
    after = {"layer1.0.conv1.weight": torch.tensor([3.0, 4.0]), "layer1.0.bn1.bias": torch.tensor([3.0]),
             "layer1.0.bn1.running_mean": torch.tensor([100.0]), "fc.weight": torch.tensor([1.0, 2.0])}
    changes = explain.weight_change(before, after, ["layer1.0.conv1.weight", "layer1.0.bn1.bias", "fc.weight"])
    # layer1.0: sqrt(0 + 0 + 3^2) / sqrt(3^2 + 4^2 + 0) = 3/5 (BN running statistics are not weights);
    # fc: sqrt(2^2) / sqrt(1) = 2.
    assert [(c.block, c.parameters) for c in changes] == [("layer1.0", 3), ("fc", 2)]
    assert [c.relative_change for c in changes] == pytest.approx([0.6, 2.0])


@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_initial_model_is_exactly_where_fit_started(mode, tiny_data, random_resnet18_file):
    config = recipe(mode, data=str(tiny_data), epochs=1, batch_size=8, image_size=32, seed=7,
                    weights=str(random_resnet18_file) if mode == "finetune" else None)
    stop = threading.Event()
    stop.set()  # fit returns the model it built, before any step
    started = fit(config, stop=stop)
    rebuilt = explain.initial_model(config, started.classes, started.weights.path)
    a, b = started.model.state_dict(), rebuilt.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_body_changes_only_the_output_layer(tiny_data, random_resnet18_file):
    config = recipe("finetune", data=str(tiny_data), epochs=1, batch_size=8, image_size=32, seed=3,
                    weights=str(random_resnet18_file), freeze_body=True)
    result = fit(config)
    changes = explain.model_weight_change(explain.initial_model(config, result.classes, result.weights.path),
                                          result.model)
    assert [c.block for c in changes][-1] == "fc" and changes[-1].relative_change > 0
    assert all(c.relative_change == 0 for c in changes[:-1])
