"""The classroom benchmark's report: its results as the text docs/benchmarks.md quotes (the sessions' runs, the
class's throughput and memory, page latency idle and during training against the goal), beside the raw numbers
as JSON (benchmarks.common.write_report).

Run through the driver: python -m benchmarks.load.classroom [--out benchmarks/results/classroom-cpu.txt] ...
"""

from __future__ import annotations

from benchmarks.common import fmt, median, ratio
from benchmarks.load.classroom.measure import OPEN_PHASES, PAGES
from ftcore.runs.local import SLOTS_ENV

GOAL_RATIO = 1.3  # page latency during training over idle


def server_tracebacks(log: str, keep: int = 40) -> list[str]:
    """Each traceback in the server's output with the lines that follow it (at most `keep`)."""
    lines = log.splitlines()
    return ["\n".join(lines[i:i + keep]) for i, line in enumerate(lines) if line.startswith("Traceback")]


def gib(n: int | None) -> str:
    """Bytes as GiB with two decimals, or a dash for None."""
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def idle_split(lat: dict) -> str | None:
    """The idle medians of the rounds before the class and of those after it, side by side (None without both)."""
    visits, reruns = lat["idle_samples"], lat.get("idle_reruns", [])
    if not any(v.get("when") == "after" for v in visits):
        return None
    parts = []
    for name in PAGES:
        pair = [median([v["title_s"] for v in visits if v["page"] == name and v.get("when") == when])
                for when in ("before", "after")]
        parts.append(f"{name} {fmt(pair[0], '.2f')} / {fmt(pair[1], '.2f')} s")
    pair = [median([r["title_s"] for r in reruns if r.get("when") == when]) for when in ("before", "after")]
    parts.append(f"Train rerun {fmt(pair[0], '.2f')} / {fmt(pair[1], '.2f')} s")
    return ", ".join(parts)


def report(result: dict) -> str:
    """The report's text, from the raw results `classroom` returns."""
    s, c = result["settings"], result["class"]
    photos = f"{s['per_class']} images per class and split" if s["per_class"] else "all photos (the page's default)"
    lines = [f"Classroom benchmark: {s['sessions']} browser sessions press Start on Train at once, one server",
             f"machine: {result['machine']}",
             f"settings: {s['arch']} from scratch, the book's recipe, {s['epochs']} epochs, batch {s['batch_size']}, "
             f"image size {s['image_size']}, precision {s['precision']}; {photos}",
             *(["  (deviates from the page default 0 = all photos, to keep the benchmark minutes long instead of "
                "an hour)"] if s["per_class"] else []),
             *([f"measured for the first {result['stopped_at_s']:.0f} s of training, then Stop pressed on every "
                "page"] if result.get("stopped_at_s") else []),
             (f"cluster: {s['cluster_nodes']} Ray nodes on this machine, one run each at a time, the rest queued "
              "in the server first in first out; the browsers run on this machine too" if s.get("cluster_nodes") else
              f"server: {SLOTS_ENV}={s['slots']} run(s) trained at once, the rest queued first in first out; the "
              "browsers run on this machine too"),
             *([f"the class's sessions in a second browser at nice {s['class_nice']}; the latency probe's at nice 0"]
               if s.get("class_nice") else []),
             f"Start clicks: {s['sessions']} within {c['click_spread_s']:.2f} s", ""]
    header = (f"{'session':>7s}  {'run id':26s} {'wait to 1st batch':>17s} {'run time':>8s} {'examples':>8s} "
              f"{'run img/s':>9s}  {'status':9s} first status line shown after Start")
    lines += [header, "-" * len(header)]
    for row in c["sessions"]:
        run_id = (row["run_id"] or "?") + ("*" if row["mapped_by"] == "order" else "")
        lines.append(f"{row['session']:>7d}  {run_id:26s} {fmt(row['wait_to_first_batch_s'], '.1f', ' s'):>17s} "
                     f"{fmt(row['run_time_s'], '.1f', ' s'):>8s}"
                     f" {row['examples']:>8d} {fmt(row['examples_per_sec'], '.1f'):>9s}  {row['status'] or '-':9s} "
                     f"{row['first_status'] or '-'}")
    lines.append("wait to 1st batch: from the session's Start click to its first training step's end; run time: "
                 "from the run's start (data and model ready) to its end; run img/s: the run's own examples/sec "
                 "(training compute, as the book reports)")
    if any(row["mapped_by"] == "order" for row in c["sessions"]):
        lines.append("* matched to the session by start order (no checkpoint to read its id from)")
    lines.append("")
    lines.append(f"total images/sec: {fmt(c['images_per_sec'], '.2f')} ({c['examples']} training examples over "
                 f"{fmt(c['span_s'], '.1f', ' s')}, first Start click to last end)")
    solo = result.get("solo")
    if solo:
        lines.append(f"one run alone: {fmt(solo['images_per_sec'], '.2f')} images/sec ({solo['examples']} examples "
                     f"over {fmt(solo['span_s'], '.1f', ' s')}, Start click to end, of one more session started "
                     f"alone after the class; {fmt(solo['training_images_per_sec'], '.2f')} from its start; "
                     f"its wait to 1st batch {fmt(solo['wait_to_first_batch_s'], '.1f', ' s')})")
        if c["images_per_sec"] and solo["images_per_sec"]:
            lines.append(f"  class total / alone: {c['images_per_sec'] / solo['images_per_sec']:.2f}x")
    first = c.get("first_run_alone")
    if first:
        lines.append(f"first run of the class, start to end: {fmt(first['images_per_sec'], '.2f')} images/sec"
                     f" ({first['examples']} examples over {fmt(first['span_s'], '.1f', ' s')})")
    m = result["memory"]
    lines.append(f"memory used (MemTotal - MemAvailable): {gib(m['before'])} before the clicks (server and "
                 f"{s['sessions']} + 1 browser contexts up), peak {gib(m['peak'])} while training "
                 f"(+{gib(m['peak'] - m['before'])}); {gib(m['total'])} total")
    lat = result["latency"]
    lines.append("")
    lines.append("page latency, fresh page, timed in the page from the navigation's start: until a frame shows the "
                 "title (h1) [until one shows Start / the last Home link]")
    lines.append(f"{'page':6s} {'idle':>16s} {'during training':>18s} {'ratio':>14s}")
    for name in PAGES:
        idle, busy = lat["idle"][name], lat["during"][name]
        r_title, r_ready = ratio(busy["title_s"], idle["title_s"]), ratio(busy["ready_s"], idle["ready_s"])
        lines.append(f"{name:6s} {fmt(idle['title_s'], '.2f')} [{fmt(idle['ready_s'], '.2f')}] s"
                     f"{'':>3s}{fmt(busy['title_s'], '.2f')} [{fmt(busy['ready_s'], '.2f')}] s"
                     f"{'':>3s}{fmt(r_title, '.2f', 'x')} [{fmt(r_ready, '.2f', 'x')}]"
                     f"   medians of {idle['n']} / {busy['n']}")
    for name in PAGES:
        idle, busy = lat["idle"][name].get("phases", {}), lat["during"][name].get("phases", {})
        if idle:
            lines.append(f"  {name} before its title, idle -> during: " + "; ".join(
                f"{words} at {fmt(idle[f'{key}_s'], '.2f')} -> {fmt(busy.get(f'{key}_s'), '.2f')} s"
                for key, words in OPEN_PHASES.items()))
    rerun = lat.get("rerun")
    ratios = [ratio(lat["during"][n][key], lat["idle"][n][key]) for n in PAGES for key in ("title_s", "ready_s")]
    if rerun:
        r_rerun = ratio(rerun["during"], rerun["idle"])
        lines.append(f"{'Train rerun':12s} {fmt(rerun['idle'], '.2f')} s{'':>8s}{fmt(rerun['during'], '.2f')} s"
                     f"{'':>8s}{fmt(r_rerun, '.2f', 'x')}   medians of {rerun['n'][0]} / {rerun['n'][1]} "
                     "(the lr slider moved one notch on an open Train page, until a frame shows the new rate)")
        ratios.append(r_rerun)
    split = idle_split(lat)
    if split:
        lines.append(f"idle rounds before the class / after it: {split}")
    if all(r is not None for r in ratios):
        verdict = "met" if max(ratios) <= GOAL_RATIO else "not met"
        lines.append(f"goal: page open (title and late element) and rerun during training within {GOAL_RATIO}x of "
                     f"idle: {verdict} "
                     f"(worst {max(ratios):.3f}x)")
    if lat.get("warmup"):
        lines.append("first visits (not counted): " + ", ".join(f"{w['page']} {w['title_s']:.2f} s"
                                                                for w in lat["warmup"]))
    if result.get("notes"):
        lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"
