"""Explanations: Grad-CAM heatmaps, the penultimate-layer feature map, and what fine-tuning changed in the weights.

Everything reads a trained model through torch.fx views of it and never changes it: the models the app shares
between sessions stay as they are (no hooks, no `.grad` written on their parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..config import TrainConfig
from ..data.transforms import EvalPreset
from ..errors import FtcoreError
from ..models.activations import activations, spec_for
from ..models.build import build_model


def cam_block(model: nn.Module, arch: str | None) -> str:
    """The dotted name of the block Grad-CAM weighs (archs.ArchSpec.cam_layer), or a sentence saying the network
    has none (a vision transformer's tokens are no feature map)."""
    spec = spec_for(model, arch)
    if spec.cam_layer is None:
        raise FtcoreError(f"{spec.name} has no convolutional feature map, so Grad-CAM cannot show where it looked; "
                          "the predictions themselves are unaffected")
    return spec.cam_layer


def cam_layer(model: nn.Module, arch: str | None = None) -> nn.Module:
    """The last convolutional block (archs.ArchSpec.cam_layer); found by layer names without `arch`."""
    return model.get_submodule(cam_block(model, arch))


# --------------------------------------------------------------------------------------------------
# Grad-CAM (Selvaraju et al. 2017): weigh each feature map of the last conv block by the mean gradient of the
# class score with respect to it, keep the positive part of the sum, and scale it to [0, 1].


def grad_cam(model: nn.Module, batch: torch.Tensor, class_index: int | None = None,
             arch: str | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM of one preprocessed image (1 x 3 x H x W): an H x W map in [0, 1] and the class it explains
    (the predicted one unless `class_index` is given)."""
    device = next(model.parameters()).device
    spec = spec_for(model, arch)
    view = activations(model, {cam_block(model, arch): "maps", spec.logits_node: "logits"})
    with torch.inference_mode(False), torch.enable_grad():
        # A private leaf that requires grad (cloned outside inference mode, so autograd may use it): the
        # activations then carry a graph even when the copied layers are frozen.
        x = batch.detach().clone().to(device).requires_grad_(True)
        out = view(x)
        activation, logits = out["maps"], out["logits"]
        if class_index is None:
            class_index = int(logits[0].argmax())
        # autograd.grad, not backward(): no .grad is written on the (possibly shared) model's parameters.
        (gradient,) = torch.autograd.grad(logits[0, class_index].float(), activation)
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach().float()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    cam = cam / top if top > 0 else torch.zeros_like(cam)
    return cam.clamp(0, 1).cpu().numpy(), class_index


def grad_cam_photo(model: nn.Module, transform: EvalPreset, image: Image.Image, class_index: int | None = None,
                   arch: str | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM of a photo, mapped back onto the photo: a (height x width) map in [0, 1] of the photo's size.

    The test transform resizes the photo (the book's squashes it to a square) and keeps the centre crop; the map is
    put back where that crop was (0 outside it: the model never saw those pixels) and stretched to the photo's size.
    """
    cam, class_index = grad_cam(model, transform(image).unsqueeze(0), class_index, arch)
    width, height = image.size
    resized_w, resized_h = transform.resized_size(width, height)
    crop = transform.image_size
    top, left = int(round((resized_h - crop) / 2.0)), int(round((resized_w - crop) / 2.0))  # as CenterCrop does
    canvas = torch.zeros(1, 1, resized_h, resized_w)
    canvas[0, 0, top:top + crop, left:left + crop] = torch.from_numpy(cam)
    full = F.interpolate(canvas, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return full.clamp(0, 1).numpy(), class_index


def heat_colors(values: np.ndarray) -> np.ndarray:
    """The 'jet' colour map: 0 is dark blue, 0.5 green, 1 dark red; an H x W x 3 uint8 array."""
    v = np.clip(values, 0, 1)[..., None]
    channels = np.clip(1.5 - np.abs(4 * v - np.array([3.0, 2.0, 1.0])), 0, 1)
    return (channels * 255).round().astype(np.uint8)


def overlay(image: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The photo with its heatmap laid over it (`cam` of the photo's size, values in [0, 1])."""
    photo = np.asarray(image.convert("RGB"), dtype=np.float32)
    blended = (1 - alpha) * photo + alpha * heat_colors(cam).astype(np.float32)
    return Image.fromarray(blended.clip(0, 255).round().astype(np.uint8))


# --------------------------------------------------------------------------------------------------
# The feature map: penultimate-layer features (what the output layer reads), projected to 2-D.


@torch.inference_mode()
def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components: (N x 2 coordinates, share of variance each).

    Each component's sign is fixed so that its largest loading is positive (SVD signs are arbitrary)."""
    x = np.asarray(features, dtype=np.float64)
    coords, ratio = np.zeros((len(x), 2)), np.zeros(2)
    if len(x) < 2 or x.ndim != 2 or x.shape[1] == 0:
        return coords, ratio
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(singular))
    components = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]
    coords[:, :k] = centred @ components.T
    total = float((singular**2).sum())
    if total > 0:
        ratio[:k] = singular[:k] ** 2 / total
    return coords, ratio


# --------------------------------------------------------------------------------------------------
# What training changed: each block's relative distance from where it started.


def initial_model(config: TrainConfig, classes: list[str], weights_file: str | None = None) -> nn.Module:
    """The model a run started from, rebuilt: the same ImageNet weights file (fine-tune) and, as `fit` draws
    them right after torch.manual_seed(config.seed), the same random output layer (or all random weights).

    Exact when nothing else draws from PyTorch's global generator meanwhile (docs/architecture.md, Known limits)."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream where it was
        torch.manual_seed(config.seed)
        model, _ = build_model(config.arch, len(classes), pretrained=config.mode == "finetune",
                               weights_file=weights_file or config.weights, download=False,
                               head_init=config.head_init, classes=list(classes))
    return model.eval()


def block_name(parameter: str, level: str = "block") -> str:
    """Group a parameter name: by block (`layer1.0`, `features.3`, `fc`, `conv1`) or by layer (`layer1.0.conv1`)."""
    module = parameter.rpartition(".")[0] or parameter
    if level == "layer":
        return module
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1].isdigit() else parts[0]


@dataclass
class BlockChange:
    """How far one block's weights moved: ||W_after - W_before|| / ||W_before|| over its parameters."""

    block: str
    relative_change: float
    parameters: int  # number of weights in the block


def weight_change(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                  parameter_names: Iterable[str], level: str = "block") -> list[BlockChange]:
    """Relative change per block (or layer) in model order, over learnable parameters only (not BN statistics)."""
    sums: dict[str, list[float]] = {}
    for name in parameter_names:
        old, new = before[name].detach().double().cpu(), after[name].detach().double().cpu()
        entry = sums.setdefault(block_name(name, level), [0.0, 0.0, 0])
        entry[0] += float(((new - old) ** 2).sum())
        entry[1] += float((old**2).sum())
        entry[2] += old.numel()
    return [BlockChange(block, math.sqrt(diff) / math.sqrt(base) if base > 0 else math.inf, int(count))
            for block, (diff, base, count) in sums.items()]


def model_weight_change(before: nn.Module, after: nn.Module, level: str = "block") -> list[BlockChange]:
    """weight_change between two models of the same architecture."""
    names = [name for name, _ in after.named_parameters()]
    return weight_change(before.state_dict(), after.state_dict(), names, level)
