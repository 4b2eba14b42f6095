"""The local backend: one per server, it admits runs to child processes of this machine by capacity and memory,
first in, first out (runs/backend.py is the contract it keeps).

By default one run trains at a time on a CPU machine. On a GPU machine runs are packed: each starts on the GPU
(or GPUs) with the most free memory once its estimate (memory.estimate_gpu_bytes) fits there, read with
torch.cuda.mem_get_info, less what runs started there but not yet training will take; up to one run per core.
$FTCORE_MAX_RUNS caps the runs on either kind of machine. A run also waits until the host memory it is estimated
to need (ftcore.train.memory) is free; a run that could never fit on this machine is refused when it is submitted,
with a sentence naming what to lower. Each admitted run gets an equal share of the cores (its PyTorch threads),
so concurrent runs do not oversubscribe them.
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
from .process import PROCS_ENV, ProcessJob, ordinal
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
        """The run's estimated memory in bytes; FtcoreError naming what to lower when it could never fit here (in
        the machine's memory, or on the largest GPU)."""
        if not self.check_memory:
            return 0
        self.check_fits_a_gpu(config, self._procs(config))
        need, total = memory.estimate_run_bytes(config), memory.total_bytes()
        if need > NEVER_FITS_SHARE * total:
            raise FtcoreError(memory.too_big_message(config, need, total))
        return need

    def check_fits_a_gpu(self, config: TrainConfig, procs: int = 1) -> int:
        """Bytes each of the run's processes needs on its GPU (0 without GPUs); FtcoreError naming what to lower
        when no GPU here is large enough."""
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

    def position(self, job: ProcessJob) -> int | None:
        """1 for the next run to start, 2 for the one after it...; None when not queued (runs submitted together
        share their place)."""
        with self._lock:
            return self._queue.place(job)

    def queue_note(self, job: ProcessJob) -> str:
        """The queued job's place and what it waits for, in one line."""
        with self._lock:
            if job not in self._queue:
                return "starting"
            place = self._queue.place(job)
            running = self._groups_running()
            need = sum(other.estimate for other in self._queue if other.group == job.group)
        if place > 1:
            return f"queued: {ordinal(place)} in line; starts when the {place - 1} run(s) before it have started"
        if running >= self.slots:
            return (f"queued: next in line; starts when one of the {running} run(s) training now ends "
                    f"({self.slots} at a time on this server, ${SLOTS_ENV})")
        gpu_need = sum(other.gpu_estimate for other in self._queue if other.group == job.group)
        if gpu_need:
            room = max(self._gpu_room(), default=0)
            return (f"queued: next in line; starts when a GPU has {gpu_need / 1e9:.1f} GB free (the most any has now "
                    f"is {max(room, 0) / 1e9:.1f} GB)")
        free = self._free_bytes()
        return (f"queued: next in line; starts when {need / 1e9:.1f} GB of memory is free ({max(free, 0) / 1e9:.1f} "
                "GB is now)")

    def shutdown(self) -> None:
        """Cancel the queue and ask every running run to stop (at exit: they end after their batch, keeping
        their last epoch's state to resume from)."""
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
        """Bytes free on each GPU now, less the estimates of the runs started there that have not trained a batch
        yet (their memory is not taken yet; a training run's is in the free figure)."""
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
        """Launch the next job in line (one, or a group submitted together) if a slot, their GPUs and their memory
        are free now; a group shares its slot's cores."""
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
