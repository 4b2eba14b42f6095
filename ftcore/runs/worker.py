"""The child process of one run: `python -m ftcore.runs.worker RUN_FOLDER` (or torchrun ... -m ftcore.runs.worker). It
does the task its request names (a training, or the learning-rate finder), appends every event to events.jsonl and
a last `end` event, and never talks to the server otherwise: a crash or a kill costs this process only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import torch

from ..config import TrainConfig
from ..devices import distributed
from ..devices.priority import yield_cpu
from ..errors import FtcoreError, user_message
from ..lr_find.finding import FinderSettings, write_curve
from ..lr_find.range_test import find_lr
from ..records import Event, History, Sink, StateCaptured, Status
from ..train.loop import fit
from ..train.memory import is_out_of_memory, out_of_memory_message
from ..train.progress import TrainingDiverged
from ..train.resume import load_state, save_state
from ..util.paths import RUNS_DIR_ENV
from .folder import (
    FINDING_FILE,
    REQUEST_FILE,
    STATE_FILE,
    EventLog,
    read_request,
    stop_requested,
)
from .saved import save_run
from .steering import FolderSteering

THREADS_ENV = "FTCORE_THREADS"  # PyTorch threads per run; the backend sets it so that runs share the cores
STOP_POLL_SECONDS = 0.2
SUPERSEDED_EXIT = 3  # the exit status of a process whose run folder a newer attempt took over
# The line a worker prints when it cannot even write its run folder: Ray's failure message carries it to the server.
WORKER_ERROR_PREFIX = "error: "


def check_folder(folder: Path) -> str | None:
    """None when this machine can read the run's request and write its folder; else one sentence why not."""
    host = socket.gethostname()
    if not (folder / REQUEST_FILE).is_file():
        return (f"the run folder {folder} is not on {host}: the runs folder must be on storage every machine of "
                f"the cluster sees (${RUNS_DIR_ENV}, e.g. an NFS mount)")
    probe = folder / f".write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return (f"the run folder {folder} cannot be written on {host} ({e.strerror or e}): the runs folder must be "
                f"writable from every machine of the cluster (${RUNS_DIR_ENV})")
    return None


def watch_for_stop(folder: Path, stop: threading.Event) -> None:
    """Set `stop` on SIGUSR1, SIGTERM or a `stop` file; end at once when a newer attempt took the folder."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, lambda signum, frame: stop.set())
    attempt = read_request(folder).attempt

    def poll() -> None:
        while not stop.is_set():
            if stop_requested(folder):
                stop.set()
            try:
                now = read_request(folder).attempt
            except (OSError, ValueError, KeyError):  # being replaced this moment: read it again next time
                now = None
            if now is not None and now != attempt:
                logging.getLogger(__name__).warning("%s was resumed by another process; this one ends", folder)
                os._exit(SUPERSEDED_EXIT)
            time.sleep(STOP_POLL_SECONDS)

    threading.Thread(target=poll, name="ftcore-stop-watch", daemon=True).start()


def run(folder: Path) -> int:
    """Do the task of the run in `folder` to its end; returns the exit status (0 unless it failed)."""
    if os.environ.get(THREADS_ENV):
        torch.set_num_threads(max(1, int(os.environ[THREADS_ENV])))
    request = read_request(folder)
    config, task, options, resume = TrainConfig.from_dict(request.config), request.task, request.options, request.resume
    log = EventLog(folder)
    stop = threading.Event()
    watch_for_stop(folder, stop)
    devices: list[str] = []

    def sink(event: Event) -> None:
        devices[:] = getattr(event, "devices", devices)
        if isinstance(event, StateCaptured):  # the state after an epoch: kept to resume from, not a line of the log
            if distributed.context().is_main:
                save_state(event.state, folder / STATE_FILE)
        else:
            log(event)

    try:
        if task == "lr_find":
            finding = find_lr(config, FinderSettings(**options), log, stop)
            write_curve(finding, folder / FINDING_FILE)
            stopped = finding.stopped
        else:
            stopped = train(folder, config, resume, sink, stop)
        log.end(Status.STOPPED if stopped else Status.FINISHED)
        return 0
    except TrainingDiverged as e:
        log.end(Status.FAILED, user_message(e), e.history.to_dict())
    except FtcoreError as e:
        log.end(Status.FAILED, user_message(e))
    except BaseException as e:  # the run must always say how it ended
        if is_out_of_memory(e):
            log.end(Status.FAILED, out_of_memory_message(config, devices))
        else:  # a bug in ftcore: the traceback goes to worker.log
            logging.getLogger(__name__).exception("%s in %s failed", task, folder)
            log.end(Status.FAILED, f"the run failed unexpectedly ({type(e).__name__}: {e}); {folder / 'worker.log'} "
                    "has the details")
    finally:
        distributed.teardown()
    return 1


def train(folder: Path, config: TrainConfig, resume: bool, sink: Sink, stop: threading.Event) -> bool:
    """Train (or continue after resume.pt) and save the run in `folder`; True when it was stopped early."""
    state = load_state(folder / STATE_FILE) if resume else None
    if state is not None:
        EventLog(folder).resumed(state["epoch"])
    # the folder takes asks for other learning rates while the run trains (under torchrun, rank 0 reads them)
    steering = FolderSteering(folder, config, History.from_dict(state["history"]) if state else None) \
        if distributed.launch_rank() == 0 else None
    trained = None
    try:
        trained = fit(config, sink, stop, resume_from=state, capture_state=True, steering=steering)
    finally:
        if steering is not None:  # a run that finished answers what it never reached; a stopped one keeps it
            steering.close(finished=trained is not None and not trained.history.stopped)
    if distributed.context().is_main:
        save_run(trained, folder)
        if not trained.history.stopped:
            (folder / STATE_FILE).unlink(missing_ok=True)  # nothing left to resume
    return trained.history.stopped


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the run's folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftcore.runs.worker RUN_FOLDER", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    folder = Path(args[0])
    problem = check_folder(folder)
    if problem:  # nowhere to write the end event: this line is all the server will read
        print(f"{WORKER_ERROR_PREFIX}{problem}", file=sys.stderr, flush=True)
        return 2
    # Training is batch work: the server, and the pages it serves, get the cores first.
    if not yield_cpu(idle=True):
        logging.getLogger(__name__).warning("could not lower this run's CPU priority")
    return run(folder)


if __name__ == "__main__":
    sys.exit(main())
