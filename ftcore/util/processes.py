"""Child processes of the lab's own (a run, the photo check): the standard library's fork server they are forked
from, and how a forked child takes on its parent's environment and umask of the moment."""

from __future__ import annotations

import multiprocessing
import os

# The fork server (None where a platform has none): a forked child skips importing what the server preloaded.
FORKSERVER = multiprocessing.get_context("forkserver") if "forkserver" in multiprocessing.get_all_start_methods() \
    else None


def take_on(environment: dict[str, str], umask: int) -> None:
    """In a forked child: the parent's environment and umask of when it asked for the child, not the fork server's
    of when it started (private files stay private; a changed cache folder is the one written to)."""
    os.umask(umask)
    os.environ.clear()
    os.environ.update(environment)
