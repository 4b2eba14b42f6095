"""A warm process that forks each run's process, so that a run does not import torch and torchvision again.

A fresh `python -m ftcore.runs.worker` spends seconds of CPU importing torch and torchvision before its first batch
(docs/benchmarks.md, "Starting a run"). The fork server imports them once, at low priority, and then forks one
process per run. Nothing in it but imports happens before a fork: no tensor work, no thread pools, no CUDA, so a
forked run is in the state a fresh interpreter would reach after the same imports. Each forked run gets a
session of its own (its process group, as `start_new_session` gives), exactly the environment the server gave
it, the repository as its working folder and its folder's worker.log as stdout and stderr; then it runs
`ftcore.runs.worker.main` and exits with its status.

The server speaks to it over two pipes, a JSON line each way: {"folder", "env", "log"} in, {"pid"} or {"error"}
out, after a first line "ready" once its imports are done. Until then (and where fork or pidfds are missing, as
on macOS and Windows) runs start as fresh processes, as before. The fork server reaps its own children; the
server follows a run through a pidfd, which stays valid however the run ends.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import traceback

from ..devices.priority import yield_cpu
from ..util.paths import REPO_ROOT, child_environment

# What a run imports, bottom up: torchvision alone brings torch's compiler stack along (half the import time)
PRELOAD = ("torch", "torchvision", "torchvision.models.feature_extraction", "ftcore.runs.worker")
READY = b"ready\n"


def supported() -> bool:
    """True where runs can be forked from a warm process and followed through a pidfd (Linux)."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and sys.platform.startswith("linux")


class ForkServer:
    """The server's side: starts the warm process once, then asks it for a run's process."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._failed = False  # it ended before it was ready: runs start fresh for the rest of this process
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the warm process if it is not running (its imports take seconds; nothing waits for them)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._failed or (self._proc is not None and self._proc.poll() is None):
            return
        if self._proc is None:
            atexit.register(self._stop)
        self._proc = subprocess.Popen([sys.executable, "-m", __name__], cwd=REPO_ROOT, env=child_environment(),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      start_new_session=True)  # Ctrl-C on the server's terminal is the server's
        self._ready = False

    def _is_ready(self) -> bool:
        """True once the warm process has said it finished importing; under the lock."""
        if self._proc is None:
            return False
        if not self._ready:
            out = self._proc.stdout.fileno()
            if select.select([out], [], [], 0)[0]:
                self._ready = _read_line(out) == READY
                self._failed = not self._ready  # it could not import, or found CUDA started
        return self._ready and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The warm process's id (None before it was first started)."""
        return self._proc.pid if self._proc is not None else None

    def ready(self) -> bool:
        """True while the warm process can fork runs (it has finished importing and still lives)."""
        with self._lock:
            return self._is_ready()

    def fork(self, folder: str, env: dict[str, str], log: str) -> int | None:
        """The process id of a new run process on `folder`, or None when the warm process is not ready (still
        importing, or gone: it is started again) and the run must start as a fresh process."""
        with self._lock:
            self._ensure_started()
            if not self._is_ready():
                return None
            request = json.dumps({"folder": folder, "env": env, "log": log}).encode() + b"\n"
            try:
                self._proc.stdin.write(request)
                self._proc.stdin.flush()
                answer = json.loads(_read_line(self._proc.stdout.fileno()) or b"{}")
            except (OSError, ValueError):
                answer = {}
            if "pid" not in answer:  # it died, or could not fork: a fresh one next time
                self._stop()
                return None
            return int(answer["pid"])

    def _stop(self) -> None:
        """End the warm process (its runs go on: each leads a session of its own)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                pipe.close()
        self._ready = False


def _read_line(fd: int) -> bytes:
    """One line from a pipe, read a byte at a time so that nothing after it is consumed (b"" at its end)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line


_SERVER = ForkServer()  # one per process: the server's, the CLI's or the test session's


def warm() -> None:
    """Start this process's fork server now, where it is supported, so that the first run need not wait."""
    if supported():
        _SERVER.warm()


def ready() -> bool:
    """True while this process's fork server can fork runs."""
    return supported() and _SERVER.ready()


def fork_run(folder: str, env: dict[str, str], log: str) -> int | None:
    """A run process forked from this process's fork server (None: start it as a fresh process)."""
    return _SERVER.fork(folder, env, log) if supported() else None


# ---- the warm process itself


def serve() -> None:
    """Import what a run needs, say "ready", then fork one run per request line until the server goes away."""
    yield_cpu()  # importing is batch work, as training is: the pages come first
    for name in PRELOAD:
        importlib.import_module(name)
    import torch  # loaded by PRELOAD just now; the server that imports this module never runs serve()

    if torch.cuda.is_initialized():  # a forked run could not use the GPU: say nothing, and runs start fresh
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the runs: the server watches them by pidfd
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    answers.write(READY)
    answers.flush()
    for line in requests:
        try:
            request = json.loads(line)
            answer = {"pid": _fork(request["folder"], request["env"], request["log"])}
        except (OSError, ValueError, KeyError) as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


def _fork(folder: str, env: dict[str, str], log: str) -> int:
    """Fork the run's process; returns once it leads a session of its own (so its group can be signalled)."""
    sys.stdout.flush()
    sys.stderr.flush()
    in_session, told = os.pipe()
    pid = os.fork()
    if pid == 0:  # the run's process: it never returns from here
        os.close(in_session)
        code = 1
        try:
            os.setsid()
            os.close(told)
            _become_run_process(env, log)
            from . import worker  # here, in the forked run: the server imports this module and must not load torch

            code = worker.main([folder])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(told)
    os.read(in_session, 1)  # end of file once the child has closed its end, after setsid
    os.close(in_session)
    return pid


def _become_run_process(env: dict[str, str], log: str) -> None:
    """Give the forked process what `Popen(python -m ftcore.runs.worker)` would: its environment, signals, files."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO_ROOT)
    devnull = os.open(os.devnull, os.O_RDONLY)
    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(devnull, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(devnull)
    os.close(output)
    sys.argv = [sys.executable, "-m", "ftcore.runs.worker"]


if __name__ == "__main__":
    serve()
