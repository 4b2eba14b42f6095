"""ftcore is the headless engine: every module imports with Streamlit made unimportable."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PROBE = """
import importlib, pkgutil, sys
sys.modules["streamlit"] = None  # any `import streamlit` now raises ImportError
import ftcore
names = sorted(m.name for m in pkgutil.iter_modules(ftcore.__path__) if m.name != "__main__")
for name in names:
    importlib.import_module("ftcore." + name)
assert not any(key == "streamlit" or key.startswith("streamlit.") for key in sys.modules if sys.modules[key])
print(len(names))
"""


def test_every_ftcore_module_imports_without_streamlit():
    # a fresh interpreter: this one has imported Streamlit for the app tests
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 30  # every module was tried, not an empty package
