"""What the benchmark scripts share, each helper in one place: the parser every script starts from, the data and the
weights they measure on, the machine line a report starts with, medians, ratios and number cells, the process's
resident memory, Chromium, and writing a report as text and JSON.

Measures nothing and is not run on its own; `python -m benchmarks.<folder>.<script>` imports it. The machine line
reads the engine's own description (ftcore.devices.machine); nothing here belongs in ftcore.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"  # the figures docs/benchmarks.md quotes
MIB = 1024**2
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's, driven through Playwright
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring's first line as the description, the `python -m` command it names as usage."""
    command = re.search(r"python -m (benchmarks(?:\.\w+)+)", doc)
    return argparse.ArgumentParser(prog=f"python -m {command[1]}" if command else None,
                                   description=doc.splitlines()[0])


def data_dir(given: str | None = None) -> str:
    """The photos to measure on: `given` (--data), else the hot-dog set wherever ftcore finds it."""
    if given:
        return given
    from ftcore.data.download import find_data  # the engine's lookup, not a copy of it

    found = find_data()
    if found is None:
        raise SystemExit("no hot-dog photos found (ftcore.data.download.find_data()); set FTCORE_DATA")
    return str(found)


def weights_path(arch: str, given: str | None = None) -> str:
    """ImageNet weights of `arch`: `given` (--weights), else the first file ftcore finds ($FTCORE_WEIGHTS first)."""
    if given:
        return given
    from ftcore.models.weights import locate_weights  # the engine's lookup, not a copy of it

    found = locate_weights(arch, None)
    if found is None or found.path is None:
        raise SystemExit(f"no ImageNet weights found for {arch}; pass --weights or set FTCORE_WEIGHTS")
    return str(found.path)


def machine_line(detail: str = "", threads: bool = False) -> str:
    """A report's first line: `# <machine>[, N threads][; detail]`."""
    # torch, through the engine's machine description: only the scripts that print the line pay for it
    import torch

    from ftcore.devices.machine import machine_description

    line = f"# {machine_description()}" + (f", {torch.get_num_threads()} threads" if threads else "")
    return f"{line}; {detail}" if detail else line


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def ratio(value: float | None, reference: float | None) -> float | None:
    """`value` over `reference`, or None where either is missing (or the reference is zero)."""
    return value / reference if value is not None and reference else None


def fmt(value: float | None, spec: str = ".1f", unit: str = "") -> str:
    """A number formatted by `spec` with its unit, or a dash for None."""
    return "-" if value is None else f"{value:{spec}}{unit}"


def mean_range(values: Sequence[float], spec: str = ".3f") -> str:
    """`mean (min-max)`, each formatted by `spec`."""
    return f"{statistics.mean(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def rss_bytes() -> int:
    """This process's resident set size now (VmRSS in /proc/self/status), in bytes; 0 where it is not listed."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def write_json(path: str | Path, data: object, indent: int = 1, end: str = "") -> None:
    """`data` as JSON at `path` (anything JSON cannot hold, as its str), followed by `end`."""
    Path(path).write_text(json.dumps(data, indent=indent, default=str) + end)


def write_report(text: str, result: object, out: Path, json_end: str = "\n", announce: bool = True) -> None:
    """Print the report, write it to `out` (its folder made if need be) and the raw numbers beside it as JSON;
    `json_end` and `announce` (a last line naming both files) keep each script's files as it always wrote them."""
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    write_json(out.with_suffix(".json"), result, indent=2, end=json_end)
    if announce:
        print(f"# wrote {out} and {out.with_suffix('.json')}")
