"""Batch work (a run's training, importing torch ahead of need) yields the CPU to the server and its pages."""

from __future__ import annotations

import os

NICENESS = 19  # the lowest priority a process can give itself


def yield_cpu(idle: bool = False) -> bool:
    """Lower this process, and the threads it starts later (PyTorch's), below every interactive one: the lowest
    niceness and, with `idle` where the system has it (Linux), SCHED_IDLE, which runs it only on CPU time nothing
    else wants. False when the system refused (a sandbox may): the work still runs, only without yielding."""
    try:
        os.nice(NICENESS)
        if idle and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True
