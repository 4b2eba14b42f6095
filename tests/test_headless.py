"""ftcore is the headless engine: every module imports with Streamlit made unimportable, and none of them, nor the
local backend, imports Ray (an extra only the cluster backend needs)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

PROBE = """
import importlib, pkgutil, sys
sys.modules["streamlit"] = None  # any `import streamlit` now raises ImportError
import ftcore
names = sorted(m.name for m in pkgutil.walk_packages(ftcore.__path__, "ftcore.") if m.name != "ftcore.__main__")
for name in names:
    importlib.import_module(name)
assert not any(key == "streamlit" or key.startswith("streamlit.") for key in sys.modules if sys.modules[key])
from ftcore.runs.local import LocalBackend
LocalBackend()
assert "ray" not in sys.modules  # Ray is imported only where a run goes to a cluster
print(len(names))
"""


def test_every_ftcore_module_imports_without_streamlit_and_the_local_backend_without_ray():
    # a fresh interpreter: this one has imported Streamlit for the app tests
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 30  # every module was tried, not an empty package


def test_the_installed_package_holds_every_subpackage():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = sorted(".".join(("ftcore", *init.parent.relative_to(REPO / "ftcore").parts))
                   for init in (REPO / "ftcore").rglob("__init__.py"))
    assert sorted(declared) == found


def test_the_installed_package_holds_every_data_file_the_engine_reads():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    found = {}
    for path in (REPO / "ftcore").rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc"):
            package = ".".join(("ftcore", *path.parent.relative_to(REPO / "ftcore").parts))
            found.setdefault(package, []).append(path.name)
    assert {package: sorted(names) for package, names in found.items()} == \
        {package: sorted(names) for package, names in declared.items()}


def test_the_package_declares_what_ftcore_imports_and_an_ftcore_command():
    import ast
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"ftcore": "ftcore.cli.main:main"}
    extras = [d for group in project["optional-dependencies"].values() for d in group]  # onnx: `export` only
    declared = {d.split(">")[0].split("=")[0].split(";")[0].split("[")[0].strip().lower()
                for d in project["dependencies"] + extras}
    distribution = {"PIL": "pillow", "sklearn": "scikit-learn"}  # import name -> the distribution that provides it
    imported = set()
    for path in (REPO / "ftcore").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            imported |= {name.split(".")[0] for name in names}
    third_party = {name for name in imported - set(sys.stdlib_module_names) if name != "ftcore"}
    assert {distribution.get(name, name).lower() for name in third_party} <= declared, third_party
