"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's `lr_find`) on a run's own recipe.

The learning rate rises exponentially, one optimiser step at a time, from `start_lr` to `end_lr` over `steps`
steps of the run's training photos, with everything else as the run would train: architecture and mode, parameter
groups (the output layer keeps its multiple), loss reduction, batch, micro-batches, precision and device. The
loss of each step is recorded per photo (with the summed loss that is the sum over the batch divided by its
size, so sum and mean plot on one scale), then smoothed. The test ends early once the smoothed loss clearly
diverges.

The suggestion comes from one of five rules (`suggest`: fastai's four and the edge, the lab's default, chosen by
measurement), read off the smoothed curve, then raised for the run it is for (`suggest.for_the_run`: a short
run, or the output layer alone); it is in the run's own units: the lr of every layer but the output layer, for the
run's loss reduction. The finding keeps every rule's answer beside it.

The test ends early by a stop rule (`StopRule`): fastai's ends once the averaged loss passes 4x its lowest value;
this lab's default also waits until it is back above where it started, since a fine-tuning curve can fall so low
that 4x its lowest is still below where it began (on every curve measured so far both ended at the same step).

Recipes that train the output layer alone (the quick and best presets) get the same test over that layer on the
features the frozen copied layers compute once per photo, as their training does: it takes seconds.

What the test is asked and what it finds (its settings, stop rules, finding and curve file) are in
`finding`, which needs no torch.

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
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..data.run_data import make_run_data
from ..errors import FtcoreError
from ..models.output_layer import output_layer
from ..records import LrStep, Sink
from ..train.features import extract_features, feature_batch_size
from ..train.head import FeatureBatches
from ..train.loop import make_model
from ..train.optim import make_optimizer
from ..train.plan import RunPlan, plan_run, with_balance
from ..train.resume import restore_torch_generators, torch_generators
from ..train.step import to_device, train_step
from .finding import FinderSettings, LrFinding, check_request, read_curve, trains_output_layer_only
from .stop import DivergenceWatch


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


def range_test(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, plan: RunPlan,
               settings: FinderSettings, stop: threading.Event | None = None, sink: Sink | None = None, *,
               run_steps: int = 0) -> LrFinding:
    """Step `optimizer` over `batches` (cycled) with the lr rising exponentially as the plan's run would train
    (its device, loss reduction, micro-batches and arithmetic); return the curve and its suggestion. The swept lr
    stands for the run's own (`plan.config.lr`), and every parameter group keeps its ratio to it (the output layer's
    10x, even when it is the only group left); each step goes to `sink`. The suggestion is raised for the run it is
    for: `run_steps` long, training the output layer alone or every layer. The model, the optimiser and the global
    random generators end as they began (the batches' own shuffling generator moves on)."""
    settings.validate()
    stop = stop or threading.Event()
    config = plan.config
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_random = random_states()
    ratios = [group["lr"] / config.lr for group in optimizer.param_groups]
    finding = LrFinding(steps=settings.steps, loss_reduction=config.loss_reduction, run_steps=run_steps,
                        output_layer_only=trains_output_layer_only(config))
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
            loss_sum, _ = train_step(model, optimizer, to_device(X, plan.device), y.to(plan.device),
                                     config.loss_reduction, plan.micro_batch, plan.precision,
                                     class_weights=plan.class_weights)
            loss = loss_sum / len(y)
            finding.lrs.append(lr)
            finding.losses.append(loss)
            ends = watch.add(loss)
            if sink is not None:
                sink(LrStep(step + 1, settings.steps, lr, loss, watch.tail))
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


def find_output_layer_lr(plan: RunPlan, settings: FinderSettings, stop: threading.Event | None = None,
                         sink: Sink | None = None) -> LrFinding:
    """The range test over the output layer alone, on the features the frozen copied layers compute once per
    training photo (through the test transform, as the output-layer epochs see them)."""
    config, device = plan.config, plan.device
    data = make_run_data(dataclasses.replace(config, head_views=0), device, feature_batch_size(device),
                         measured=False)
    features_plan = with_balance(dataclasses.replace(plan, micro_batch=0, precision="fp32"),  # one step a batch,
                                 data.train_counts)                                            # as head epochs
    model, _ = make_model(config, data.splits.classes, features_plan)
    extracted = extract_features(model, config.arch, data.train_plain, device, plan.feature_precision, stop)
    if extracted is None:
        return LrFinding(steps=settings.steps, stopped=True, loss_reduction=config.loss_reduction,
                         output_layer_only=True, note="stopped before the features were computed")
    layer = output_layer(model, config.arch)
    optimizer = torch.optim.SGD(layer.parameters(), lr=config.head_lr, weight_decay=config.weight_decay)
    batches = FeatureBatches(*extracted, config.batch_size, config.seed, config.balance == "sampler")
    # as training counts an output-layer epoch: every photo and each of its augmented views
    run_steps = config.head_epochs * math.ceil(len(batches.labels) * (1 + config.head_views) / config.batch_size)
    return range_test(layer, optimizer, batches, features_plan, settings, stop, sink, run_steps=run_steps)


def find_lr(config: TrainConfig, settings: FinderSettings | None = None, sink: Sink | None = None,
            stop: threading.Event | None = None) -> LrFinding:
    """The range test on `config`'s recipe and training photos, with a model of its own (the random state is left
    as it was): over every trainable layer, or over the output layer alone on cached features where the recipe
    trains only that layer."""
    settings = settings or FinderSettings()
    check_request(config, settings)
    saved_random = random_states()
    try:
        torch.manual_seed(config.seed)
        plan = plan_run(config)
        if trains_output_layer_only(config):
            finding = find_output_layer_lr(plan, settings, stop, sink)
        else:
            # the full epochs' training batches only: no held-out photos, no cached-feature views
            data = make_run_data(dataclasses.replace(config, head_epochs=0, head_views=0), plan.device,
                                 config.batch_size, measured=False)
            plan = with_balance(plan, data.train_counts)
            model, _ = make_model(config, data.splits.classes, plan)
            optimizer = make_optimizer(model, config)
            finding = range_test(model, optimizer, data.train, plan, settings, stop, sink,
                                 run_steps=config.epochs * len(data.train))
    finally:
        restore_random_states(saved_random)
    finding.batch_size = config.batch_size
    finding.config = config.to_dict()
    return finding
