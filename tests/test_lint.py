"""What CI checks besides the tests, as tests of the suite, so that the README's one test command runs it all:
`ruff check .` (style, imports sorted, no unused names) and `lint-imports` (the import contracts in pyproject.toml:
imports flow one way, from the pages down to the engine's leaves, with no circles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def tool(name: str) -> str:
    """The tool installed beside this interpreter (a virtual environment's own), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the test tools: pip install -r requirements-test.txt")
    return found


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["lint-imports"]], ids=["ruff", "lint-imports"])
def test_the_code_passes_its_linters(command):
    done = subprocess.run([tool(command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
