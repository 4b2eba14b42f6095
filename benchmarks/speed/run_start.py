"""Starting a run: seconds from Start until the run is training, for a fresh process and for one forked from the
standard library's fork server (ftcore.runs.child).

    python -m benchmarks.speed.run_start [--data DIR] [--weights FILE] [--rounds 3] [--json FILE]

Each round starts the book's fine-tuning recipe (MobileNetV2, the shared hot-dog photos) twice through the local
backend, once as a fresh `python -m ftcore.runs.worker` and once forked, in alternating order, and times from the
launch until the run says it has started (data listed, model built) and until its first batch is recorded; then it
stops the run. It prints each round and the medians.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from unittest import mock

from benchmarks.common import arg_parser, data_dir, write_json
from ftcore.config import TrainConfig, recipe
from ftcore.devices.machine import machine_description
from ftcore.records import Status
from ftcore.runs import child
from ftcore.runs.local import LocalBackend
from ftcore.runs.process import ProcessJob

WAIT_SECONDS = 600


def time_start(config: TrainConfig, runs_dir: str, forked: bool) -> dict:
    """Launch one run; seconds until it is running and until its first batch; then stop it."""
    backend = LocalBackend(slots=1, check_memory=False)
    with mock.patch.object(child, "FORKSERVER", child.FORKSERVER if forked else None):
        start = time.perf_counter()
        job = ProcessJob(config, runs_dir).start(backend)
        marks: dict[str, float] = {}
        while "first batch" not in marks and time.perf_counter() - start < WAIT_SECONDS:
            snap = job.snapshot()
            if snap.done:
                raise RuntimeError(f"the run ended before its first batch: {snap.status_line()}")
            if snap.status == Status.RUNNING and "running" not in marks:
                marks["running"] = time.perf_counter() - start
            if snap.batches:
                marks.setdefault("running", time.perf_counter() - start)
                marks["first batch"] = time.perf_counter() - start
            time.sleep(0.02)
    assert job._handle.forked == forked, "the run did not start the way it was asked to"
    job.stop()
    job.join(WAIT_SECONDS)
    return {"forked": forked, **{name: round(seconds, 2) for name, seconds in marks.items()}}


def main() -> None:
    """Time the rounds; print them and the medians; optionally save them as JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights", default=None, help="ImageNet weights of mobilenet_v2 (default: as found)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.weights:
        os.environ["FTCORE_WEIGHTS"] = args.weights
    config = recipe("finetune", "mobilenet_v2", data=data_dir(args.data))
    child.warm()
    first = child.FORKSERVER.Process(target=time.sleep, args=(0,))  # returns once the fork server has imported
    first.start()
    first.join()
    print(machine_description())
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for round_ in range(args.rounds):
            for forked in ((False, True) if round_ % 2 == 0 else (True, False)):
                row = {"round": round_ + 1, **time_start(config, runs_dir, forked)}
                print(row, flush=True)
                rows.append(row)
    for forked in (False, True):
        mine = [row for row in rows if row["forked"] == forked]
        print(f"{'forked' if forked else 'fresh '}: running {statistics.median(r['running'] for r in mine):.2f} s, "
              f"first batch {statistics.median(r['first batch'] for r in mine):.2f} s (medians of {len(mine)})")
    if args.json:
        write_json(args.json, {"machine": machine_description(), "rows": rows})


if __name__ == "__main__":
    main()
