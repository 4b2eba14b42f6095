"""Training: the book's recipe as one config, explicit parameter groups, and a loop that reports through callbacks.

Reads top to bottom like d2l's `train_fine_tuning` + `train_ch13`: data, model, optimiser, then epochs of
`train_one_epoch` and `evaluate`. The loop never draws and never prints; it calls `callback(event)` and
checks a `threading.Event` between batches so a UI (or Ctrl-C) can stop it and keep what was learned.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from . import distributed, resume
from .archs import WeightsSource, get_arch
from .config import TrainConfig
from .data import EvalPreset
from .devices import autocast, resolve_devices, resolve_precision, synchronize, training_precision
from .errors import FtcoreError
from .features import extract_features, feature_batch_size, head_accuracy, train_head_epoch
from .models import build_model, fused_for_inference, output_layer
from .records import BatchEnded, BatchRecord, EpochEnded, EpochRecord, Event, History, RunStarted
from .run_data import RunData, make_run_data

# Folding BatchNorm into the convolutions for evaluation costs a fixed fraction of a second and speeds up every
# image after it; below this many images it costs more than it saves.
FUSE_MIN_IMAGES = 256


# --------------------------------------------------------------------------------------------------
# The optimiser and the loss, as the book builds them.


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
        return [{"name": "output layer", "params": output, "lr": lr * head_lr_mult if enabled else lr}]
    if not enabled:
        return [{"name": "all layers", "params": list(model.parameters()), "lr": lr}]
    return [{"name": "copied layers", "params": body, "lr": lr},
            {"name": "output layer", "params": output, "lr": lr * head_lr_mult}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """Plain SGD (no momentum) with the book's weight decay over the parameter groups."""
    groups = make_param_groups(model, config.arch, config.lr, config.head_lr_mult, config.param_groups,
                               config.freeze_body)
    return torch.optim.SGD(groups, lr=config.lr, weight_decay=config.weight_decay)


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


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor,
               reduction: str = "sum", micro_batch: int = 0, precision: str = "fp32",
               grad_scale: float = 1.0) -> tuple[float, int]:
    """One optimiser step on a batch; returns (summed loss, correct predictions).

    The batch may be split into micro-batches whose gradients add up: the gradient of the summed (or
    mean) loss over the whole batch is the same, only BatchNorm sees fewer images at a time. grad_scale
    multiplies the loss (DDP averages gradients over ranks; world_size undoes that for a summed loss).
    """
    net.train()
    optimizer.zero_grad(set_to_none=True)
    divisor = (len(y) if reduction == "mean" else 1) / grad_scale
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    sizes = chunk_sizes(len(y), micro_batch or len(y))
    for Xc, yc in zip(X.split(sizes), y.split(sizes), strict=True):
        with autocast(y.device, precision):
            logits = net(Xc)
        losses = loss_fn(logits.float(), yc)
        (losses.sum() / divisor).backward()
        loss_sum += losses.detach().sum()
        correct += (logits.argmax(dim=1) == yc).sum()
    optimizer.step()
    return loss_sum.item(), int(correct.item())


def to_device(X: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an image batch to `device`, channels-last where that is faster (CPU and CUDA convolutions)."""
    fmt = torch.channels_last if device.type in ("cpu", "cuda") and X.dim() == 4 else torch.contiguous_format
    return X.to(device, memory_format=fmt, non_blocking=True)


@torch.inference_mode()
def evaluate(net: nn.Module, loader: DataLoader, device: torch.device, precision: str = "fp32",
             micro_batch: int = 0, stop: threading.Event | None = None, fuse: bool = True) -> float | None:
    """Accuracy on `loader` in eval mode (BatchNorm folded into the convolutions, except under DataParallel, which
    keeps splitting batches over the GPUs); None when `stop` is set before it finishes."""
    if isinstance(net, nn.parallel.DistributedDataParallel):
        net = net.module
    net = fused_for_inference(net) if fuse and not isinstance(net, nn.DataParallel) else net.eval()
    correct = seen = 0
    for X, y in loader:
        if stop is not None and stop.is_set():
            return None
        X, y = to_device(X, device), y.to(device)
        for Xc, yc in zip(X.split(micro_batch or len(y)), y.split(micro_batch or len(y)), strict=True):
            with autocast(device, precision):
                correct += int((net(Xc).argmax(dim=1) == yc).sum())
        seen += len(y)
    correct, seen = distributed.all_reduce_sum([correct, seen], device)  # a no-op in one process
    return correct / max(seen, 1)


# --------------------------------------------------------------------------------------------------
# What the loop reports and returns (its records live in `records`).


class TrainingDiverged(FtcoreError):
    """The loss became NaN or infinite; `history` holds everything measured before that batch."""

    def __init__(self, epoch: int, step: int, loss: float, history: History | None = None):
        super().__init__(f"training diverged at epoch {epoch}, batch {step} (loss {loss}); "
                         "lower the learning rate and start again")
        self.epoch, self.step, self.loss = epoch, step, loss
        self.history = history or History()


@dataclass
class TrainedModel:
    """A trained model and what it was trained with: what `fit` returns, a checkpoint holds and prediction takes
    (evaluation, Grad-CAM and export take its parts)."""

    model: nn.Module  # the target model (never the DataParallel wrapper), in eval mode; never changed after
    config: TrainConfig  # the run's settings, which rebuild the architecture and re-run it
    classes: list[str]  # output i is classes[i]
    history: History  # everything measured while it trained
    weights: WeightsSource  # where its starting weights came from
    eval_transform: EvalPreset  # the test transform it was measured with, which every prediction repeats

    @property
    def arch(self) -> str:
        """The architecture's registry name (archs.ARCHITECTURES)."""
        return self.config.arch


# --------------------------------------------------------------------------------------------------
# The loop.


def record_heldout(record: EpochRecord, split: str, accuracy: float | None) -> None:
    """Store an epoch's held-out accuracy under its split's name: val_acc, or test_acc as the book."""
    if split == "val":
        record.val_acc = accuracy
    else:
        record.test_acc = accuracy


def micro_batch_size(config: TrainConfig, device: torch.device, precision: str) -> int:
    """Images per forward/backward: the config's; else the whole batch, the book's BatchNorm, wherever it fits,
    and on a CPU whose memory cannot hold the whole batch's activations the largest micro-batch that fits
    (memory.fitting_micro_batch; `batchnorm_note` says so)."""
    if device.type != "cpu" and not config.micro_batch:
        return config.batch_size
    from .memory import cpu_micro_batch  # memory estimates runs of this module's configs

    return cpu_micro_batch(config, precision)


def batchnorm_note(config: TrainConfig, micro: int) -> str:
    """One sentence when BatchNorm sees fewer photos than the book's whole batch, and why; else ""."""
    if micro >= config.batch_size:
        return ""
    if config.micro_batch:
        return (f"BatchNorm over {micro} of the batch's {config.batch_size} photos: micro-batches of {micro} were "
                "asked for (the book normalises over the whole batch)")
    from .memory import FITS_SHARE, GB, estimate_from_counts, readable_counts, total_bytes

    whole = estimate_from_counts(dataclasses.replace(config, micro_batch=config.batch_size), readable_counts(config))
    return (f"BatchNorm over {micro} of the batch's {config.batch_size} photos: the whole batch needs about "
            f"{whole / GB:.1f} GB, more than the {FITS_SHARE * total_bytes() / GB:.1f} GB a run may take of this "
            f"machine's {total_bytes() / GB:.1f} GB")


def make_model(config: TrainConfig, classes: list[str], device: torch.device,
               updates_per_step: int) -> tuple[nn.Module, WeightsSource]:
    """The run's network on `device`: ImageNet weights and a new output layer (fine-tune) or random weights
    (scratch), its BatchNorm momentum scaled for `updates_per_step` micro-batches per optimiser step."""
    model, weights = build_model(config.arch, len(classes), pretrained=config.mode == "finetune",
                                 weights_file=config.weights, head_init=config.head_init, classes=classes)
    model = model.to(device, memory_format=torch.channels_last if device.type != "mps" else torch.preserve_format)
    scale_batchnorm_momentum(model, updates_per_step)
    return model, weights


def train_one_epoch(net: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, config: TrainConfig,
                    device: torch.device, micro: int, precision: str, epoch: int, stop: threading.Event,
                    on_batch: Callable[[BatchRecord, int, int, float], None]) -> EpochRecord:
    """Train over `loader` once (or until `stop`); after each step call on_batch(record, step, seen, seconds)."""
    steps = len(loader)
    loss_sum, correct, seen, seconds, step = 0.0, 0, 0, 0.0, 0
    world = distributed.context().world_size
    grad_scale = world if config.loss_reduction == "sum" else 1.0
    wall_start = time.perf_counter()
    for step, (X, y) in enumerate(loader, start=1):
        if stop.is_set():
            step -= 1
            break
        start = time.perf_counter()  # the book's timer: device transfer + step, not data loading
        batch_loss, batch_correct = train_step(net, optimizer, to_device(X, device), y.to(device),
                                               config.loss_reduction, micro, precision, grad_scale)
        synchronize(device)
        seconds += time.perf_counter() - start
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(epoch, step, batch_loss)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
        on_batch(BatchRecord(epoch - 1 + step / steps, batch_loss / len(y), batch_correct / len(y)),
                 step, seen, seconds)
    wall = time.perf_counter() - wall_start
    if world > 1:  # every rank reports the whole global batch's epoch; speeds add up across ranks
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen], device)
        seen = int(seen)
    return EpochRecord(epoch - 1 + step / steps, loss_sum / max(seen, 1), correct / max(seen, 1), None,
                       seen, seconds, wall)


@dataclass
class RunDevices:
    """Where a run trains: its own device, every device the run spans, and its torchrun context."""

    device: torch.device
    devices: list[torch.device]
    ctx: distributed.DistContext = distributed.SINGLE


def run_devices(config: TrainConfig) -> RunDevices:
    """Under torchrun one device per process (DistributedDataParallel); else the config's devices (several CUDA
    GPUs: the book's nn.DataParallel)."""
    if not distributed.launched_by_torchrun():
        devices = resolve_devices(config.device)
        return RunDevices(devices[0], devices)
    ctx, device = distributed.setup(config.device)
    if config.batch_size % ctx.world_size:
        raise FtcoreError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} processes; "
                          "pick a multiple of the process count")
    ranks = [torch.device(device.type, r) if device.type == "cuda" else device for r in range(ctx.world_size)]
    return RunDevices(device, ranks, ctx)


def wrap_model(model: nn.Module, where: RunDevices) -> nn.Module:
    """The network the training steps call: DDP under torchrun, DataParallel over several GPUs, else the model."""
    if where.ctx.world_size > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[where.device]
                                                   if where.device.type == "cuda" else None)
    return nn.DataParallel(model, device_ids=where.devices) if len(where.devices) > 1 else model


class Progress:
    """The run's history as it grows, its speed (the book's examples/sec), and the events fit sends."""

    def __init__(self, config: TrainConfig, history: History, data: RunData, callback: Callable[[Event], None]):
        self.config, self.history, self.data, self.callback = config, history, data, callback
        self.head_steps = math.ceil(data.train_size * (1 + config.head_views) / config.batch_size)
        self.steps = len(data.train) if config.epochs else self.head_steps

    def started(self, weights: WeightsSource, batchnorm: str) -> None:
        """Data and model are ready: say what the run trains on, where, and from which weights."""
        data = self.data
        self.callback(RunStarted(data.splits.classes, data.train_size, data.heldout_size, self.steps,
                                 self.history.devices, weights.describe(), data.splits.heldout, dict(data.sizes),
                                 batchnorm))

    def feature_speed(self) -> float:
        """Photos per second through the frozen layers (forward only), for output-layer epochs."""
        photos = self.data.train_size * (1 + self.config.head_views) + self.data.heldout_size
        return photos / self.history.feature_seconds if self.history.feature_seconds else 0.0

    def batch(self, epoch: int, record: BatchRecord, step: int, seen: int, seconds: float) -> None:
        """One optimiser step ended: record it, and report it with the speed so far."""
        self.history.batches.append(record)
        head = epoch <= self.config.head_epochs
        full = [e for e in self.history.epochs if e.stage == "full"]
        speed = self.feature_speed() if head else \
            (seen + sum(e.examples for e in full)) / (seconds + sum(e.seconds for e in full))
        self.callback(BatchEnded(epoch, step, self.head_steps if head else self.steps, record, speed))

    def epoch(self, record: EpochRecord) -> None:
        """One epoch ended: record it and the run's speed over its timed full epochs, and report it."""
        self.history.epochs.append(record)
        timed = [e for e in self.history.epochs if e.stage == "full"]
        self.history.examples_per_sec = (sum(e.examples for e in timed) / max(sum(e.seconds for e in timed), 1e-9)
                                         if timed else self.feature_speed())
        self.callback(EpochEnded(record, self.history))


def fit(config: TrainConfig, callback: Callable[[Event], None] | None = None,
        stop: threading.Event | None = None, resume_from: dict | None = None,
        on_state: Callable[[dict], None] | None = None) -> TrainedModel:
    """Run `config` to the end (or until `stop` is set) and return the model with its history: the book's
    train_fine_tuning and train_ch13.

    `on_state` receives the run's state (resume.capture) after every epoch of every layer; `resume_from`, such
    a state, continues the run after the epoch it was captured at."""
    config.validate()
    callback, stop = callback or (lambda event: None), stop or threading.Event()
    torch.manual_seed(config.seed)
    where = run_devices(config)
    feature_precision = resolve_precision(config.precision, where.device)  # the frozen layers' cached features
    train_precision = training_precision(config, where.device)  # every layer's forward and backward
    micro = micro_batch_size(config, where.device, train_precision)

    # Data: the book's two ImageFolders (or train/val/test), shuffled train batches, in-order held-out batches.
    data = make_run_data(config, where.device, feature_batch_size(where.device), where.ctx)
    # Model: ImageNet weights and a new output layer (fine-tune) or random weights (scratch), and the book's SGD.
    model, weights = make_model(config, data.splits.classes, where.device,
                                math.ceil(config.batch_size / where.ctx.world_size / micro))
    optimizer = make_optimizer(model, config)  # before any DDP wrap: freezing must precede it
    if resume_from is not None:
        resume.restore(resume_from, model, optimizer, data.train)
    history, first_epoch = starting_history(where, train_precision, data, resume_from)
    net, progress = wrap_model(model, where), Progress(config, history, data, callback)
    progress.started(weights, batchnorm_note(config, micro) if config.epochs else "")

    def save_state(epoch: int) -> None:
        # after an epoch that ran whole (its held-out accuracy measured), even if Stop came since: it resumes there
        last = history.final()
        if on_state is not None and config.epochs and last is not None and last.epoch == epoch \
                and last.heldout_acc is not None:
            on_state(resume.capture(config.to_dict(), epoch, model, optimizer, history.to_dict(), data.train))

    try:  # output-layer epochs come first, then epochs of every layer
        if config.head_epochs and first_epoch <= config.head_epochs:
            train_output_layer(model, config, data, where.device, feature_precision, history, stop, progress.batch,
                               progress.epoch)
            distributed.broadcast_module(output_layer(model, config.arch))  # every rank starts from rank 0's
            save_state(config.head_epochs)
        for epoch in range(max(first_epoch, config.head_epochs + 1), config.total_epochs + 1):
            record = None if stop.is_set() else train_full_epoch(net, data, optimizer, config, where.device, micro,
                                                                 train_precision, epoch, stop, progress)
            if record is None:
                break
            progress.epoch(record)
            save_state(epoch)
    except TrainingDiverged as e:
        e.history = history  # the curves up to the last finite batch stay plottable
        raise
    return finish_run(model, config, data, where.device, train_precision, history, weights, stop)


def starting_history(where: RunDevices, precision: str, data: RunData,
                     resume_from: dict | None) -> tuple[History, int]:
    """A new run's empty history and first epoch (1), or a resumed run's history and the epoch after its last."""
    if resume_from is not None:
        return History.from_dict(resume_from["history"]), resume_from["epoch"] + 1
    return History(devices=[str(d) for d in where.devices], precision=precision, decode_seconds=data.decode_seconds,
                   heldout=data.splits.heldout, split=data.splits.record()), 1


def train_full_epoch(net: nn.Module, data: RunData, optimizer: torch.optim.Optimizer, config: TrainConfig,
                     device: torch.device, micro: int, precision: str, epoch: int, stop: threading.Event,
                     progress: Progress) -> EpochRecord | None:
    """One epoch of every trainable layer, then its held-out accuracy (unless stopped); None when no batch ran."""
    if isinstance(getattr(data.train, "sampler", None), DistributedSampler):
        data.train.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
    record = train_one_epoch(net, data.train, optimizer, config, device, micro, precision, epoch, stop,
                             functools.partial(progress.batch, epoch))
    if record.examples == 0:
        return None
    if not stop.is_set():
        start = time.perf_counter()
        # in the arithmetic the model trains in (Predict runs it in fp32, as it trained)
        record_heldout(record, data.splits.heldout, evaluate(net, data.heldout, device, precision, 0, stop,
                                                             fuse=data.heldout_size >= FUSE_MIN_IMAGES))
        record.eval_seconds = time.perf_counter() - start
    return record


def finish_run(model: nn.Module, config: TrainConfig, data: RunData, device: torch.device, precision: str,
               history: History, weights: WeightsSource, stop: threading.Event) -> TrainedModel:
    """Whether the run ended early, its one measurement on test where it chose on val, and the result."""
    last = history.final()
    history.stopped = last is None or last.epoch < config.total_epochs or last.heldout_acc is None
    if data.final_test is not None and not history.stopped:  # chosen on val; the test photos are seen once, here
        history.test_acc = evaluate(model, data.final_test, device, precision, 0, stop,
                                    fuse=data.sizes["test"] >= FUSE_MIN_IMAGES)
    model.eval()
    return TrainedModel(model, config, data.splits.classes, history, weights, EvalPreset(config.image_size))


def train_output_layer(model: nn.Module, config: TrainConfig, data: RunData, device: torch.device, precision: str,
                       history: History, stop: threading.Event, on_batch: Callable, end_epoch: Callable) -> None:
    """Output-layer epochs: features of the frozen copied layers once per photo (and per augmented view), then
    the new layer alone on them with the book's optimiser (SGD, weight decay, lr: head_lr_mult * lr with
    param groups), its lr optionally decayed linearly to 0."""
    start = time.perf_counter()
    # The copied layers are frozen here, so BatchNorm can be folded into them once (a copy; the model is kept).
    frozen = fused_for_inference(model) if data.train_size + data.heldout_size >= FUSE_MIN_IMAGES else model.eval()
    parts = [extract_features(frozen, config.arch, data.train_plain, device, precision, stop)]
    for _ in range(config.head_views):
        parts.append(extract_features(frozen, config.arch, data.train_views, device, precision, stop))
    test = extract_features(frozen, config.arch, data.heldout, device, precision, stop)
    history.feature_seconds = time.perf_counter() - start
    if test is None or any(part is None for part in parts):
        return
    features, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    layer = output_layer(model, config.arch)
    lr = config.head_lr
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps = math.ceil(len(labels) / config.batch_size)
    total_steps = steps * config.head_epochs
    for epoch in range(1, config.head_epochs + 1):
        if stop.is_set():
            return
        step = 0
        t0 = time.perf_counter()

        def report(loss: float, correct: int, n: int, epoch: int = epoch, t0: float = t0) -> None:
            nonlocal step
            step += 1
            if not math.isfinite(loss):
                raise TrainingDiverged(epoch, step, loss)
            if config.head_lr_decay:  # the lr of the next step, falling linearly to 0 at the last one
                done = (epoch - 1) * steps + step
                for group in optimizer.param_groups:
                    group["lr"] = lr * (1 - done / total_steps)
            on_batch(epoch, BatchRecord(epoch - 1 + step / steps, loss / n, correct / n), step,
                     step * config.batch_size, time.perf_counter() - t0)

        loss_sum, correct, seen = train_head_epoch(layer, optimizer, features, labels, config.batch_size,
                                                   config.loss_reduction, generator, report)
        seconds = time.perf_counter() - t0
        record = EpochRecord(float(epoch), loss_sum / max(seen, 1), correct / max(seen, 1), None, seen, seconds,
                             seconds, stage="head")
        t1 = time.perf_counter()
        record_heldout(record, data.splits.heldout, head_accuracy(layer, test[0], test[1]))
        record.eval_seconds = time.perf_counter() - t1
        end_epoch(record)
