"""Training: the book's recipe as one config, explicit parameter groups, and a loop that reports through callbacks.

Reads top to bottom like d2l's `train_fine_tuning` + `train_ch13`: data, model, optimiser, then epochs of
`train_one_epoch` and `evaluate`. The loop never draws and never prints; it calls `callback(event)` and
checks a `threading.Event` between batches so a UI (or Ctrl-C) can stop it and keep what was learned.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import EvalPreset, TrainPreset, check_image_folder, open_split
from .devices import PRECISIONS, autocast, resolve_devices, synchronize
from .errors import FtcoreError
from .models import HEAD_INITS, WeightsSource, build_model, get_arch

MODES = ("finetune", "scratch")
LOSS_REDUCTIONS = ("sum", "mean")

# What the book printed (ResNet-18 on d2l's hotdog.zip, 5 epochs, batch 128, two GPUs).
BOOK_RESULTS = {
    "finetune": {"train_loss": 0.220, "train_acc": 0.915, "test_acc": 0.939, "examples_per_sec": 999.1},
    "scratch": {"train_loss": 0.374, "train_acc": 0.839, "test_acc": 0.843, "examples_per_sec": 1623.8},
}
BOOK_SETUP = "ResNet-18 on d2l's hotdog.zip, 5 epochs, batch 128, 2 GPUs"

# On CPUs, forward/backward on 16 images at a time was fastest here (2-core EPYC: MobileNetV2 ~2x faster
# than whole batches of 128, ResNet-18 ~1.3x); GPUs take the whole batch at once.
CPU_MICRO_BATCH = 16


@dataclass
class TrainConfig:
    """Everything that defines a run. `recipe()` fills in the book's defaults for a mode and architecture."""

    data: str  # ImageFolder root holding train/<class>/ and test/<class>/
    mode: str = "finetune"  # "finetune": ImageNet weights + new output layer; "scratch": all weights random
    arch: str = "resnet18"  # one of models.ARCHITECTURES
    lr: float = 5e-5  # learning rate of every layer but the new output layer (book: 5e-5 fine-tune, 5e-4 scratch)
    param_groups: bool = True  # output layer at head_lr_mult * lr (book: on for fine-tune, off for scratch)
    head_lr_mult: float = 10.0  # the book's 10x for the freshly initialised output layer
    epochs: int = 5  # passes over the training set (book: 5)
    batch_size: int = 128  # images per optimiser step (book: 128)
    loss_reduction: str = "sum"  # book: backprop l.sum(); "mean" shrinks gradients batch_size-fold, so lrs grow
    weight_decay: float = 1e-3  # SGD weight decay on every parameter (book: 0.001); SGD has no momentum
    image_size: int = 224  # train crop and test centre crop; the test resize is 256/224 of it
    limit: int | None = None  # keep at most this many images per class and split (quick runs)
    device: str = "auto"  # "auto" = all CUDA GPUs (nn.DataParallel), else MPS, else CPU; or cpu, cuda:N, mps
    precision: str = "fp32"  # "bf16" autocast: about 2x faster ResNets on CPUs with AVX512-BF16 and on GPUs
    micro_batch: int = 0  # images per forward/backward inside a step; 0 = auto (16 on CPU, whole batch on GPU)
    num_workers: int = 0  # DataLoader worker processes (0 = load in the training thread)
    seed: int = 0  # seeds model init, shuffling and augmentation: same seed, same run on CPU
    weights: str | None = None  # ImageNet weights file; None = $FTCORE_WEIGHTS, torch cache, shared, download
    freeze_body: bool = False  # book exercise: copied layers get requires_grad=False (feature-extractor mode)
    head_init: str = "xavier"  # "imagenet": start the new layer from ImageNet rows named like the classes

    def validate(self) -> None:
        """Raise FtcoreError naming the first field a user set to something unusable."""
        get_arch(self.arch)
        checks = [
            (self.mode in MODES, f"mode must be finetune or scratch (got {self.mode!r})"),
            (self.loss_reduction in LOSS_REDUCTIONS,
             f"loss reduction must be sum or mean (got {self.loss_reduction!r})"),
            (self.head_init in HEAD_INITS, f"head init must be xavier or imagenet (got {self.head_init!r})"),
            (not (self.head_init == "imagenet" and self.mode != "finetune"),
             "the ImageNet head init needs ImageNet weights; use it with fine-tuning, not scratch"),
            (not (self.freeze_body and self.mode != "finetune"),
             "freezing the copied layers needs copied layers; use it with fine-tuning, not scratch"),
            (self.precision in PRECISIONS, f"precision must be fp32 or bf16 (got {self.precision!r})"),
            (self.lr > 0, f"learning rate must be positive (got {self.lr})"),
            (self.head_lr_mult > 0, f"output-layer lr multiplier must be positive (got {self.head_lr_mult})"),
            (self.weight_decay >= 0, f"weight decay must be 0 or more (got {self.weight_decay})"),
            (self.epochs >= 1, f"epochs must be at least 1 (got {self.epochs})"),
            (self.batch_size >= 1, f"batch size must be at least 1 (got {self.batch_size})"),
            (self.micro_batch >= 0, f"micro-batch must be 0 (auto) or more (got {self.micro_batch})"),
            (self.num_workers >= 0, f"workers must be 0 or more (got {self.num_workers})"),
            (self.image_size >= 32, f"image size must be at least 32 pixels (got {self.image_size})"),
            (self.limit is None or self.limit >= 1, f"limit must be at least 1 image per class (got {self.limit})"),
        ]
        for ok, message in checks:
            if not ok:
                raise FtcoreError(message)

    def to_dict(self) -> dict:
        """Plain dict (JSON- and weights_only-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild a config, ignoring keys this version does not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def recipe(mode: str = "finetune", arch: str = "resnet18", **overrides) -> TrainConfig:
    """The book's recipe for `mode`: its lr (the arch's own off ResNet-18) and param groups; None overrides ignored."""
    spec = get_arch(arch)
    if mode not in MODES:
        raise FtcoreError(f"mode must be finetune or scratch (got {mode!r})")
    defaults = {"lr": spec.finetune_lr if mode == "finetune" else spec.scratch_lr,
                "param_groups": mode == "finetune"}
    defaults.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(mode=mode, arch=arch, **defaults)


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
               reduction: str = "sum", micro_batch: int = 0, precision: str = "fp32") -> tuple[float, int]:
    """One optimiser step on a batch; returns (summed loss, correct predictions).

    The batch may be split into micro-batches whose gradients add up: the gradient of the summed (or
    mean) loss over the whole batch is the same, only BatchNorm sees fewer images at a time.
    """
    net.train()
    optimizer.zero_grad(set_to_none=True)
    divisor = len(y) if reduction == "mean" else 1
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
    fmt = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
    return X.to(device, memory_format=fmt, non_blocking=True)


@torch.inference_mode()
def evaluate(net: nn.Module, loader: DataLoader, device: torch.device, precision: str = "fp32",
             micro_batch: int = 0, stop: threading.Event | None = None) -> float | None:
    """Accuracy on `loader` in eval mode; None when `stop` is set before it finishes."""
    net.eval()
    correct = seen = 0
    for X, y in loader:
        if stop is not None and stop.is_set():
            return None
        X, y = to_device(X, device), y.to(device)
        for Xc, yc in zip(X.split(micro_batch or len(y)), y.split(micro_batch or len(y)), strict=True):
            with autocast(device, precision):
                correct += int((net(Xc).argmax(dim=1) == yc).sum())
        seen += len(y)
    return correct / max(seen, 1)


# --------------------------------------------------------------------------------------------------
# What the loop reports and returns.


@dataclass
class EpochRecord:
    """Metrics of one epoch, as the book prints them."""

    epoch: float  # epochs completed; fractional when a run stopped mid-epoch
    train_loss: float  # mean per-example loss over the augmented batches seen this epoch
    train_acc: float  # accuracy on those same augmented batches
    test_acc: float | None  # on the test split; None when stopped before evaluating
    examples: int  # training images seen this epoch
    seconds: float  # training compute this epoch (batches on the device, not data loading or evaluation)


@dataclass
class BatchRecord:
    """Metrics of one optimiser step."""

    epoch: float  # progress in epochs, e.g. 1.25 after a quarter of the second epoch
    loss: float  # mean per-example loss of this batch
    acc: float  # accuracy on this batch


@dataclass
class History:
    """Everything a run measured; plain data, stored in checkpoints and metrics.json."""

    devices: list[str] = field(default_factory=list)
    epochs: list[EpochRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)
    examples_per_sec: float = 0.0  # training images per second of training compute, as the book reports
    stopped: bool = False  # True when stopped before the last epoch finished

    def final(self) -> EpochRecord | None:
        """The last epoch record (what the book's closing line prints), if any."""
        return self.epochs[-1] if self.epochs else None

    def to_dict(self) -> dict:
        """Plain dict (JSON- and weights_only-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild a history written by `to_dict`."""
        return cls(devices=list(d.get("devices", [])),
                   epochs=[EpochRecord(**e) for e in d.get("epochs", [])],
                   batches=[BatchRecord(**b) for b in d.get("batches", [])],
                   examples_per_sec=float(d.get("examples_per_sec", 0.0)),
                   stopped=bool(d.get("stopped", False)))


@dataclass
class RunStarted:
    """Sent once the data and model are ready, before the first batch."""

    classes: list[str]
    train_size: int
    test_size: int
    steps_per_epoch: int
    devices: list[str]
    weights: str  # WeightsSource.describe()


@dataclass
class BatchEnded:
    """Sent after every optimiser step."""

    epoch: int  # 1-based
    step: int  # 1-based, within the epoch
    steps: int  # steps per epoch
    record: BatchRecord
    examples_per_sec: float  # over the run so far


@dataclass
class EpochEnded:
    """Sent after each epoch's evaluation (or when a stop cut the epoch short)."""

    record: EpochRecord
    history: History


Event = RunStarted | BatchEnded | EpochEnded


class TrainingDiverged(FtcoreError):
    """The loss became NaN or infinite; `history` holds everything measured before that batch."""

    def __init__(self, epoch: int, step: int, loss: float, history: History | None = None):
        super().__init__(f"training diverged at epoch {epoch}, batch {step} (loss {loss}); "
                         "lower the learning rate and start again")
        self.epoch, self.step, self.loss = epoch, step, loss
        self.history = history or History()


@dataclass
class TrainResult:
    """A trained model and everything needed to use and explain it."""

    model: nn.Module  # the target model (never the DataParallel wrapper), in eval mode
    config: TrainConfig
    classes: list[str]
    history: History
    weights: WeightsSource
    eval_transform: EvalPreset


# --------------------------------------------------------------------------------------------------
# The loop.


def micro_batch_size(config: TrainConfig, device: torch.device) -> int:
    """Images per forward/backward: the config's, else 16 on CPU and the whole batch elsewhere."""
    if config.micro_batch:
        return min(config.micro_batch, config.batch_size)
    return min(CPU_MICRO_BATCH, config.batch_size) if device.type == "cpu" else config.batch_size


def train_one_epoch(net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, config: TrainConfig,
                    device: torch.device, micro: int, epoch: int, stop: threading.Event,
                    on_batch: Callable[[BatchRecord, int, int, float], None]) -> EpochRecord:
    """Train over `loader` once (or until `stop`); after each step call on_batch(record, step, seen, seconds)."""
    steps = len(loader)
    loss_sum, correct, seen, seconds, step = 0.0, 0, 0, 0.0, 0
    for step, (X, y) in enumerate(loader, start=1):
        if stop.is_set():
            step -= 1
            break
        start = time.perf_counter()  # the book's timer: device transfer + step, not data loading
        batch_loss, batch_correct = train_step(net, optimizer, to_device(X, device), y.to(device),
                                               config.loss_reduction, micro, config.precision)
        synchronize(device)
        seconds += time.perf_counter() - start
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(epoch, step, batch_loss)
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(y)
        on_batch(BatchRecord(epoch - 1 + step / steps, batch_loss / len(y), batch_correct / len(y)),
                 step, seen, seconds)
    return EpochRecord(epoch - 1 + step / steps, loss_sum / max(seen, 1), correct / max(seen, 1), None,
                       seen, seconds)


def fit(config: TrainConfig, callback: Callable[[Event], None] | None = None,
        stop: threading.Event | None = None) -> TrainResult:
    """Run `config` to the end (or until `stop` is set) and return the model with its history."""
    config.validate()
    callback = callback or (lambda event: None)
    stop = stop or threading.Event()
    torch.manual_seed(config.seed)
    devices = resolve_devices(config.device)
    device = devices[0]

    # Data: the book's two ImageFolders, shuffled train batches, in-order test batches.
    classes = check_image_folder(config.data)
    train_set = open_split(config.data, "train", TrainPreset(config.image_size), config.limit)
    eval_transform = EvalPreset(config.image_size)
    test_set = open_split(config.data, "test", eval_transform, config.limit)
    loader_args = {"batch_size": config.batch_size, "num_workers": config.num_workers,
                   "pin_memory": device.type == "cuda", "persistent_workers": config.num_workers > 0}
    # A last batch of one image is dropped, as BatchNorm cannot train on it at small image sizes.
    train_iter = DataLoader(train_set, shuffle=True, generator=torch.Generator().manual_seed(config.seed),
                            drop_last=len(train_set) % config.batch_size == 1, **loader_args)
    test_iter = DataLoader(test_set, **loader_args)

    # Model: ImageNet weights and a new output layer (fine-tune) or random weights (scratch).
    model, weights = build_model(config.arch, len(classes), pretrained=config.mode == "finetune",
                                 weights_file=config.weights, head_init=config.head_init, classes=classes)
    model = model.to(device, memory_format=torch.channels_last if device.type != "mps" else torch.preserve_format)
    optimizer = make_optimizer(model, config)
    micro = micro_batch_size(config, device)
    scale_batchnorm_momentum(model, math.ceil(config.batch_size / micro))
    net = nn.DataParallel(model, device_ids=devices) if len(devices) > 1 else model  # the book's multi-GPU

    history = History(devices=[str(d) for d in devices])
    callback(RunStarted(classes, len(train_set), len(test_set), len(train_iter), history.devices,
                        weights.describe()))

    def on_batch(epoch: int, record: BatchRecord, step: int, seen: int, seconds: float) -> None:
        history.batches.append(record)
        speed = (seen + sum(e.examples for e in history.epochs)) / (seconds + sum(e.seconds for e in history.epochs))
        callback(BatchEnded(epoch, step, len(train_iter), record, speed))

    for epoch in range(1, config.epochs + 1):
        if stop.is_set():
            break
        try:
            record = train_one_epoch(net, train_iter, optimizer, config, device, micro, epoch, stop,
                                     functools.partial(on_batch, epoch))
        except TrainingDiverged as e:
            e.history = history  # the curves up to the last finite batch stay plottable
            raise
        if record.examples == 0:
            break
        if not stop.is_set():
            record.test_acc = evaluate(net, test_iter, device, config.precision, micro, stop)
        history.epochs.append(record)
        history.examples_per_sec = (sum(e.examples for e in history.epochs)
                                    / max(sum(e.seconds for e in history.epochs), 1e-9))
        callback(EpochEnded(record, history))
    last = history.final()
    history.stopped = last is None or last.epoch < config.epochs or last.test_acc is None
    model.eval()
    return TrainResult(model, config, classes, history, weights, eval_transform)
