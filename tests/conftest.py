"""Shared fixtures: an isolated cache, a tiny generated ImageFolder, and the shared data when present."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ftcore.models.trained import TrainedModel

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_HOTDOG = SHARED / "data" / "hotdog"
SHARED_MOBILENET = SHARED / "weights" / "mobilenet_v2_imagenet_features.pth"

# Tiny data: red-ish photos are "red", blue-ish are "blue"; sizes vary like real photos.
TINY_CLASSES = ("blue", "red")
TINY_COUNTS = {"train": 16, "test": 8}


def make_photo(label: str, index: int, rng: np.random.Generator) -> Image.Image:
    """A noisy photo whose dominant colour gives its class; width and height differ per index."""
    width, height = 40 + 4 * (index % 5), 36 + 6 * (index % 3)
    pixels = rng.integers(0, 90, size=(height, width, 3))
    pixels[..., 0 if label == "red" else 2] += 150
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_tiny_imagefolder(root: Path, counts: dict[str, int] = TINY_COUNTS, seed: int = 0) -> Path:
    """root/{train,test}/{blue,red}/NNN.png, deterministic."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for label in TINY_CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                make_photo(label, i, rng).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def warm_fork_server():
    """Start the fork server that run processes are forked from (runs.child) at the session's start, as a server's
    first run does."""
    from ftcore.runs import child

    child.warm()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    """Every test gets its own cache and torch hub folder, and no user-level overrides."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("FTCORE_CACHE", str(base / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.delenv("FTCORE_WEIGHTS", raising=False)
    monkeypatch.delenv("FTCORE_DATA", raising=False)
    yield


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small two-class ImageFolder tree (16 + 16 train, 8 + 8 test PNGs), shared read-only by tests."""
    return write_tiny_imagefolder(tmp_path_factory.mktemp("tiny") / "colours")


@pytest.fixture(scope="session")
def random_resnet18_file(tmp_path_factory) -> Path:
    """A state dict of a randomly initialised torchvision resnet18 (stands in for ImageNet weights offline)."""
    import torchvision

    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture
def shared_hotdog() -> Path:
    """The shared hot-dog photos; skipped only where ../shared is absent (CI always has it)."""
    if not SHARED_HOTDOG.is_dir():
        pytest.skip("../shared/data/hotdog is not on this machine")
    return SHARED_HOTDOG


@pytest.fixture
def shared_mobilenet() -> Path:
    """The shared ImageNet weights of mobilenet_v2; skipped only where ../shared is absent."""
    if not SHARED_MOBILENET.is_file():
        pytest.skip("../shared/weights/mobilenet_v2_imagenet_features.pth is not on this machine")
    return SHARED_MOBILENET


def open_app(page: str, **state):
    """An AppTest of the whole app on `page`, with `state` put in session state first; fails on any exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def after_photo_check(at, timeout: float = 120):
    """Rerun the explorer until its background photo check has ended (its aspect-ratio metric is no longer
    "checking..."), as the page's polling does; returns `at`."""
    import time

    deadline = time.monotonic() + timeout
    while any(m.value == "checking..." for m in at.metric):
        assert time.monotonic() < deadline, "the photo check did not end"
        time.sleep(0.2)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """`image` saved in format `fmt`, as bytes."""
    import io

    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def trained_model(model: torch.nn.Module, classes: list[str], image_size: int = 32) -> TrainedModel:
    """`model` as a TrainedModel for `classes` (an untrained scratch recipe, no history), to test what takes one."""
    from ftcore.config import recipe
    from ftcore.data.transforms import EvalPreset
    from ftcore.models.weights import WeightsSource
    from ftcore.records import History

    config = recipe("scratch", data="colours", image_size=image_size)
    return TrainedModel(model.eval(), config, list(classes), History(), WeightsSource("random"), EvalPreset(image_size))


def start_cli_training(data: Path, out: Path, epochs: int) -> subprocess.Popen:
    """`python -m ftcore train` of a small scratch run (ResNet-18, 32 px, batch 8, fp32) writing to `out`, as a
    process of its own with its output piped."""
    args = [sys.executable, "-m", "ftcore", "train", "--data", str(data), "--mode", "scratch", "--epochs", str(epochs),
            "--batch-size", "8", "--image-size", "32", "--precision", "fp32", "--out", str(out)]
    return subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def set_small_scratch_run(at, epochs: int) -> None:
    """Set the Train page (an AppTest) to a small scratch run: ResNet-18 at random, batch 8, 64 px, `epochs`."""
    at.radio(key="mode").set_value("scratch").run()
    at.select_slider(key="batch").set_value(8).run()
    at.select_slider(key="size").set_value(64).run()
    at.number_input(key="epochs").set_value(epochs).run()


def wait_until(condition, what: str, timeout: float = 10) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


RAY_NODES = 2


@pytest.fixture(scope="module")
def ray_nodes():
    """Two Ray nodes on this machine, on loopback, 2 CPUs each: `ray start --head`, then `ray start --address`.
    One cluster for the module of cluster tests, stopped by its own process ids when that module ends: idle, its
    daemons would still take CPU time from every test after it."""
    pytest.importorskip("ray", reason='the cluster tests need Ray: pip install ".[cluster]"')
    from benchmarks.harness.ray_cluster import LocalRayCluster

    cluster = LocalRayCluster(cpus=2)
    try:
        cluster.start()
        cluster.add_node()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ray_cluster(ray_nodes):
    """The module's Ray cluster with both its nodes alive: a node an earlier test killed is replaced here, only
    when a later test needs the cluster."""
    if ray_nodes.alive_nodes() < RAY_NODES:
        ray_nodes.add_node()
    return ray_nodes


def contract_breaches(protocol: type, implementation: type, made: object | None = None,
                      options: tuple[str, ...] = ()) -> list[str]:
    """Where `implementation` does not keep `protocol`: each method of the contract missing, or taking other
    parameters (names, kinds, defaults) than the contract declares; each attribute the contract names missing on
    `made`, an instance. Parameters named in `options` (an implementation's extras) are left out."""
    def shape(function) -> list[tuple]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
                if p.name not in options]

    breaches = []
    methods = {name: member for name, member in vars(protocol).items()
               if inspect.isfunction(member) and not name.startswith("_")}
    for name, declared in methods.items():
        if not hasattr(implementation, name):
            breaches.append(f"{implementation.__name__}.{name} is missing")
        elif shape(getattr(implementation, name)) != shape(declared):
            breaches.append(f"{implementation.__name__}.{name}")
    for field in set(typing.get_type_hints(protocol)) - set(methods):
        if made is None or not hasattr(made, field):
            breaches.append(f"{implementation.__name__}.{field} is missing")
    return sorted(breaches, key=lambda b: "is missing" in b)
