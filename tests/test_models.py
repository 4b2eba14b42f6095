"""Models: the output layer of every architecture, and where ImageNet weights come from (offline)."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from ftcore.archs import ARCHITECTURES, describe_output_layers, get_arch
from ftcore.errors import FtcoreError
from ftcore.models.build import build_model
from ftcore.models.imagenet import imagenet_categories, imagenet_row
from ftcore.models.output_layer import output_layer, replace_output_layer
from ftcore.models.weights import hub_dir_from_environment, torch_cache_path, torch_hub_dir, weights_status


@pytest.fixture(scope="module")
def built():
    """One randomly initialised instance of each architecture (they take a moment to build)."""
    torch.manual_seed(0)
    return {name: spec.build(weights=None) for name, spec in ARCHITECTURES.items()}


def test_at_least_the_four_required_architectures():
    assert {"resnet18", "resnet34", "resnet50", "mobilenet_v2"} <= set(ARCHITECTURES)


def test_the_registrys_weights_categories_and_photo_extensions_are_torchvisions_own():
    import torchvision
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from ftcore.data.folders import IMAGE_EXTENSIONS

    enums = {"resnet18": torchvision.models.ResNet18_Weights, "resnet34": torchvision.models.ResNet34_Weights,
             "resnet50": torchvision.models.ResNet50_Weights, "mobilenet_v2": torchvision.models.MobileNet_V2_Weights}
    for name, spec in ARCHITECTURES.items():
        assert spec.weights_url == enums[name].IMAGENET1K_V1.url, name
        assert spec.builder == name and name in torchvision.models.list_models(module=torchvision.models)
        assert spec.parameters == enums[name].IMAGENET1K_V1.meta["num_params"], name
        assert imagenet_categories() == enums[name].IMAGENET1K_V1.meta["categories"], name
    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS
    assert imagenet_row("Hot-Dog") == 934


def modules_imported_at_the_top(path: Path) -> list[str]:
    """The modules a page or the app imports before its first line runs."""
    tree = ast.parse(path.read_text())
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    root = Path(__file__).parent.parent
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:  # `from ftcore.insight import charts` imports the module ftcore.insight.charts
                module = f"{node.module}.{alias.name}"
                names.append(module if (root / f"{module.replace('.', '/')}.py").is_file() else node.module)
    return names


def test_the_app_and_the_train_and_explorer_pages_import_without_torch():
    # a cold server draws their controls before torch has loaded (seconds); what needs torch comes after
    root = Path(__file__).parent.parent
    modules = sorted({name for page in ("streamlit_app.py", "app_pages/train.py", "app_pages/explore.py")
                      for name in modules_imported_at_the_top(root / page)})
    assert {"app.jobs", "app.tab", "app.steering", "app.finder_view", "app.lesson_view", "app.builder_view",
            "ftcore.config", "ftcore.archs", "ftcore.insight.charts"} <= set(modules)
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("env", ["TORCH_HOME", "XDG_CACHE_HOME", None])
def test_the_hub_folder_from_the_environment_is_torchs_own(env, tmp_path, monkeypatch):
    # before torch loads, archs finds torchvision's weights cache by torch's rule, read from the environment
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    if env:
        monkeypatch.setenv(env, str(tmp_path / env))
    assert hub_dir_from_environment() == Path(torch.hub.get_dir()) == torch_hub_dir()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_source_output_layer_is_imagenets(built, arch):
    layer = output_layer(built[arch], arch)
    assert isinstance(layer, nn.Linear) and layer.out_features == 1000
    assert layer.in_features == get_arch(arch).feature_dim


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_new_output_layer_is_a_fresh_xavier_linear(built, arch):
    net = built[arch]
    old = output_layer(net, arch)
    torch.manual_seed(1)
    new = replace_output_layer(net, arch, num_classes=3)
    d = get_arch(arch).feature_dim
    assert output_layer(net, arch) is new and new is not old
    assert (new.in_features, new.out_features) == (d, 3)
    # xavier_uniform_: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so std = a / sqrt(3).
    bound = math.sqrt(6 / (d + 3))
    w = new.weight.detach()
    assert w.abs().max() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    replace_output_layer(net, arch, 1000)  # leave the shared instance as it was


def test_book_output_layers_as_printed():
    assert describe_output_layers("resnet18", 2) == (
        "Linear(in_features=512, out_features=1000, bias=True)",
        "Linear(in_features=512, out_features=2, bias=True)")
    assert repr(nn.Linear(512, 1000)) == describe_output_layers("resnet18", 2)[0]


def test_an_unknown_architecture_names_the_closest_known_ones():
    with pytest.raises(FtcoreError, match="unknown architecture 'resnet181'.*did you mean resnet18"):
        get_arch("resnet181")
    with pytest.raises(FtcoreError, match="choose one of resnet18, resnet34, resnet50, mobilenet_v2"):
        get_arch("a hot dog")


def test_scratch_model_keeps_linear_default_init_like_the_book():
    torch.manual_seed(0)
    net, source = build_model("resnet18", 2, pretrained=False)
    assert source.kind == "random"
    # nn.Linear's default weight init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), narrower than Xavier here.
    assert net.fc.weight.abs().max() <= 1 / math.sqrt(512)


# --------------------------------------------------------------------------------------------------
# Weight resolution: explicit file, $FTCORE_WEIGHTS, torchvision's cache ($TORCH_HOME), shared, download.


@pytest.fixture
def no_download(monkeypatch):
    """torchvision's download, as it fails on an offline machine."""
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return calls


def test_torch_cache_path_follows_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch_cache_path("resnet18") == tmp_path / "th" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"


def test_weights_in_torchvisions_cache_are_used(random_resnet18_file, no_download):
    cached = torch_cache_path("resnet18")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_resnet18_file.read_bytes())
    net, source = build_model("resnet18", 2, pretrained=True)
    expected = torch.load(random_resnet18_file, weights_only=True)
    assert source.kind == "torch cache" and source.path == str(cached) and no_download == []
    assert torch.equal(net.conv1.weight, expected["conv1.weight"])
    assert torch.equal(net.layer4[1].bn2.running_var, expected["layer4.1.bn2.running_var"])
    assert net.fc.out_features == 2


def test_explicit_file_wins_over_env_and_cache(random_resnet18_file, tmp_path, monkeypatch, no_download):
    torch.manual_seed(7)
    other = tmp_path / "other.pth"
    torch.save(get_arch("resnet18").build(weights=None).state_dict(), other)
    monkeypatch.setenv("FTCORE_WEIGHTS", str(other))
    net, source = build_model("resnet18", 2, pretrained=True, weights_file=str(random_resnet18_file))
    assert source.kind == "file" and source.path == str(random_resnet18_file)
    net_env, source_env = build_model("resnet18", 2, pretrained=True)
    assert source_env.path == str(other)
    assert not torch.equal(net.conv1.weight, net_env.conv1.weight)


def test_offline_without_weights_is_one_clear_error_never_random(no_download):
    with pytest.raises(FtcoreError) as info:
        build_model("resnet18", 2, pretrained=True)
    message = str(info.value)
    assert "could not download ImageNet weights for resnet18" in message
    assert f"put resnet18-f37072fd.pth in {torch_cache_path('resnet18').parent}/" in message
    assert "\n" not in message and no_download == [get_arch("resnet18").weights_url]


def test_a_download_lands_in_torchvisions_cache(monkeypatch, random_resnet18_file):
    def fake_download(url, dst, hash_prefix=None, progress=True):
        assert url.endswith("resnet18-f37072fd.pth") and hash_prefix == "f37072fd"
        with open(dst, "wb") as f:
            f.write(random_resnet18_file.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    _, source = build_model("resnet18", 2, pretrained=True)
    assert source.kind == "download" and torch_cache_path("resnet18").is_file()
    _, again = build_model("resnet18", 2, pretrained=True)
    assert again.kind == "torch cache"


def test_weights_for_another_architecture_are_refused(random_resnet18_file):
    with pytest.raises(FtcoreError, match="does not fit mobilenet_v2"):
        build_model("mobilenet_v2", 2, pretrained=True, weights_file=str(random_resnet18_file))


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04broken"])
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path, content):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    with pytest.raises(FtcoreError, match="is not a PyTorch state dict"):
        build_model("resnet18", 2, pretrained=True, weights_file=str(bad))


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(FtcoreError, match="does not exist"):
        build_model("resnet18", 2, pretrained=True, weights_file=str(tmp_path / "nope.pth"))


def test_state_dict_saved_from_dataparallel_loads(tmp_path, random_resnet18_file):
    state = torch.load(random_resnet18_file, weights_only=True)
    wrapped = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, wrapped)
    net, _ = build_model("resnet18", 2, pretrained=True, weights_file=str(wrapped))
    assert torch.equal(net.conv1.weight, state["conv1.weight"])


def test_shared_mobilenet_weights_load_without_their_output_layer(shared_mobilenet, no_download):
    net, source = build_model("mobilenet_v2", 2, pretrained=True)
    state = torch.load(shared_mobilenet, weights_only=True)
    assert source.kind == "shared" and source.path == str(shared_mobilenet)
    assert "classifier.1.weight" not in state
    assert torch.equal(net.features[0][0].weight, state["features.0.0.weight"])
    assert net.classifier[1].out_features == 2 and weights_status("mobilenet_v2")[0] == "found"


def test_weights_status_says_downloadable_when_nothing_is_on_disk():
    state, sentence = weights_status("resnet50")
    assert state == "downloadable" and "resnet50-0676ba61.pth" in sentence
