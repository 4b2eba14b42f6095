"""The book's training loop, transcribed: d2l's `train_fine_tuning` + `train_ch13`, as plain PyTorch.

This is the baseline every speed claim in the benchmark is measured against, so it stays as the book wrote
it: ImageFolder + DataLoader with default settings (no workers, the PIL loader, decoding every epoch),
NCHW float32, the loss summed over the batch, SGD with weight decay 0.001 and the output layer at 10x lr,
evaluation after every epoch, and the book's timer around each batch. Only three things are added, none of
which changes the arithmetic: `on_epoch` reports each epoch, the model comes from `models.build.build_model`
(the same steps as the book: torchvision model, ImageNet weights, new Linear with Xavier init), and
`limit` cuts the data for quick benchmarks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from ..archs import get_arch
from ..data.dataset import limit_per_class
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ReferenceEpoch:
    """What train_ch13 prints for an epoch, plus the timings the benchmark compares."""

    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    examples: int
    seconds: float  # the book's timer: the batches' train_batch_ch13 calls only
    wall_seconds: float  # the whole epoch's training pass, data loading included
    eval_seconds: float  # evaluate_accuracy_gpu over the test split


def try_all_gpus() -> list[torch.device]:
    """d2l.try_all_gpus: every CUDA GPU, else the CPU."""
    devices = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    return devices if devices else [torch.device("cpu")]


def book_transforms(image_size: int = 224) -> tuple[torchvision.transforms.Compose, torchvision.transforms.Compose]:
    """The book's train_augs and test_augs (224 and 256 scaled together when image_size differs)."""
    T = torchvision.transforms
    normalize = T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))
    resize = round(image_size * 256 / 224)
    train_augs = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    test_augs = T.Compose([T.Resize([resize, resize]), T.CenterCrop(image_size), T.ToTensor(), normalize])
    return train_augs, test_augs


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """d2l.accuracy: the number of correct predictions."""
    return float((y_hat.argmax(axis=1).type(y.dtype) == y).type(y.dtype).sum())


def evaluate_accuracy_gpu(net: nn.Module, data_iter, device: torch.device | None = None) -> float:
    """d2l.evaluate_accuracy_gpu."""
    net.eval()
    if device is None:
        device = next(iter(net.parameters())).device
    correct, total = 0.0, 0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += accuracy(net(X), y)
            total += y.numel()
    return correct / total


def train_batch_ch13(net: nn.Module, X: torch.Tensor, y: torch.Tensor, loss, trainer, devices) -> tuple[float, float]:
    """d2l.train_batch_ch13: one SGD step on the summed loss; returns (summed loss, correct)."""
    X, y = X.to(devices[0]), y.to(devices[0])
    net.train()
    trainer.zero_grad()
    pred = net(X)
    losses = loss(pred, y)
    losses.sum().backward()
    trainer.step()
    return float(losses.detach().sum()), accuracy(pred, y)


def train_ch13(net: nn.Module, train_iter, test_iter, loss, trainer, num_epochs: int, devices: list[torch.device],
               on_epoch: Callable[[ReferenceEpoch], None] = lambda e: None) -> list[ReferenceEpoch]:
    """d2l.train_ch13 without the plot: returns every epoch's metrics, as reported to `on_epoch`."""
    if devices[0].type == "cuda":
        net = nn.DataParallel(net, device_ids=devices).to(devices[0])
    else:
        net = net.to(devices[0])  # what DataParallel does on a machine without CUDA
    epochs = []
    for epoch in range(num_epochs):
        loss_sum = acc_sum = n = 0.0
        seconds = 0.0
        wall_start = time.perf_counter()
        for features, labels in train_iter:
            start = time.perf_counter()
            batch_loss, batch_acc = train_batch_ch13(net, features, labels, loss, trainer, devices)
            seconds += time.perf_counter() - start
            loss_sum, acc_sum, n = loss_sum + batch_loss, acc_sum + batch_acc, n + labels.numel()
        wall = time.perf_counter() - wall_start
        start = time.perf_counter()
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        record = ReferenceEpoch(epoch + 1, loss_sum / n, acc_sum / n, test_acc, int(n), seconds, wall,
                                time.perf_counter() - start)
        epochs.append(record)
        on_epoch(record)
    return epochs


def train_fine_tuning(net: nn.Module, data_dir: str, arch: str, learning_rate: float, batch_size: int = 128,
                      num_epochs: int = 5, param_group: bool = True, image_size: int = 224, limit: int | None = None,
                      on_epoch: Callable[[ReferenceEpoch], None] = lambda e: None,
                      devices: list[torch.device] | None = None) -> list[ReferenceEpoch]:
    """d2l's train_fine_tuning: the book's data, loss and optimiser, then train_ch13 (on `devices`, by default
    d2l.try_all_gpus())."""
    train_augs, test_augs = book_transforms(image_size)
    train_iter = torch.utils.data.DataLoader(limit_per_class(torchvision.datasets.ImageFolder(
        os.path.join(data_dir, "train"), transform=train_augs), limit), batch_size=batch_size, shuffle=True)
    test_iter = torch.utils.data.DataLoader(limit_per_class(torchvision.datasets.ImageFolder(
        os.path.join(data_dir, "test"), transform=test_augs), limit), batch_size=batch_size)
    devices = devices or try_all_gpus()
    loss = nn.CrossEntropyLoss(reduction="none")
    head = get_arch(arch).head
    if param_group:
        params_1x = [param for name, param in net.named_parameters()
                     if name not in [f"{head}.weight", f"{head}.bias"]]
        trainer = torch.optim.SGD([{"params": params_1x},
                                   {"params": net.get_submodule(head).parameters(), "lr": learning_rate * 10}],
                                  lr=learning_rate, weight_decay=0.001)
    else:
        trainer = torch.optim.SGD(net.parameters(), lr=learning_rate, weight_decay=0.001)
    return train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices, on_epoch)
