"""A series of runs in the background: the book's comparisons (`lab.experiments`) as runs of the backend, one after
another so that a series keeps its place among other tabs' runs, or a lesson's all together, side by side in one
slot. A UI polls `snapshot()`; `stop()` ends the runs in progress and skips the rest.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..lab.experiments import KINDS, SIDE_BY_SIDE
from ..records import KEPT, Status
from .process import ProcessJob
from .queue import QueueingBackend
from .saved import Run
from .snapshot import JobSnapshot


@dataclass
class ExperimentSnapshot:
    """A consistent copy of an experiment's state: one JobSnapshot per run started so far."""

    id: str
    kind: str  # "sweep" or "compare"
    configs: list[TrainConfig]
    jobs: list[JobSnapshot]
    status: Status  # running, finished or stopped

    @property
    def title(self) -> str:
        """What the experiment is, in words."""
        return KINDS[self.kind]

    @property
    def chart_title(self) -> str | None:
        """The title of its runs' chart: None for the book's own recipes, else what it is, scaled down."""
        return f"{self.title[0].upper()}{self.title[1:]}: a scaled-down recipe" if self.kind in SIDE_BY_SIDE else None

    @property
    def done(self) -> bool:
        """True once every run has ended or the experiment was stopped."""
        return self.status in KEPT

    @property
    def progress(self) -> float:
        """Fraction of the whole series done, 0 to 1."""
        if not self.configs:
            return 1.0
        finished = sum(1.0 if job.done else job.progress for job in self.jobs)
        return min(finished / len(self.configs), 1.0)


@dataclass
class SweepPoint:
    """One lr of a sweep: its final held-out accuracy (val where the data has it, else test), or why there is none."""

    lr: float
    heldout_acc: float | None
    status: str  # the run's status: starting, running, finished, stopped or failed
    error: str | None = None


def sweep_points(snapshot: ExperimentSnapshot) -> list[SweepPoint]:
    """Final held-out accuracy per lr of the runs started so far (None while running, stopped early or failed)."""
    points = []
    for job in snapshot.jobs:
        tested = [e.heldout_acc for e in job.epochs if e.heldout_acc is not None]
        final = tested[-1] if tested and job.status == Status.FINISHED else None
        points.append(SweepPoint(job.config.lr, final, job.status, job.error))
    return points


class Experiment:
    """A series of TrainConfigs trained one after another in one background thread."""

    def __init__(self, kind: str, configs: Sequence[TrainConfig], runs_dir: str | Path, backend: QueueingBackend,
                 experiment_id: str | None = None, owner: str | None = None):
        if kind not in KINDS:
            raise FtcoreError(f"experiment must be one of {', '.join(KINDS)} (got {kind!r})")
        self.id = experiment_id or uuid.uuid4().hex[:10]
        self.kind = kind
        self.configs = list(configs)
        self.runs_dir = runs_dir  # each run's folder goes there
        self.backend = backend  # each run trains in a process of its own, through this backend's queue
        self.owner = owner  # the owner of every run of the series (runs.folder.owner_of)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: list[ProcessJob] = []
        self._runs: dict[str, Run] = {}  # job id -> its Run, once it ended with a model
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=f"ftcore-experiment-{self.id}", daemon=True)

    def start(self) -> Experiment:
        """Start the series (once) and return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the runs in progress after their current batch and start no more."""
        with self._lock:
            self._stop.set()
            current = list(self._jobs)
        for job in current:
            if not job.snapshot().done:
                job.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the series; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> ExperimentSnapshot:
        """Copy the current state (each job's own snapshot is taken under its lock)."""
        with self._lock:
            jobs, ended, stopped = list(self._jobs), self._ended, self._stop.is_set()
        status = (Status.STOPPED if stopped else Status.FINISHED) if ended else Status.RUNNING
        return ExperimentSnapshot(id=self.id, kind=self.kind, configs=list(self.configs),
                                  jobs=[job.snapshot() for job in jobs], status=status)

    def jobs(self) -> list[ProcessJob]:
        """The series' jobs started so far, in order."""
        with self._lock:
            return list(self._jobs)

    def runs(self, skip: Container[str] = ()) -> list[Run]:
        """The runs that ended with a model (finished or stopped), in order, except those whose id is in `skip`."""
        with self._lock:
            return [run for job_id, run in self._runs.items() if job_id not in skip]

    def _run(self) -> None:
        """Queue the runs a batch at a time (a lesson's together, a series' one by one), waiting for each batch."""
        together = [self.configs] if self.kind in SIDE_BY_SIDE else [[config] for config in self.configs]
        for configs in together:
            with self._lock:  # checked and appended together, so a stop() never misses a job
                if self._stop.is_set():
                    break
                jobs = [ProcessJob(config, self.runs_dir, owner=self.owner) for config in configs]
                self._jobs.extend(jobs)
            try:
                for job in jobs:
                    job.prepare(self.backend)
                self.backend.submit(*jobs)
            except FtcoreError:  # checked before the series started; memory may have changed since
                for job in jobs:
                    job.cancel()
            for job in jobs:  # a failed run (e.g. a diverging lr) does not end the series
                job.join()
                self._keep(job)
        with self._lock:
            self._ended = True

    def _keep(self, job: ProcessJob) -> None:
        """Keep an ended job's run when it has a model (loaded from its folder when first used)."""
        if job.snapshot().has_model:
            run = job.to_run()
            with self._lock:
                self._runs[job.id] = run
