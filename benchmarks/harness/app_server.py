"""The dashboard on a loopback port, for the browser tests and the load benchmarks alike.

Not run on its own: `with app_server(cache, log) as url:` in tests/test_browser*.py, benchmarks.load.cold_start,
benchmarks.load.classroom and benchmarks.load.class_split.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # benchmarks/harness/ -> the checkout
START_SECONDS = 120  # a cold start on two busy cores


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(cache: Path, log: Path, env: dict[str, str] | None = None,
               script: Path = REPO / "streamlit_app.py") -> Iterator[str]:
    """`streamlit run streamlit_app.py` (or `script`) on a loopback port with FTCORE_CACHE=cache (its output in
    `log`); yields its URL once healthy, and ends it on exit. Raises RuntimeError, with the log, when it does not
    start."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script.name, "--server.headless",
                                 "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                                 "--browser.gatherUsageStats", "false"],
                                cwd=script.parent, env={**os.environ, **(env or {}), "FTCORE_CACHE": str(cache)},
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
