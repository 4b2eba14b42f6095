"""The check of a dataset's photos in a process of its own, for the app: a network run over every photo could take the
server down with it if memory ran out, so it runs where a crash or the system's kill costs only itself. The page
polls `done`, `total`, `report` and `error`; the report comes back through its file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from ..errors import FtcoreError
from ..util.paths import current_umask
from ..util.processes import FORKSERVER, take_on

# The fork server runs are forked from (runs.child preloads torch there once the server starts a run); spawn where a
# platform has none.
CONTEXT = FORKSERVER or multiprocessing.get_context("spawn")
POLL_SECONDS = 0.2  # how often the watching thread looks at the child


def _check_in_child(root: str, arch: str, weights: str | None, environment: dict[str, str], umask: int,
                    done, total, messages) -> None:
    """The child's work: the check, its report saved, and one message back ("" when it went well, else why not)."""
    take_on(environment, umask)
    # here, in the child: the server imports this module and must not load torch for it
    from ..devices.priority import yield_cpu
    from .check import check_dataset
    from .report import save_report

    yield_cpu()  # the pages stay quick while it runs

    def progress(count: int, of: int) -> None:
        total.value, done.value = of, count

    try:
        save_report(check_dataset(root, arch, weights, progress))
        messages.put("")
    except FtcoreError as e:
        messages.put(str(e))
    except Exception as e:  # noqa: BLE001 - the page says it; the traceback is in the server's log
        messages.put(f"the photo check stopped: {type(e).__name__}: {e}")
        raise


class CheckJob:
    """One check of one dataset with one network, running in a child process."""

    def __init__(self, root: str | Path, arch: str, weights: str | None = None) -> None:
        self.root, self.arch, self.weights = str(root), arch, weights
        self._done, self._total = CONTEXT.Value("i", 0), CONTEXT.Value("i", 0)
        self._messages = CONTEXT.SimpleQueue()
        self._process = CONTEXT.Process(target=_check_in_child, name="photo check", daemon=True,
                                        args=(self.root, arch, weights, dict(os.environ), current_umask(),
                                              self._done, self._total, self._messages))
        self.error = ""  # why the check ended without a report
        self.finished = False  # the child has ended and what it said was read
        self.started = time.monotonic()
        self.seconds = 0.0

    def start(self) -> CheckJob:
        """Start the child and the thread that waits for it; returns self."""
        self._process.start()
        threading.Thread(target=self._watch, name="photo check watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        self._process.join()
        message = self._messages.get() if not self._messages.empty() else None
        if message is None:
            code = self._process.exitcode
            self.error = ("the photo check was stopped" if code == -15 else
                          "the photo check was killed by the system (probably out of memory); close other work and "
                          "check again" if code == -9 else f"the photo check failed (exit status {code}); check again")
        else:
            self.error = message
        self.seconds = time.monotonic() - self.started
        self.finished = True

    @property
    def done(self) -> int:
        """Photos embedded (or read from the cache) so far."""
        return self._done.value

    @property
    def total(self) -> int:
        """Photos to embed (0 until the child has listed them)."""
        return self._total.value

    def stop(self) -> None:
        """End the check now; what it embedded so far is kept for the next one."""
        if self._process.is_alive():
            self._process.terminate()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the check and its watcher; True once it has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished and (deadline is None or time.monotonic() < deadline):
            time.sleep(POLL_SECONDS)
        return self.finished
