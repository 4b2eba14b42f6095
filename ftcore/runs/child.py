"""A run's process on this machine: forked from the standard library's fork server (which imports torch, torchvision
and the worker once, so a run skips the seconds of importing them), in a session of its own with the server's
environment and umask of the moment, its output in its folder's worker.log; or, for torchrun and where there is
no fork server, started fresh. Nothing here imports torch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..util.paths import REPO_ROOT, child_environment, current_umask
from ..util.processes import FORKSERVER, take_on
from .folder import LOG_FILE

WORKER_MODULE = "ftcore.runs.worker"  # the child process of a run: python -m WORKER_MODULE <run folder>
# What the fork server imports once, bottom up: torchvision alone brings torch's compiler stack along.
PRELOAD = ["torch", "torchvision", "torchvision.models.feature_extraction", WORKER_MODULE]
# multiprocessing runs the server's entry script again in every forked process; under `streamlit run` that script
# imports streamlit.web.cli, so the fork server imports it once too where the server has it.
ENTRY_MODULES = ["streamlit.web.cli"]


def worker_command(folder: Path, procs: int) -> list[str]:
    """A fresh child's command line: the worker itself, or torchrun with `procs` processes of it."""
    if procs > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                "-m", WORKER_MODULE, str(folder)]
    return [sys.executable, "-m", WORKER_MODULE, str(folder)]


def warm() -> None:
    """Start the fork server now, where there is one, so that the first run need not wait for its imports."""
    if FORKSERVER is not None:
        FORKSERVER.set_forkserver_preload([*PRELOAD, *(name for name in ENTRY_MODULES if name in sys.modules)])
        multiprocessing.forkserver.ensure_running()


def run_forked(folder: str, environment: dict[str, str], umask: int) -> None:
    """The forked run's process: what `Popen(python -m ftcore.runs.worker FOLDER)` would be, then the worker."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # Stop this early is read from the folder's stop file instead
    os.setsid()  # its own process group: Stop signals the run and nothing else
    take_on(environment, umask)
    os.chdir(REPO_ROOT)
    output = os.open(Path(folder) / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    for stream in (1, 2):
        os.dup2(output, stream)
    os.close(output)
    sys.argv = [sys.executable, "-m", WORKER_MODULE, folder]
    from . import worker  # here, in the forked run: the server imports this module and must not load torch

    sys.exit(worker.main([folder]))


class ChildProcess:
    """A run's process on this machine, forked (a multiprocessing.Process) or fresh (torchrun, or no fork server)."""

    def __init__(self, proc: subprocess.Popen | multiprocessing.Process):
        self.proc = proc
        self.pid = proc.pid  # the child's process id, and its process group's
        self._lock = threading.Lock()  # pages and the backend ask at once; a forked one's end is read once

    @classmethod
    def start(cls, folder: Path, procs: int, env: dict[str, str]) -> ChildProcess:
        """Launch the worker on `folder`, its output appended to the folder's worker.log."""
        environment = child_environment(env)
        if procs == 1 and FORKSERVER is not None:
            warm()
            proc = FORKSERVER.Process(target=run_forked, args=(str(folder), environment, current_umask()),
                                      name=f"run {folder.name}")
            proc.start()
            return cls(proc)
        with open(folder / LOG_FILE, "ab") as log:
            return cls(subprocess.Popen(worker_command(folder, procs), cwd=REPO_ROOT, env=environment,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))  # Ctrl-C on the server's terminal is the server's

    @property
    def forked(self) -> bool:
        """True when the run was forked from the fork server."""
        return not isinstance(self.proc, subprocess.Popen)

    def running(self) -> bool:
        """True until the child has exited."""
        with self._lock:
            return self.proc.poll() is None if isinstance(self.proc, subprocess.Popen) else self.proc.is_alive()

    def signal(self, sig: int) -> None:
        """Send `sig` to the child's process group (its torchrun workers too)."""
        if self.running():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:  # a forked run that has not led its own group yet
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass

    def rss_bytes(self) -> int:
        """Resident memory of the child now (0 when it has ended or cannot be read)."""
        if not self.running():
            return 0
        try:
            with open(f"/proc/{self.pid}/status") as f:
                line = next(line for line in f if line.startswith("VmRSS:"))
            return int(line.split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            return 0

    def lost_message(self, epoch: int, step: int) -> str | None:
        """A child that died without a word was killed on this machine: the job's own sentence says so."""
        return None
