"""Choosing the devices to train on, the way d2l's `try_all_gpus` does, plus MPS."""

from __future__ import annotations

import torch

from ..config import CPU_DEVICES
from ..errors import FtcoreError


def available_devices() -> list[str]:
    """Device names this machine can train on, `auto` first (for menus)."""
    names = list(CPU_DEVICES)
    if torch.cuda.is_available():
        names.append("cuda")
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_devices(spec: str = "auto") -> list[torch.device]:
    """Turn `auto`/`cpu`/`cuda`/`cuda:N`/`mps` into devices; `auto` is all GPUs, else MPS, else CPU."""
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            return [torch.device("mps")]
        return [torch.device("cpu")]
    if spec == "cpu":
        return [torch.device("cpu")]
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise FtcoreError("device mps is not available on this machine; use --device auto or cpu")
        return [torch.device("mps")]
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise FtcoreError(f"device {spec} is not available on this machine (no CUDA GPU); use --device auto or cpu")
        if spec == "cuda":
            return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        index = spec.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise FtcoreError(f"device {spec} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
        return [torch.device("cuda", int(index))]
    raise FtcoreError(f"unknown device {spec!r}; use one of auto, cpu, cuda, cuda:N, mps")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings measure compute, not launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
