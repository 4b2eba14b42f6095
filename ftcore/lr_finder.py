"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's `lr_find`) on a run's own recipe.

The learning rate rises exponentially, one optimiser step at a time, from `start_lr` to `end_lr` over `steps`
steps of the run's training photos, with everything else as the run would train: architecture and mode, parameter
groups (the output layer keeps its multiple), loss reduction, batch, micro-batches, precision and device. The
loss of each step is recorded per photo (with the summed loss that is the sum over the batch divided by its
size, so sum and mean plot on one scale), then smoothed. The test ends early once the smoothed loss clearly
diverges.

The suggestion comes from one of five rules (`lr_rules`: fastai's four and the edge, the lab's default, chosen by
measurement), read off the smoothed curve, then raised for the run it is for (`lr_rules.for_the_run`: a short
run, or the output layer alone); it is in the run's own units: the lr of every layer but the output layer, for the
run's loss reduction. The finding keeps every rule's answer beside it.

The test ends early by a stop rule (`StopRule`): fastai's ends once the averaged loss passes 4x its lowest value;
this lab's default also waits until it is back above where it started, since a fine-tuning curve can fall so low
that 4x its lowest is still below where it began (on every curve measured so far both ended at the same step).

Recipes that train the output layer alone (the quick and best presets) get the same test over that layer on the
features the frozen copied layers compute once per photo, as their training does: it takes seconds.

What the test is asked and what it finds (its settings, stop rules, finding and curve file) are in
`lr_finding`, which needs no torch.

Nothing is left changed: `range_test` restores the model's and the optimiser's state and every random number
generator it touched, and `find_lr` builds a model of its own, so a run trained afterwards is the run trained
without it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .devices import resolve_devices, resolve_precision, training_precision
from .errors import FtcoreError
from .features import extract_features, feature_batch_size
from .lr_finding import DivergenceWatch, FinderSettings, LrFinding, check_request, read_curve, trains_output_layer_only
from .models import output_layer
from .records import LrStep
from .resume import restore_torch_generators, torch_generators
from .run_data import make_run_data
from .training import make_model, make_optimizer, micro_batch_size, to_device, train_step

# --------------------------------------------------------------------------------------------------
# The test itself.


def cycle(batches: Iterable) -> Iterator:
    """The batches again and again (a new pass, and shuffle, each time); FtcoreError when there are none."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise FtcoreError("the training split has too few photos for one batch; add photos or lower the batch size")


def random_states() -> dict:
    """Every global random number generator a training step can draw from: PyTorch's (as resume saves them),
    Python's and NumPy's."""
    return {**torch_generators(), "python": random.getstate(), "numpy": np.random.get_state()}


def restore_random_states(states: dict) -> None:
    """Put back what random_states() took."""
    restore_torch_generators(states)
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, device: torch.device,
               settings: FinderSettings, reduction: str = "sum", micro_batch: int = 0, precision: str = "fp32",
               callback: Callable[[LrStep], None] | None = None, stop: threading.Event | None = None,
               base_lr: float | None = None, run_steps: int = 0, output_layer_only: bool = False) -> LrFinding:
    """Step `optimizer` over `batches` (cycled) with the lr rising exponentially; return the curve and its
    suggestion. The swept lr stands for `base_lr` (default: the first group's lr), and every parameter group keeps
    its ratio to it (the output layer's 10x, even when it is the only group left); the suggestion is raised for
    the run it is for: `run_steps` long, training `output_layer_only` or every layer. The model, the optimiser
    and the global random generators end as they began (the batches' own shuffling generator moves on)."""
    settings.validate()
    stop = stop or threading.Event()
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_random = random_states()
    base = base_lr or optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    finding = LrFinding(steps=settings.steps, loss_reduction=reduction, run_steps=run_steps,
                        output_layer_only=output_layer_only)
    watch = DivergenceWatch(settings.stop_rule, settings.half_window)
    start = time.perf_counter()
    try:
        stream = cycle(batches)
        for step in range(settings.steps):
            if stop.is_set():
                finding.stopped = True
                break
            lr = settings.lr_at(step)
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            X, y = next(stream)
            loss_sum, _ = train_step(model, optimizer, to_device(X, device), y.to(device), reduction, micro_batch,
                                     precision)
            loss = loss_sum / len(y)
            finding.lrs.append(lr)
            finding.losses.append(loss)
            ends = watch.add(loss)
            if callback is not None:
                callback(LrStep(step + 1, settings.steps, lr, loss, watch.tail))
            if ends:
                finding.diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        restore_random_states(saved_random)
    finding.seconds = time.perf_counter() - start
    finite = [(lr, loss) for lr, loss in zip(finding.lrs, finding.losses, strict=True) if math.isfinite(loss)]
    finding.lrs, finding.losses = [lr for lr, _ in finite], [loss for _, loss in finite]
    finding.passes = len(finding.lrs) / max(1, len(batches))
    return read_curve(finding, settings)


class FeatureBatches:
    """Cached features and labels in batches, reshuffled by a generator of their own on every pass."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.features, self.labels, self.batch_size = features, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.labels), generator=self.generator).to(self.labels.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.features[idx], self.labels[idx]


def find_output_layer_lr(config: TrainConfig, settings: FinderSettings, device: torch.device,
                         callback: Callable[[LrStep], None] | None = None,
                         stop: threading.Event | None = None) -> LrFinding:
    """The range test over the output layer alone, on the features the frozen copied layers compute once per
    training photo (through the test transform, as the output-layer epochs see them)."""
    data = make_run_data(dataclasses.replace(config, head_views=0), device, feature_batch_size(device),
                         measured=False)
    model, _ = make_model(config, data.splits.classes, device, 1)
    extracted = extract_features(model, config.arch, data.train_plain, device,
                                 resolve_precision(config.precision, device), stop)
    if extracted is None:
        return LrFinding(steps=settings.steps, stopped=True, loss_reduction=config.loss_reduction,
                         output_layer_only=True, note="stopped before the features were computed")
    layer = output_layer(model, config.arch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=config.head_lr, weight_decay=config.weight_decay)
    batches = FeatureBatches(*extracted, config.batch_size, config.seed)
    # as training counts an output-layer epoch: every photo and each of its augmented views
    run_steps = config.head_epochs * math.ceil(len(batches.labels) * (1 + config.head_views) / config.batch_size)
    finding = range_test(layer, optimizer, batches, device, settings, config.loss_reduction, 0, "fp32", callback,
                         stop, base_lr=config.lr, run_steps=run_steps, output_layer_only=True)
    return finding


def find_lr(config: TrainConfig, settings: FinderSettings | None = None,
            callback: Callable[[LrStep], None] | None = None, stop: threading.Event | None = None) -> LrFinding:
    """The range test on `config`'s recipe and training photos, with a model of its own (the random state is left
    as it was): over every trainable layer, or over the output layer alone on cached features where the recipe
    trains only that layer."""
    settings = settings or FinderSettings()
    check_request(config, settings)
    saved_random = random_states()
    try:
        torch.manual_seed(config.seed)
        device = resolve_devices(config.device)[0]
        if trains_output_layer_only(config):
            finding = find_output_layer_lr(config, settings, device, callback, stop)
        else:
            precision = training_precision(config, device)
            micro = micro_batch_size(config, device, precision)
            # the full epochs' training batches only: no held-out photos, no cached-feature views
            data = make_run_data(dataclasses.replace(config, head_epochs=0, head_views=0), device,
                                 config.batch_size, measured=False)
            model, _ = make_model(config, data.splits.classes, device, math.ceil(config.batch_size / micro))
            optimizer = make_optimizer(model, config)
            finding = range_test(model, optimizer, data.train, device, settings, config.loss_reduction, micro,
                                 precision, callback, stop, base_lr=config.lr,
                                 run_steps=config.epochs * len(data.train))
    finally:
        restore_random_states(saved_random)
    finding.batch_size = config.batch_size
    finding.config = config.to_dict()
    return finding


