"""Load benchmarks: the dashboard served by one Streamlit server and driven through Chromium (Playwright), timed as a
student sees it.

- `cold_start`: a newcomer's first minute, a cold server until the Train page and the explorer are usable;
- `classroom` (a package: driver, measure, report): a class of browser sessions pressing Start at once on one
  server, page latency idle and under load, throughput and memory;
- `class_split`: what slows the pages during a class, the class's polling tabs or the run training beside them.

    python -m benchmarks.load.cold_start --help
    python -m benchmarks.load.classroom --help
    python -m benchmarks.load.class_split --help
"""
