"""What this machine is: its CPU and GPUs in one line, and the kernels PyTorch and oneDNN run on its CPU (with
the caps that time it as a CPU without AVX-512 would run)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import torch

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


def kernels_description(isa: str) -> str:
    """Which CPU kernels a benchmark child runs under `isa`'s caps, as ATen and oneDNN report them."""
    env = {**os.environ, **ISA_CAPS[isa]}
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    aten = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.strip()
    capped = f" (capped: {' '.join(f'{k}={v}' for k, v in ISA_CAPS[isa].items())})" if ISA_CAPS[isa] else ""
    return f"kernels: ATen {aten or 'unknown'}, oneDNN {onednn_isa(env)}{capped}"


def machine_description() -> str:
    """The CPU (and GPU) this benchmark ran on, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{os.cpu_count()}-core {cpu}, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return text
