"""Choosing the devices to train on, the way d2l's `try_all_gpus` does, plus MPS."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import torch

from .archs import get_arch
from .config import CPU_DEVICES, PRECISIONS
from .errors import FtcoreError

if TYPE_CHECKING:
    from .config import TrainConfig


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


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings measure compute, not launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# Kernel caps a benchmark can run under, to time this machine as a CPU without AVX-512 or bf16 would run:
# ATen's vectorised kernels and oneDNN's convolutions both stop at AVX2 (and bf16 is then not native).
ISA_CAPS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
ONEDNN_PROBE = "import torch; torch.nn.functional.conv2d(torch.randn(2, 16, 16, 16), torch.randn(16, 16, 3, 3))"


def onednn_isa(env: dict[str, str] | None = None) -> str:
    """The instruction set oneDNN's CPU kernels use in a process with `env` (e.g. "Intel AVX2"), as oneDNN itself
    reports it; "unknown" where it does not say."""
    env = {**(os.environ if env is None else env), "ONEDNN_VERBOSE": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], capture_output=True, text=True, env=env,
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return next((line.split("isa:", 1)[1].strip() for line in out.splitlines() if "isa:" in line), "unknown")


def training_precision(config: TrainConfig, device: torch.device) -> str:
    """The arithmetic every layer trains in: the config's, and under "auto" bf16 only where the device has it
    natively and the architecture keeps its accuracy in it (archs.ArchSpec.bf16_training)."""
    precision = resolve_precision(config.precision, device)
    return precision if config.precision != "auto" or get_arch(config.arch).bf16_training else "fp32"
