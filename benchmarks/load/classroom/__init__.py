"""A class sharing one server: N browser sessions press Start on the Train page at once.

    python -m benchmarks.load.classroom [--sessions 6] [--per-class 100] [--epochs 5] [--screenshots DIR]
                                        [--out benchmarks/results/classroom-cpu.txt] [--no-solo] [--cluster-nodes N]
                                        [--repeats 8] [--latency-every 20] [--measure-for S] [--class-nice 19]

Starts `streamlit run streamlit_app.py` on a loopback port with a temporary FTCORE_CACHE (so its runs folder
starts empty) and FTCORE_DATA at the shared hot-dog photos, and drives it with Debian's Chromium through
Playwright. It measures the page latency idle in rounds, one every --latency-every seconds: a rerun of a Train
page kept open (the learning-rate slider moved one notch, timed in the page from the key press to the frame that
shows the new rate), then a fresh page of Home and of Train (timed in the page from the navigation's start to the
first frame that shows its title, and to the first that shows its late element: Start on Train, the last page link
on Home; and, before the title, when the page's scripts had loaded, its socket opened and the server's first
message came). Then it opens `--sessions` browser contexts (separate Streamlit sessions) on Train, chooses From
scratch and `--per-class` images per class and split in each (every other setting keeps its default), and presses
Start in all of them in a tight loop. While the scheduler trains the runs ($FTCORE_MAX_RUNS at a time, the rest
queued) it samples the machine's used memory every 0.2 s, reads every run's events.jsonl, and measures the same
rounds at the same pace under load. Once the runs have ended it measures the idle rounds again: the idle figures
are the medians of the rounds before and after the class, so that a shared machine drifting over the minutes does
not lean on one side. Afterwards one more session trains alone (unless --no-solo) for the one-run-alone speed.
With --cluster-nodes N the runs go to a Ray cluster of N nodes started on this machine on loopback
(benchmarks.harness.ray_cluster, 2 CPUs each) through FTCORE_RAY_ADDRESS, with the runs folder as
FTCORE_RUNS_DIR, instead of the server's child processes. With --class-nice N the class's sessions run in a
second Chromium at niceness N, so that their rendering takes only CPU time the probe's pages leave, as it would
on the students' own computers.
Prints a report, writes it to --out and the raw numbers beside it as JSON.

In three modules: `driver` starts the server and drives the browsers and sessions (and holds `main`), `measure`
holds what is timed and how (in-page timings, latency rounds, the memory and run watcher), `report` turns the
results into the report's text.
"""
