"""The run plan: what `fit` resolves once from the config before training (where the run trains, in which
arithmetic, in how many photos per forward pass), as one frozen record every part of the loop reads instead of
resolving it again."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..data.balance import class_weights
from ..devices import distributed
from ..devices.placement import resolve_devices
from ..devices.precision import resolve_precision, training_precision
from ..errors import FtcoreError
from . import memory
from .steering import SteeringSource


@dataclass(frozen=True)
class RunPlan:
    """A run's settings and what was resolved from them once: its devices, its place among torchrun's processes,
    its arithmetic and its photos per forward pass."""

    config: TrainConfig  # the run's settings
    device: torch.device  # where this process trains
    devices: tuple[torch.device, ...] = ()  # every device the run spans (several GPUs: nn.DataParallel); () = device
    ctx: distributed.DistContext = distributed.SINGLE  # this process's place among torchrun's
    precision: str = "fp32"  # every layer's forward and backward ("auto" resolved)
    feature_precision: str = "fp32"  # the frozen copied layers' cached features ("auto" resolved)
    micro_batch: int = 0  # photos per forward/backward within a step (0: the whole batch)
    steering: SteeringSource | None = None  # where changes of the learning rates come from while it trains
    class_weights: torch.Tensor | None = None  # each class's loss weight, where the run balances by loss

    def __post_init__(self) -> None:
        if not self.devices:
            object.__setattr__(self, "devices", (self.device,))

    @property
    def grad_scale(self) -> float:
        """What each step's loss is multiplied by: DDP averages gradients over the ranks, which the world size
        undoes for the book's summed loss."""
        return self.ctx.world_size if self.config.loss_reduction == "sum" else 1.0

    @property
    def updates_per_step(self) -> int:
        """Forward/backward passes per optimiser step on this process: BatchNorm updates its statistics this often."""
        return math.ceil(self.config.batch_size / self.ctx.world_size / (self.micro_batch or self.config.batch_size))


def with_balance(plan: RunPlan, train_counts: list[int]) -> RunPlan:
    """The plan with the class weights of a run that balances its classes by loss (data.balance), on its device;
    the plan as it is for every other run."""
    if plan.config.balance != "loss":
        return plan
    return dataclasses.replace(plan, class_weights=class_weights(train_counts).to(plan.device))


def plan_run(config: TrainConfig, steering: SteeringSource | None = None) -> RunPlan:
    """Resolve `config` once: under torchrun one device per process (DistributedDataParallel), else the config's
    devices (several CUDA GPUs: the book's nn.DataParallel); then the arithmetic and the photos per forward pass.
    `steering`, where given, is asked for changes of the rates before every batch."""
    if distributed.launched_by_torchrun():
        ctx, device = distributed.setup(config.device)
        if config.batch_size % ctx.world_size:
            raise FtcoreError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} "
                              "processes; pick a multiple of the process count")
        devices = tuple(torch.device(device.type, r) if device.type == "cuda" else device
                        for r in range(ctx.world_size))
    else:
        ctx, devices = distributed.SINGLE, tuple(resolve_devices(config.device))
        device = devices[0]
    feature_precision = resolve_precision(config.precision, device)
    precision = training_precision(config, device)
    return RunPlan(config=config, device=device, devices=devices, ctx=ctx, precision=precision,
                   feature_precision=feature_precision, micro_batch=micro_batch_size(config, device, precision),
                   steering=steering)


def micro_batch_size(config: TrainConfig, device: torch.device, precision: str) -> int:
    """Images per forward/backward: the config's; else the whole batch, the book's BatchNorm, wherever it fits,
    and on a CPU whose memory cannot hold the whole batch's activations the largest micro-batch that fits
    (memory.fitting_micro_batch; `batchnorm_note` says so). A run without full epochs (the output layer alone on
    cached features) takes whole batches."""
    if not config.epochs or device.type != "cpu" and not config.micro_batch:
        return config.batch_size
    return memory.cpu_micro_batch(config, precision)


def batchnorm_note(config: TrainConfig, micro: int) -> str:
    """One sentence when BatchNorm sees fewer photos than the book's whole batch, and why; else ""."""
    if micro >= config.batch_size:
        return ""
    if config.micro_batch:
        return (f"BatchNorm over {micro} of the batch's {config.batch_size} photos: micro-batches of {micro} were "
                "asked for (the book normalises over the whole batch)")
    whole = memory.estimate_from_counts(dataclasses.replace(config, micro_batch=config.batch_size),
                                        memory.readable_counts(config))
    total, gb = memory.total_bytes(), memory.GB
    return (f"BatchNorm over {micro} of the batch's {config.batch_size} photos: the whole batch needs about "
            f"{whole / gb:.1f} GB, more than the {memory.FITS_SHARE * total / gb:.1f} GB a run may take of this "
            f"machine's {total / gb:.1f} GB")


def wrap_model(model: nn.Module, plan: RunPlan) -> nn.Module:
    """The network the training steps call: DDP under torchrun, DataParallel over several GPUs, else the model."""
    if plan.ctx.world_size > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[plan.device]
                                                   if plan.device.type == "cuda" else None)
    return nn.DataParallel(model, device_ids=list(plan.devices)) if len(plan.devices) > 1 else model
