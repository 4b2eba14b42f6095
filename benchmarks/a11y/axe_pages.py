"""Accessibility of every page, as axe-core finds it in Chromium: the WCAG 2.0 / 2.1 A and AA rules.

    python -m benchmarks.a11y.axe_pages [--schemes light dark] [--out benchmarks/results/axe-pages-cpu.txt]

Opens each page of the app cold (the hot-dog set found on this machine), then Predict with a photo uploaded, in the
browser's light and dark colour schemes (the app follows the system's, as Streamlit does), runs
axe-core (from axe-playwright-python) on each, and prints the violations: per page, each rule with its impact and the
number of elements, then the total.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, RESULTS, arg_parser, data_dir, machine_line, write_report
from benchmarks.harness.app_server import app_server

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # the rules of WCAG 2.1 Level AA
PAGES = ["Home", "Dataset explorer", "Check the photos", "Train", "Experiments", "Predict", "Evaluate & explain"]
SETTLE_MS = 4000  # after a page's title: its background work (the photo check, torch's facts) draws more


def violations(axe, page) -> list[dict]:
    """axe-core's WCAG A/AA violations on the page now: rule, impact, elements (their selectors)."""
    results = axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    return [{"rule": v["id"], "impact": v["impact"], "elements": [n["target"] for n in v["nodes"]]}
            for v in results.response["violations"]]


def main() -> None:
    """Every page cold, then Predict with a photo; the report lists what axe found."""
    parser = arg_parser(__doc__)
    parser.add_argument("--schemes", nargs="+", default=["light", "dark"], choices=["light", "dark"])
    parser.add_argument("--out", default=str(RESULTS / "axe-pages-cpu.txt"))
    args = parser.parse_args()
    from axe_playwright_python.sync_playwright import Axe  # here: only this script needs axe
    from playwright.sync_api import sync_playwright

    photo = next((Path(data_dir()) / "test" / "hotdog").iterdir())
    found: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, app_server(Path(tmp) / "cache", Path(tmp) / "log.txt") as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        axe = Axe()
        for scheme in args.schemes:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
            page.goto(url)
            page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=120_000)
            for name in PAGES:
                page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
                page.wait_for_timeout(SETTLE_MS)
                found[f"{name}, cold, {scheme}"] = violations(axe, page)
                print(name, scheme, sum(len(v["elements"]) for v in found[f"{name}, cold, {scheme}"]), flush=True)
            page.get_by_test_id("stSidebarNavLink").filter(has_text="Predict").click()
            page.wait_for_timeout(SETTLE_MS)
            page.locator("input[type=file]").first.set_input_files(str(photo))
            page.wait_for_timeout(3 * SETTLE_MS)
            found[f"Predict, a photo uploaded, {scheme}"] = violations(axe, page)
            page.close()
        browser.close()
    lines = [machine_line("axe-core (axe-playwright-python) in Chromium, WCAG 2.0/2.1 A and AA rules")]
    for state, rows in found.items():
        lines.append(f"{state}: {sum(len(v['elements']) for v in rows)} violating elements")
        lines += [f"  {v['rule']} ({v['impact']}): {len(v['elements'])}, e.g. {v['elements'][0]}" for v in rows]
    lines.append(f"total: {sum(len(v['elements']) for rows in found.values() for v in rows)} violating elements")
    write_report("\n".join(lines) + "\n", found, Path(args.out))


if __name__ == "__main__":
    main()
