"""Several processes, one model: DistributedDataParallel when launched by `torchrun`.

`torchrun --nproc_per_node=N -m ftcore train ...` starts N copies of the CLI with RANK, WORLD_SIZE and
LOCAL_RANK set. Each process trains on its own share of every batch (the book's 128 images split N ways),
DDP averages the gradients, and the metrics are summed across processes so every rank reports the same
epoch. Only rank 0 prints and writes the checkpoint. CPUs talk over gloo, GPUs over nccl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import FtcoreError


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """True on the rank that prints and writes files."""
        return self.rank == 0


SINGLE = DistContext(0, 1, 0)


def launched_by_torchrun() -> bool:
    """True when the environment describes more than one process (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_rank() -> int:
    """This process's rank as torchrun launched it (0 without torchrun), known before the process group is joined."""
    return int(os.environ.get("RANK", "0"))


def context() -> DistContext:
    """This process's rank and world size: SINGLE unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return SINGLE


def setup(device_spec: str) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun described (once) and pick this rank's device: its own GPU
    (cuda:LOCAL_RANK) unless `device_spec` asks for the CPU or no GPU exists."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_spec.strip().lower() not in ("cpu",)
    if device_spec.strip().lower().startswith("cuda:"):
        raise FtcoreError("under torchrun each process takes the GPU of its LOCAL_RANK; pass --device auto, "
                          "cuda or cpu, not a single cuda:N")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return context(), device


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of `values` over every rank (the values themselves on a single process)."""
    if context().world_size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's `values` on every rank (the values themselves on a single process)."""
    if context().world_size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers of `module` to every rank."""
    if context().world_size == 1:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def shard(indices: torch.Tensor, ctx: DistContext, pad: bool) -> torch.Tensor:
    """This rank's share of `indices`: every world_size-th one from its rank. With `pad` the list is first
    extended with its own start so all ranks get the same count (as DistributedSampler does), which keeps
    the number of steps, and so the collective calls, equal across ranks."""
    if ctx.world_size == 1:
        return indices
    if pad and len(indices) % ctx.world_size:
        extra = ctx.world_size - len(indices) % ctx.world_size
        indices = torch.cat([indices, indices[:extra]])
    return indices[ctx.rank::ctx.world_size]


def teardown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
