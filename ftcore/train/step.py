"""One optimiser step, as the book takes it: the per-example losses, their sum (or mean) backpropagated, in
micro-batches whose gradients add up to the whole batch's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..devices.precision import autocast

# The book's loss: one value per example; the objective is their sum (or, optionally, their mean).
loss_fn = nn.CrossEntropyLoss(reduction="none")


def chunk_sizes(n: int, micro_batch: int) -> list[int]:
    """Split n images into micro-batches, folding a lone last image into the one before it
    (BatchNorm cannot normalise one image whose feature maps have shrunk to 1x1)."""
    sizes = [micro_batch] * (n // micro_batch) + ([n % micro_batch] if n % micro_batch else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes


def scale_batchnorm_momentum(model: nn.Module, updates_per_step: int) -> None:
    """With k micro-batches per step BatchNorm updates its running statistics k times per step; scale its
    momentum so they still average over as many images as one update per step (0.1 -> 1 - 0.9 ** (1 / k))."""
    if updates_per_step <= 1:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.momentum = 1 - (1 - module.momentum) ** (1 / updates_per_step)


def batchnorm_layers(model: nn.Module, outside: str) -> list[nn.Module]:
    """The BatchNorm layers of `model` whose names do not start with `outside` (the output layer's)."""
    return [module for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(outside + ".")]


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor,
               reduction: str = "sum", micro_batch: int = 0, precision: str = "fp32",
               grad_scale: float = 1.0, class_weights: torch.Tensor | None = None,
               still: Sequence[nn.Module] = ()) -> tuple[float, int]:
    """One optimiser step on a batch; returns (summed loss, correct predictions).

    The batch may be split into micro-batches whose gradients add up: the gradient of the summed (or
    mean) loss over the whole batch is the same, only BatchNorm sees fewer images at a time. grad_scale
    multiplies the loss (DDP averages gradients over ranks; world_size undoes that for a summed loss).
    `class_weights` (data.balance) weight each example's loss by its class in what is backpropagated; the loss
    returned stays the plain one, so that curves of balanced and unbalanced runs compare. The modules in `still`
    stay in eval mode (frozen layers' BatchNorm keeping its statistics).
    """
    net.train()
    for module in still:
        module.eval()
    optimizer.zero_grad(set_to_none=True)
    divisor = (len(y) if reduction == "mean" else 1) / grad_scale
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    sizes = chunk_sizes(len(y), micro_batch or len(y))
    for Xc, yc in zip(X.split(sizes), y.split(sizes), strict=True):
        with autocast(y.device, precision):
            logits = net(Xc)
        losses = loss_fn(logits.float(), yc)
        objective = losses if class_weights is None else losses * class_weights[yc]
        (objective.sum() / divisor).backward()
        loss_sum += losses.detach().sum()
        correct += (logits.argmax(dim=1) == yc).sum()
    optimizer.step()
    return loss_sum.item(), int(correct.item())


def to_device(X: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an image batch to `device`, channels-last where that is faster (CPU and CUDA convolutions)."""
    fmt = torch.channels_last if device.type in ("cpu", "cuda") and X.dim() == 4 else torch.contiguous_format
    return X.to(device, memory_format=fmt, non_blocking=True)
