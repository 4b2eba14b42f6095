"""The book's optimiser: plain SGD with weight decay over explicit parameter groups, the new output layer at a
multiple of the copied layers' rate."""

from __future__ import annotations

import torch
from torch import nn

from ..archs import get_arch
from ..config import TrainConfig
from .groups import ParamGroup  # names kept as plain strings: a checkpoint loads with weights_only


def make_param_groups(model: nn.Module, arch: str, lr: float, head_lr_mult: float, enabled: bool,
                      freeze_body: bool = False) -> list[dict]:
    """SGD groups: the output layer at head_lr_mult * lr and everything else at lr, or one group at lr.

    With freeze_body the copied layers get requires_grad=False and only the output layer's group is
    returned (at head_lr_mult * lr when groups are enabled, else at lr)."""
    head = get_arch(arch).head + "."
    body = [p for n, p in model.named_parameters() if not n.startswith(head)]
    output = [p for n, p in model.named_parameters() if n.startswith(head)]
    if freeze_body:
        for p in body:
            p.requires_grad_(False)
        return [{"name": ParamGroup.OUTPUT.value, "params": output, "lr": lr * head_lr_mult if enabled else lr}]
    if not enabled:
        return [{"name": ParamGroup.ALL.value, "params": list(model.parameters()), "lr": lr}]
    return [{"name": ParamGroup.COPIED.value, "params": body, "lr": lr},
            {"name": ParamGroup.OUTPUT.value, "params": output, "lr": lr * head_lr_mult}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """Plain SGD (no momentum) with the book's weight decay over the parameter groups."""
    groups = make_param_groups(model, config.arch, config.lr, config.head_lr_mult, config.param_groups,
                               config.freeze_body)
    return torch.optim.SGD(groups, lr=config.lr, weight_decay=config.weight_decay)
