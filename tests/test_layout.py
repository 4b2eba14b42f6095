"""The house rules a newcomer relies on: few modules at ftcore's top, none too long, a docstring saying what each
folder owns, no import circles (function-local and TYPE_CHECKING imports included), and a reason beside every
function-local import. `lint-imports` (in .ci/run) checks the layers themselves."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from conftest import REPO

ENGINE, GLUE, PAGES = REPO / "ftcore", REPO / "app", REPO / "app_pages"
MAX_TOP_LEVEL_MODULES = 8
MAX_ENGINE_LINES, MAX_GLUE_LINES, MAX_PAGE_LINES = 500, 300, 300


def module_name(path: Path) -> str:
    """`ftcore/train/loop.py` -> ftcore.train.loop; a package's __init__ is the package."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files() -> list[Path]:
    return sorted([*ENGINE.rglob("*.py"), *GLUE.glob("*.py"), *PAGES.glob("*.py")])


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every module of `known` that `path` imports, wherever the import statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {target for target in targets if target in known and target != name}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_ftcore_keeps_few_modules_at_its_top():
    top = sorted(path.name for path in ENGINE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize(("files", "limit"), [(ENGINE.rglob("*.py"), MAX_ENGINE_LINES),
                                               (GLUE.glob("*.py"), MAX_GLUE_LINES),
                                               ([*PAGES.glob("*.py"), REPO / "streamlit_app.py"], MAX_PAGE_LINES)],
                         ids=["engine", "glue", "pages"])
def test_no_module_is_too_long_to_read(files, limit):
    lengths = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in files}
    assert {path: n for path, n in lengths.items() if n > limit} == {}


def test_every_folder_of_the_engine_says_what_it_owns_and_imports_nothing():
    for init in ENGINE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), init
        assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body), init  # stays light


def test_no_module_imports_one_that_imports_it_back_even_inside_a_function():
    files = python_files()
    known = {module_name(path) for path in files}
    graph = {module_name(path): imported_modules(path, known) for path in files}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_function_local_import_says_why_it_is_there():
    # kept only to keep torch, Ray, Streamlit (or an optional package) off a path that must stay light
    unexplained = []
    for path in [*python_files(), REPO / "streamlit_app.py"]:
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    first = node.lineno - 1  # a block of imports shares the comment above it
                    while first > 0 and lines[first - 1].strip().startswith(("from ", "import ")):
                        first -= 1
                    if "#" not in lines[node.lineno - 1] and not lines[first - 1].strip().startswith("#"):
                        unexplained.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert unexplained == []


def test_the_loop_takes_a_plan_not_what_fit_already_resolved():
    from ftcore.lr_find.range_test import range_test
    from ftcore.train.head import train_output_layer
    from ftcore.train.loop import finish_run, train_full_epoch, train_one_epoch

    for function in (train_one_epoch, train_full_epoch, train_output_layer, finish_run, range_test):
        parameters = inspect.signature(function).parameters
        assert "plan" in parameters and len(parameters) <= 9, function.__name__
        assert not {"device", "micro", "micro_batch", "precision", "config"} & set(parameters), function.__name__
    assert list(inspect.signature(train_one_epoch).parameters) == ["net", "loader", "optimizer", "plan", "epoch",
                                                                   "stop", "sink"]
