"""The training loop: the book's `train_fine_tuning` + `train_ch13`, as `fit`.

Reads top to bottom like the book: the run's plan, data, model and optimiser, then epochs of `train_one_epoch`
each measured on the held-out photos. The loop never draws and never prints: every kind of progress goes to one
sink of `ftcore.records` events, and a `threading.Event` checked between batches lets a UI (or Ctrl-C) stop it and
keep what was learned.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..archs import get_arch
from ..config import TrainConfig
from ..data.run_data import RunData, make_run_data
from ..data.transforms import eval_preset
from ..devices import distributed
from ..devices.placement import synchronize
from ..models.build import build_model
from ..models.output_layer import output_layer
from ..models.trained import TrainedModel
from ..models.weights import WeightsSource
from ..records import (
    BatchEnded,
    BatchRecord,
    EpochEnded,
    EpochRecord,
    History,
    Sink,
    StateCaptured,
    Steered,
    SteerRecord,
)
from . import resume
from .evaluate import FUSE_MIN_IMAGES, evaluate
from .features import feature_batch_size
from .head import cache_features, train_output_layer
from .optim import make_optimizer
from .plan import RunPlan, batchnorm_note, plan_run, with_balance, wrap_model
from .progress import Progress, TrainingDiverged, record_heldout
from .steering import Rates, SteeringSource, current_rates, set_rates, split_groups
from .step import batchnorm_layers, scale_batchnorm_momentum, to_device, train_step


def make_model(config: TrainConfig, classes: list[str], plan: RunPlan) -> tuple[nn.Module, WeightsSource]:
    """The run's network on the plan's device: ImageNet weights and a new output layer (fine-tune) or random
    weights (scratch), its BatchNorm momentum scaled for the plan's micro-batches per optimiser step."""
    model, weights = build_model(config.arch, len(classes), pretrained=config.mode == "finetune",
                                 weights_file=config.weights, head_init=config.head_init, classes=classes)
    device = plan.device
    model = model.to(device, memory_format=torch.channels_last if device.type != "mps" else torch.preserve_format)
    scale_batchnorm_momentum(model, plan.updates_per_step)
    return model, weights


def unwrapped(net: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel or DataParallel wrapper (the model itself otherwise)."""
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net


def steer(net: nn.Module, optimizer: torch.optim.Optimizer, plan: RunPlan, position: float, sink: Sink) -> None:
    """Before the batch that starts at `position`: the change of rates the plan's steering source asks for, if any,
    applied to the optimiser's groups and reported. Under torchrun rank 0 asks and every rank takes its answer,
    so that all change at the same batch."""
    source = plan.steering if plan.ctx.is_main else None
    wanted = source.poll(position, current_rates(optimizer)) if source is not None else None
    if plan.ctx.world_size > 1:
        asked, lr, head_lr = distributed.broadcast_floats([1.0, wanted.lr, wanted.head_lr] if wanted else [0.0] * 3,
                                                          plan.device)
        wanted = Rates(lr=lr, head_lr=head_lr) if asked else None
    if wanted is None:
        return
    set_rates(optimizer, output_layer(unwrapped(net), plan.config.arch).parameters(), wanted)
    record = SteerRecord(epoch=position, lr=wanted.lr, head_lr=wanted.head_lr)
    sink(Steered(record))
    if source is not None:
        source.applied(record)


def train_one_epoch(net: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, plan: RunPlan, epoch: int,
                    stop: threading.Event, sink: Sink) -> EpochRecord:
    """Train over `loader` once (or until `stop`), reporting each step to `sink`; before each step, the change of
    rates the plan's steering source asks for, if any."""
    reduction, device = plan.config.loss_reduction, plan.device
    steps = len(loader)
    # the copied layers' BatchNorm, kept in eval mode while they are frozen (config.frozen_batchnorm)
    copied_norms = batchnorm_layers(unwrapped(net), get_arch(plan.config.arch).head) \
        if plan.config.frozen_batchnorm == "eval" else []
    loss_sum, correct, seen, seconds, step = 0.0, 0, 0, 0.0, 0
    wall_start = time.perf_counter()
    for step, (X, y) in enumerate(loader, start=1):
        if stop.is_set():
            step -= 1
            break
        if plan.steering is not None or plan.ctx.world_size > 1:  # under torchrun every rank takes part
            steer(net, optimizer, plan, epoch - 1 + (step - 1) / steps, sink)
        start = time.perf_counter()  # the book's timer: device transfer + step, not data loading
        still = copied_norms if copied_norms and current_rates(optimizer).lr == 0 else ()
        batch_loss, batch_correct = train_step(net, optimizer, to_device(X, device), y.to(device), reduction,
                                               plan.micro_batch, plan.precision, plan.grad_scale, plan.class_weights,
                                               still)
        synchronize(device)
        seconds += time.perf_counter() - start
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(epoch, step, batch_loss)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
        sink(BatchEnded(epoch, step, steps, BatchRecord(epoch - 1 + step / steps, batch_loss / len(y),
                                                         batch_correct / len(y)),
                        seen / seconds, seen, seconds))
    wall = time.perf_counter() - wall_start
    if plan.ctx.world_size > 1:  # every rank reports the whole global batch's epoch; speeds add up across ranks
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen], device)
        seen = int(seen)
    return EpochRecord(epoch - 1 + step / steps, loss_sum / max(seen, 1), correct / max(seen, 1), None,
                       seen, seconds, wall)


def train_full_epoch(net: nn.Module, data: RunData, optimizer: torch.optim.Optimizer, plan: RunPlan, epoch: int,
                     stop: threading.Event, sink: Sink) -> EpochRecord | None:
    """One epoch of every trainable layer, then its held-out accuracy (unless stopped); None when no batch ran."""
    if isinstance(getattr(data.train, "sampler", None), DistributedSampler):
        data.train.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
    record = train_one_epoch(net, data.train, optimizer, plan, epoch, stop, sink)
    if record.examples == 0:
        return None
    if not stop.is_set():
        start = time.perf_counter()
        # in the arithmetic the model trains in (Predict runs it in fp32, as it trained)
        record_heldout(record, data.splits.heldout, evaluate(net, data.heldout, plan.device, len(data.splits.classes),
                                                             plan.precision, stop,
                                                             fuse=data.heldout_size >= FUSE_MIN_IMAGES))
        record.eval_seconds = time.perf_counter() - start
    return record


def fit(config: TrainConfig, sink: Sink | None = None, stop: threading.Event | None = None,
        resume_from: dict | None = None, capture_state: bool = False,
        steering: SteeringSource | None = None) -> TrainedModel:
    """Run `config` to the end (or until `stop` is set) and return the model with its history: the book's
    train_fine_tuning and train_ch13.

    Every event goes to `sink`; with `capture_state`, the run's state after each epoch of every layer too
    (`StateCaptured`: a copy of the weights and the optimiser, for a caller that resumes from it). `resume_from`,
    such a state, continues the run after the epoch it was captured at, at the rates it was steered to.
    `steering`, where given, is asked before every batch of every layer for a change of the learning rates."""
    config.validate()
    sink, stop = sink or (lambda event: None), stop or threading.Event()
    torch.manual_seed(config.seed)
    plan = plan_run(config, steering)  # devices, torchrun, precision and micro-batches, resolved once

    # Data: the book's two ImageFolders (or train/val/test), shuffled train batches, in-order held-out batches.
    data = make_run_data(config, plan.device, feature_batch_size(plan.device), plan.ctx)
    plan = with_balance(plan, data.train_counts)  # unequal classes weighted in the loss, where the config asks
    # Model: ImageNet weights and a new output layer (fine-tune) or random weights (scratch), and the book's SGD.
    model, weights = make_model(config, data.splits.classes, plan)
    optimizer = make_optimizer(model, config)  # before any DDP wrap: freezing must precede it
    history, first_epoch = starting_history(plan, data, resume_from)
    if resume_from is not None:
        if len(resume_from["optimizer"]["param_groups"]) > len(optimizer.param_groups):  # steering split its group
            split_groups(optimizer, output_layer(model, config.arch).parameters())
        resume.restore(resume_from, model, optimizer, data.train)  # with the groups' rates as the run left them
    net, progress = wrap_model(model, plan), Progress(config, history, data, sink)
    progress.started(weights, batchnorm_note(config, plan.micro_batch) if config.epochs else "")

    def epoch_done(epoch: int) -> None:
        # after an epoch that ran whole (its held-out accuracy measured), even if Stop came since: it resumes there
        last = history.final()
        if capture_state and config.epochs and last is not None and last.epoch == epoch \
                and last.heldout_acc is not None:
            progress(StateCaptured(epoch, resume.capture(config.to_dict(), epoch, model, optimizer,
                                                         history.to_dict(), data.train)))

    try:  # output-layer epochs come first, then epochs of every layer
        if config.head_epochs and first_epoch <= config.head_epochs:
            start = time.perf_counter()
            features = cache_features(model, data, plan, stop)  # the frozen copied layers, once per photo
            history.feature_seconds = time.perf_counter() - start
            if features is not None:
                train_output_layer(model, features, plan, stop, progress)
            distributed.broadcast_module(output_layer(model, config.arch))  # every rank starts from rank 0's
            epoch_done(config.head_epochs)
        for epoch in range(max(first_epoch, config.head_epochs + 1), config.total_epochs + 1):
            record = None if stop.is_set() else train_full_epoch(net, data, optimizer, plan, epoch, stop, progress)
            if record is None:
                break
            progress(EpochEnded(record))
            epoch_done(epoch)
    except TrainingDiverged as e:
        e.history = history  # the curves up to the last finite batch stay plottable
        raise
    return finish_run(model, data, plan, history, weights, stop)


def starting_history(plan: RunPlan, data: RunData, resume_from: dict | None) -> tuple[History, int]:
    """A new run's empty history and first epoch (1), or a resumed run's history and the epoch after its last."""
    if resume_from is not None:
        return History.from_dict(resume_from["history"]), resume_from["epoch"] + 1
    return History(devices=[str(d) for d in plan.devices], precision=plan.precision,
                   decode_seconds=data.decode_seconds, heldout=data.splits.heldout, split=data.splits.record(),
                   edits=dict(data.splits.edits)), 1


def finish_run(model: nn.Module, data: RunData, plan: RunPlan, history: History, weights: WeightsSource,
               stop: threading.Event) -> TrainedModel:
    """Whether the run ended early, its one measurement on test where it chose on val, and the result."""
    config = plan.config
    last = history.final()
    history.stopped = last is None or last.epoch < config.total_epochs or last.heldout_acc is None
    if data.final_test is not None and not history.stopped:  # chosen on val; the test photos are seen once, here
        tested = evaluate(model, data.final_test, plan.device, len(data.splits.classes), plan.precision, stop,
                          fuse=data.sizes["test"] >= FUSE_MIN_IMAGES)
        history.test_acc = tested.accuracy if tested is not None else None
    model.eval()
    return TrainedModel(model, config, data.splits.classes, history, weights,
                        eval_preset(config.arch, config.image_size))
