"""The arithmetic a run computes in: fp32 (the book's), or bf16 autocast where the device runs it natively."""

from __future__ import annotations

import contextlib

import torch

from ..archs import get_arch
from ..config import PRECISIONS, TrainConfig
from ..errors import FtcoreError


def native_bf16(device: torch.device) -> bool:
    """True when `device` computes in bf16 natively (so autocast to bf16 is faster, not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" becomes bf16 where `device` has native bf16 and fp32 elsewhere; fp32 and bf16 stay."""
    if precision not in PRECISIONS:
        raise FtcoreError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for `precision` on `device` (a no-op for fp32)."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def training_precision(config: TrainConfig, device: torch.device) -> str:
    """The arithmetic every layer trains in: the config's, and under "auto" bf16 only where the device has it
    natively and the architecture keeps its accuracy in it (archs.ArchSpec.bf16_training)."""
    precision = resolve_precision(config.precision, device)
    return precision if config.precision != "auto" or get_arch(config.arch).bf16_training else "fp32"
