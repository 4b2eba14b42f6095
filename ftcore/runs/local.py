"""The local backend: one per server, it admits runs to child processes of this machine, first in, first out, once a
slot, their host memory (train.memory) and, on GPU machines, a GPU with room for their estimate are free; each
admitted run gets an equal share of the cores. Why: docs/architecture.md, "Runs as processes".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import FtcoreError
from ..train import memory
from ..util.paths import cache_dir
from .process import PROCS_ENV, ProcessJob
from .queue import QueueingBackend
from .worker import THREADS_ENV

SLOTS_ENV = "FTCORE_MAX_RUNS"  # runs trained at once (default: one per core on a GPU machine, else one)
NEVER_FITS_SHARE = 0.9  # a run whose estimate exceeds this share of the machine's memory is refused outright


def default_slots() -> int:
    """$FTCORE_MAX_RUNS, else one per core on a GPU machine (their GPU memory decides), else one."""
    value = os.environ.get(SLOTS_ENV, "").strip()
    if value:
        try:
            slots = int(value)
        except ValueError:
            raise FtcoreError(f"{SLOTS_ENV} must be a whole number of runs (got {value!r}); unset it or set e.g. 2") \
                from None
        if slots < 1:
            raise FtcoreError(f"{SLOTS_ENV} must be at least 1 (got {slots})")
        return slots
    return (os.cpu_count() or 1) if torch.cuda.device_count() else 1


class LocalBackend(QueueingBackend):
    """Queues ProcessJobs and launches them as capacity and memory allow, as child processes of this machine."""

    def __init__(self, slots: int | None = None, check_memory: bool = True,
                 gpu_memory: Callable[[int], tuple[int, int]] | None = None):
        super().__init__()
        self.slots = slots or default_slots()
        self.check_memory = check_memory
        self.gpus = torch.cuda.device_count()
        self.gpu_memory = gpu_memory or torch.cuda.mem_get_info  # GPU index -> (free, total) bytes
        self._gpus_of: dict[str, list[int]] = {}  # a started job's id -> the GPUs it was given

    # ---- what the server calls

    def check_fits(self, config: TrainConfig) -> int:
        """The run's estimated memory in bytes; FtcoreError naming what to lower when it could never fit here."""
        if not self.check_memory:
            return 0
        self.check_fits_a_gpu(config, self._procs(config))
        need, total = memory.estimate_run_bytes(config), memory.total_bytes()
        if need > NEVER_FITS_SHARE * total:
            raise FtcoreError(memory.too_big_message(config, need, total))
        return need

    def check_fits_a_gpu(self, config: TrainConfig, procs: int = 1) -> int:
        """Bytes each of the run's processes needs on its GPU (0 without GPUs); FtcoreError when none is big enough."""
        if not self.gpus or not self.check_memory or config.device == "cpu":
            return 0
        need, largest = memory.estimate_gpu_bytes(config, procs), max(self.gpu_memory(i)[1] for i in range(self.gpus))
        if need > largest:
            raise FtcoreError(memory.too_big_for_gpu_message(config, need, largest))
        return need

    def _procs(self, config: TrainConfig, max_procs: int = sys.maxsize) -> int:
        """Processes a run alone gets: $FTCORE_WORKER_PROCS, else one per GPU for device auto, else one."""
        procs = int(os.environ.get(PROCS_ENV, 0)) or (self.gpus if config.device == "auto" and self.gpus > 1 else 1)
        return min(procs, max_procs)

    def size(self, job: ProcessJob, together: int) -> None:
        """Its processes (one each where several share a slot), its memory, and its GPU memory per process."""
        job.procs = self._procs(job.config, job.max_procs) if together == 1 else 1
        job.estimate = self.check_fits(job.config)
        job.gpu_estimate = self.check_fits_a_gpu(job.config, job.procs)

    def waits_for(self, job: ProcessJob) -> str:
        """What the next run in line waits for: a slot, a GPU with room, or memory; under the lock."""
        group, running = [other for other in self._queue if other.group == job.group], self._groups_running()
        if running >= self.slots:
            return (f"one of the {running} run(s) training now ends ({self.slots} at a time on this server, "
                    f"${SLOTS_ENV})")
        if need := sum(other.gpu_estimate for other in group):
            room = max(self._gpu_room(), default=0)
            return f"a GPU has {need / 1e9:.1f} GB free (the most any has now is {max(room, 0) / 1e9:.1f} GB)"
        need, free = sum(other.estimate for other in group), self._free_bytes()
        return f"{need / 1e9:.1f} GB of memory is free ({max(free, 0) / 1e9:.1f} GB is now)"

    def shutdown(self) -> None:
        """Cancel the queue and ask every running run to stop after its batch, keeping its state to resume from."""
        super().shutdown()
        for job in self.running():
            job.terminate()

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go: <cache>/lr-finder."""
        return cache_dir() / "lr-finder"

    # ---- the admitting thread

    def _free_bytes(self) -> int:
        """Memory available now, less what the runs that are still growing will take."""
        reserved = sum(max(0, job.estimate - job.rss_bytes()) for job in self._running.values())
        return memory.available_bytes() - reserved

    def _groups_running(self) -> int:
        """Slots in use: the running jobs, each group submitted together counted once; under the lock."""
        return len({job.group for job in self._running.values()})

    def _gpu_room(self) -> list[int]:
        """Bytes free on each GPU now, less the estimates of runs started there that have not trained a batch yet."""
        room = [self.gpu_memory(gpu)[0] for gpu in range(self.gpus)]
        for job in self._running.values():
            if not job.started_training():
                for gpu in self._gpus_of.get(job.id, []):
                    room[gpu] -= job.gpu_estimate
        return room

    def _gpus_for(self, jobs: list[ProcessJob], want: int) -> list[int] | None:
        """The `want` GPUs with the most room where each fits the group's estimate; None while too few do."""
        need = sum(job.gpu_estimate for job in jobs)
        room = self._gpu_room()
        fitting = sorted((gpu for gpu in range(self.gpus) if room[gpu] >= need), key=lambda gpu: -room[gpu])
        return fitting[:want] if len(fitting) >= want else None

    def _admit_next(self) -> bool:
        """Launch the next job in line (or group) where a slot, their GPUs and their memory are free now."""
        jobs = self._queue.next_group()
        if self._groups_running() >= self.slots:
            return False
        want = max(max(1, job.procs) for job in jobs)  # a group shares its slot's GPUs as it shares its cores
        on_gpus = self.gpus and any(job.config.device != "cpu" for job in jobs)
        gpus = self._gpus_for(jobs, want) if on_gpus else []
        if gpus is None:
            return False
        if self.check_memory and sum(job.estimate for job in jobs) > self._free_bytes():
            return False
        env = {THREADS_ENV: str(max(1, (os.cpu_count() or 1) // self.slots // len(jobs)))}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        self._queue.take(jobs)
        for job in jobs:
            job.launch(env)
            self._running[job.id], self._gpus_of[job.id] = job, gpus
        return True
