"""Any torchvision classification network by name: the catalog against torchvision itself, heads swapped and
grouped, preprocessing from the weights, sizes refused with a sentence, a tiny scratch run, and the memory rule
against the four networks measured."""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import models

from ftcore.archs import ARCHITECTURES, CATALOG_FILE, arch_names, catalog, describe_output_layers, get_arch
from ftcore.config import recipe
from ftcore.data.dataset import load_rgb
from ftcore.data.transforms import eval_preset
from ftcore.errors import FtcoreError
from ftcore.insight import explain
from ftcore.insight.evaluation import evaluate_photos
from ftcore.models.build import build_model
from ftcore.models.checkpoint import load_checkpoint, save_checkpoint
from ftcore.models.output_layer import output_layer
from ftcore.train.groups import ParamGroup
from ftcore.train.loop import fit
from ftcore.train.memory import MEASURED, RULE, measured_figures
from ftcore.train.optim import make_param_groups

# The four, a network whose output layer is a convolution, and one whose weights carry an aux classifier.
SAMPLE = ["efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "vit_b_16", "squeezenet1_0", "inception_v3"]


def test_the_catalog_names_every_classification_network_torchvision_lists():
    assert list(catalog()) == models.list_models(module=models)
    assert json.loads(CATALOG_FILE.read_text())["torchvision"] == torchvision.__version__.split("+")[0]
    assert set(arch_names()) == set(catalog())
    assert arch_names()[:4] == list(ARCHITECTURES)


@pytest.mark.parametrize("name", SAMPLE)
def test_catalog_facts_are_torchvisions(name):
    """The output layer is the model's last with 1000 outputs, and the weights and preprocessing are the default
    weights' own."""
    entry, spec = catalog()[name], get_arch(name)
    net = spec.build()
    head = net.get_submodule(spec.head)
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 1000
    assert spec.feature_dim == (head.in_features if isinstance(head, nn.Linear) else head.in_channels)
    weights = models.get_model_weights(name).DEFAULT
    assert spec.weights_url == weights.url and spec.parameters == weights.meta["num_params"]
    transforms = weights.transforms()
    assert (entry["crop_size"], entry["resize_size"]) == (transforms.crop_size[0], transforms.resize_size[0])
    assert spec.interpolation == transforms.interpolation.value
    assert (spec.mean, spec.std) == (tuple(transforms.mean), tuple(transforms.std))
    if spec.cam_layer is not None:
        net.get_submodule(spec.cam_layer)  # a block the model has


def test_the_built_in_four_keep_the_books_preprocessing_and_v1_weights():
    for spec in ARCHITECTURES.values():
        assert (spec.resize, spec.interpolation, spec.measured) == ("square", "bilinear", True)
        assert spec.weights_url == models.get_model_weights(spec.name).IMAGENET1K_V1.url
    assert get_arch("efficientnet_b0").lr_source.endswith("(not checked for efficientnet_b0)")
    assert not get_arch("efficientnet_b0").measured


@pytest.mark.parametrize("name", SAMPLE)
def test_a_catalog_networks_head_is_swapped_xavier_and_in_the_10x_group(name):
    torch.manual_seed(0)
    spec = get_arch(name)
    net, source = build_model(name, 3, pretrained=False)
    assert source.kind == "random"
    layer = output_layer(net, name)
    assert (layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels) == 3
    assert isinstance(layer, nn.Linear if spec.head_kind == "linear" else nn.Conv2d)
    groups = {g["name"]: g for g in make_param_groups(net, name, 1e-3, 10.0, enabled=True)}
    assert groups[ParamGroup.OUTPUT.value]["params"] == list(layer.parameters())
    assert groups[ParamGroup.OUTPUT.value]["lr"] == pytest.approx(1e-2)
    assert len(groups[ParamGroup.COPIED.value]["params"]) == len(list(net.parameters())) - 2
    size = spec.fixed_size or max(spec.min_size, 64)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, size, size)).shape == (2, 3)


def test_a_fine_tuned_catalog_networks_head_is_xavier_initialised(tmp_path):
    """Xavier-uniform: bounded by sqrt(6 / (fan_in + fan_out)) and spread across it, unlike Linear's default."""
    torch.manual_seed(0)
    weights = models.get_model("efficientnet_b0").state_dict()
    path = tmp_path / "effnet.pth"
    torch.save(weights, path)
    net, source = build_model("efficientnet_b0", 2, pretrained=True, weights_file=str(path), download=False)
    assert source.kind == "file"
    bound = (6 / (1280 + 2)) ** 0.5
    layer = output_layer(net, "efficientnet_b0")
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    copied = {k: v for k, v in net.state_dict().items() if not k.startswith("classifier.1")}
    assert all(torch.equal(v, weights[k]) for k, v in copied.items())


def test_imagenet_weights_with_an_aux_classifier_load_without_it(tmp_path):
    """inception_v3's ImageNet file holds its aux classifier; the lab's model leaves it out and loads the rest."""
    torch.manual_seed(0)
    path = tmp_path / "inception.pth"
    full = models.get_model("inception_v3", weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save(full, path)
    net, _ = build_model("inception_v3", 2, pretrained=True, weights_file=str(path), download=False)
    assert not any(k.startswith("AuxLogits.") for k in net.state_dict())
    assert torch.equal(net.state_dict()["Mixed_7c.branch_pool.conv.weight"], full["Mixed_7c.branch_pool.conv.weight"])
    with torch.no_grad():
        assert net.train()(torch.randn(2, 3, 80, 80)).shape == (2, 2)  # plain logits while training, no aux


def test_a_catalog_networks_test_photos_are_prepared_as_its_weights_say():
    """efficientnet_b0's weights resize the shorter side to 256 with bicubic interpolation: the run's test
    transform gives what torchvision's own preprocessing gives."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 420, 3), dtype=np.uint8))
    ours = eval_preset("efficientnet_b0", 224)(photo)
    theirs = models.get_model_weights("efficientnet_b0").DEFAULT.transforms()(photo)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert (ours - theirs).abs().max() < 0.02  # PIL's resize against its tensor path: rounding only
    book = eval_preset("resnet18", 160)
    assert (book.resize_size, book.resize, book.interpolation) == (183, "square", "bilinear")


def test_sizes_a_network_cannot_take_are_refused_with_a_sentence():
    with pytest.raises(FtcoreError, match=r"^vit_b_16 takes 224 x 224 photos only \(got 160\); set the image size"):
        recipe("finetune", "vit_b_16", data="photos", image_size=160).validate()
    recipe("finetune", "vit_b_16", data="photos", image_size=224).validate()
    with pytest.raises(FtcoreError, match="inception_v3 needs photos of at least 75 px"):
        recipe("scratch", "inception_v3", data="photos", image_size=64).validate()
    with pytest.raises(FtcoreError, match="squeezenet1_0's output layer is a convolution"):
        recipe("finetune", "squeezenet1_0", "quick", data="photos").validate()
    assert describe_output_layers("squeezenet1_0", 2)[1] == repr(nn.Conv2d(512, 2, kernel_size=1))


def test_a_network_whose_output_layer_is_a_convolution_is_evaluated_and_explained_on_its_logits(tiny_data):
    """SqueezeNet pools after its output layer: evaluation and Grad-CAM read the pooled logits, not its map."""
    torch.manual_seed(0)
    net, _ = build_model("squeezenet1_0", 2, pretrained=False)
    transform = eval_preset("squeezenet1_0", 64)
    ev = evaluate_photos(net.eval(), ["blue", "red"], transform, str(tiny_data), arch="squeezenet1_0")
    assert ev.probabilities.shape == (16, 2) and ev.confusion.sum() == 16
    with torch.no_grad():
        direct = torch.softmax(net(torch.stack([transform(load_rgb(p)) for p in ev.paths[:4]])), 1)
    np.testing.assert_allclose(ev.probabilities[:4], direct.numpy(), atol=1e-5)
    cam, index = explain.grad_cam_photo(net, transform, load_rgb(ev.paths[0]), arch="squeezenet1_0")
    assert cam.shape[::-1] == Image.open(ev.paths[0]).size and index in (0, 1)


def test_googlenet_and_inception_are_built_as_torchvision_builds_them_for_their_weights():
    """With ImageNet weights torchvision turns their input transform on (their weights expect it) and their aux
    classifiers off; so does the lab."""
    for name in ("googlenet", "inception_v3"):
        kwargs = dict(get_arch(name).build_kwargs)
        assert kwargs["transform_input"] is True and kwargs["aux_logits"] is False
        assert get_arch(name).build().transform_input


def test_grad_cam_says_a_vision_transformer_has_no_feature_map():
    net = get_arch("vit_b_16").build()
    with pytest.raises(FtcoreError, match="vit_b_16 has no convolutional feature map"):
        explain.cam_layer(net, "vit_b_16")
    assert explain.cam_layer(get_arch("efficientnet_b0").build(), "efficientnet_b0") is not None


def test_a_tiny_scratch_run_of_a_catalog_network_trains_and_reloads(tiny_data, tmp_path):
    config = recipe("scratch", "regnet_y_400mf", data=str(tiny_data), epochs=2, image_size=32, batch_size=8,
                    lr=0.05, seed=0)
    before = get_arch("regnet_y_400mf")
    trained = fit(config)
    assert len(trained.history.epochs) == 2 and trained.history.final().train_loss > 0
    # the weights' own preprocessing: RegNet's V2 weights resize the shorter side to 232 for their 224 crop
    assert before.resize_ratio == 232 / 224 and before.resize == "shorter"
    assert (trained.eval_transform.resize, trained.eval_transform.resize_size) == ("shorter", 33)
    path = save_checkpoint(trained, tmp_path / "checkpoint.pt")
    again = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(trained.model.eval()(x), again.model.eval()(x), atol=1e-5)


def test_the_memory_rule_is_an_upper_bound_of_every_measured_network():
    """The rule's figures for the four measured networks stay at or above what was measured (its factors are the
    measured ratios' upper bounds), and a network not measured gets the rule's."""
    for arch, measured in MEASURED.items():
        spec = get_arch(arch)
        values = 4 * spec.values_per_photo * (224 / spec.values_at) ** 2
        assert RULE["fp32_per_value"] * values >= measured["fp32_photo"], arch
        assert RULE["bf16_per_value"] * values >= measured["bf16_photo"], arch
        assert RULE["inference_per_value"] * values >= measured["inference_photo"], arch
        assert 1024**3 + RULE["base_per_param"] * spec.parameters >= measured["base"], arch
        assert 1024**3 + RULE["inference_base_per_param"] * spec.parameters >= measured["inference_base"], arch
    rule = measured_figures("efficientnet_b0")
    assert rule["fp32_photo"] == round(4 * get_arch("efficientnet_b0").values_per_photo)
