"""The transcription of the book's loop: its step by hand, its loop on tiny data, its optimiser groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ftcore.lab import reference
from ftcore.models.build import build_model


def test_train_batch_is_the_book_sgd_step_on_the_summed_loss():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    X, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    lr, wd = 0.1, 0.001
    trainer = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=wd)
    loss = nn.CrossEntropyLoss(reduction="none")
    summed, correct = reference.train_batch_ch13(net, X, y, loss, trainer, [torch.device("cpu")])
    # by hand: d(sum of cross-entropies)/d logits = softmax - one_hot, summed over the batch
    logits = X @ w0.T + b0
    residual = torch.softmax(logits, 1) - nn.functional.one_hot(y, 2).float()
    grad_w, grad_b = residual.T @ X, residual.sum(0)
    assert summed == pytest.approx(float(nn.functional.cross_entropy(logits, y, reduction="sum")), rel=1e-5)
    assert correct == float((logits.argmax(1) == y).sum())
    assert torch.allclose(net.weight, w0 - lr * (grad_w + wd * w0), atol=1e-6)
    assert torch.allclose(net.bias, b0 - lr * (grad_b + wd * b0), atol=1e-6)


def test_book_transforms_match_the_article():
    train_augs, test_augs = reference.book_transforms()
    names = [type(t).__name__ for t in train_augs.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert [type(t).__name__ for t in test_augs.transforms] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert list(test_augs.transforms[0].size) == [256, 256] and test_augs.transforms[1].size == (224, 224)


def test_train_fine_tuning_runs_the_book_loop_and_reports_each_epoch(tiny_data, monkeypatch):
    groups = []
    real_sgd = torch.optim.SGD

    def spy(params, **kwargs):
        optimizer = real_sgd(params, **kwargs)
        groups.extend((len(g["params"]), g["lr"], g["weight_decay"]) for g in optimizer.param_groups)
        return optimizer

    monkeypatch.setattr(torch.optim, "SGD", spy)
    torch.manual_seed(0)
    net, _ = build_model("resnet18", 2, pretrained=False)
    seen = []
    epochs = reference.train_fine_tuning(net, str(tiny_data), "resnet18", 1e-3, batch_size=8, num_epochs=2,
                                         image_size=32, on_epoch=seen.append)
    assert seen == epochs and [e.epoch for e in epochs] == [1, 2]
    assert all(e.examples == 32 and 0 <= e.test_acc <= 1 and e.seconds > 0 for e in epochs)
    assert all(e.wall_seconds >= e.seconds and e.eval_seconds > 0 for e in epochs)
    # the book's groups: every layer but fc at lr, fc (weight and bias) at 10x lr, weight decay 0.001 on both
    assert groups == [(60, 1e-3, 0.001), (2, pytest.approx(1e-2), 0.001)]
