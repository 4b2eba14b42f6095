"""The Ray backend: each run a Ray job through Ray's Jobs API (no Ray driver here, so a restarted server kills no
one's training and finds its jobs again by their metadata), sent only once some node's free resources can take it
(Ray fails a job that waits too long), counting every active run of the lab whichever server submitted it. The
lab speaks only to a head at an address runs.address accepts; Ray is imported only here, and only when a cluster is
asked for. How and why: docs/cluster.md and docs/architecture.md, "Runs as processes".
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainConfig
from ..errors import FtcoreError
from ..train import memory
from ..util.paths import REPO_ROOT
from .address import check_address
from .child import WORKER_MODULE
from .process import ProcessJob
from .queue import QueueingBackend
from .worker import THREADS_ENV, WORKER_ERROR_PREFIX

RUN_CPUS_ENV = "FTCORE_RAY_RUN_CPUS"  # CPUs a run asks of its node (default: RUN_CPUS)
RUN_CPUS = 2  # a run on CPUs takes two cores of a node; on a GPU, GPU_RUN_CPUS
GPU_RUN_CPUS = 1  # a run on a GPU feeds it from one core (its photos are decoded by the GPU's run alone)
GPU_SHARE_STEP = 0.01  # a GPU fraction is rounded up to a hundredth, so rounding never packs one run too many
METADATA_FOLDER = "ftcore_folder"  # the job's metadata key for its run folder (to find it after a restart)
METADATA_ASK = "ftcore_ask"  # the job's metadata key for what it asked of its node, as JSON (Ray lists no asks)
ACTIVE = ("PENDING", "RUNNING")  # Ray's job statuses that hold resources
LOST = ("JOB_SUPERVISOR_ACTOR_DIED", "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE")  # Ray's words for "its node went"


@dataclass
class Node:
    """One alive node of the cluster: its id and address, what it has, and what active jobs asked of it."""

    id: str
    ip: str
    total: dict[str, float]  # CPU, GPU, memory (bytes), as Ray counts them
    gpu_bytes: int = 0  # memory of one of its GPUs (0: none, or not reported)
    used: dict[str, float] = field(default_factory=dict)

    def free(self, resource: str) -> float:
        """What is left of `resource` on this node."""
        return self.total.get(resource, 0.0) - self.used.get(resource, 0.0)

    def fits(self, ask: dict[str, float]) -> bool:
        """True when every resource of `ask` is free here."""
        return all(self.free(name) + 1e-9 >= amount for name, amount in ask.items() if amount)

    def take(self, ask: dict[str, float]) -> None:
        """Count `ask` as used here."""
        for name, amount in ask.items():
            self.used[name] = self.used.get(name, 0.0) + (amount or 0.0)


def job_ask(info: dict) -> dict[str, float]:
    """What a Ray job asked for: the ask a run of the lab wrote into its metadata (nothing for others)."""
    try:
        asked = json.loads((info.get("metadata") or {}).get(METADATA_ASK) or "{}")
    except ValueError:
        asked = {}
    return {name: float(asked.get(name) or 0.0) for name in ("CPU", "GPU", "memory")}


def place_jobs(nodes: list[Node], jobs: list[dict]) -> None:
    """Count every active job's ask on the nodes, largest first, each where it fits with the least room left."""
    asks = sorted((job_ask(info) for info in jobs if info.get("status") in ACTIVE),
                  key=lambda ask: (ask["GPU"], ask["CPU"], ask["memory"]), reverse=True)
    for ask in asks:
        fitting = [node for node in nodes if node.fits(ask)] or nodes
        if fitting:
            min(fitting, key=lambda node: (node.free("GPU"), node.free("CPU"), node.free("memory"))).take(ask)


class RayJob:
    """A run launched as a Ray job: the handle its ProcessJob watches it through (process.Handle)."""

    def __init__(self, backend: RayBackend, submission_id: str, error: str | None = None):
        self.backend = backend
        self.submission_id = submission_id
        self.error = error  # why it could not be submitted

    def info(self) -> dict | None:
        """The job's details as last read from the cluster (None before the first read)."""
        return self.backend.job_info(self.submission_id)

    def running(self) -> bool:
        """True while Ray holds the job pending or running (or the backend has not read it yet)."""
        if self.error:
            return False
        info = self.info()
        return info is None or info.get("status") in ACTIVE

    def signal(self, sig: int) -> None:
        """Only an end can be asked of a Ray job: Stop itself goes through the run folder's stop file."""
        if sig != signal.SIGUSR1 and self.running():
            self.backend.stop_job(self.submission_id)

    def rss_bytes(self) -> int:
        """The run does not run in this process's machine: Ray accounts for its memory."""
        return 0

    def lost_message(self, epoch: int, step: int) -> str | None:
        """Why the job ended without the run writing its end: its node left, the worker's own sentence, or Ray's."""
        if self.error:
            return self.error
        info = self.info() or {}
        if info.get("error_type") in LOST:
            node = self.backend.node_address(info.get("driver_node_id") or "")
            where = f" ({node})" if node else ""
            return (f"the run's machine{where} left the cluster at epoch {epoch}, batch {step}; its curves are kept, "
                    "and Resume continues it on another machine")
        said = self.backend.worker_sentence(self.submission_id)
        if said:
            return said
        if info.get("status") == "STOPPED":
            return f"the run's Ray job was stopped at epoch {epoch}, batch {step}; its curves are kept"
        message = (info.get("message") or "no reason given").strip().splitlines()[0]
        return f"the run's Ray job failed at epoch {epoch}, batch {step} ({message}); its curves are kept"


class RayBackend(QueueingBackend):
    """Queues ProcessJobs here and submits each to the cluster as a Ray job once some node can take it."""

    poll_seconds = 1.0  # how often the admitting thread reads the cluster's jobs and admits the next run

    def __init__(self, address: str, runs_dir: str | Path, run_cpus: int | None = None, check_memory: bool = True):
        super().__init__()
        self.address = check_address(address)
        self.runs_dir = Path(runs_dir)  # on storage every node sees; a restarted server watches its jobs again
        self.run_cpus = run_cpus or int(os.environ.get(RUN_CPUS_ENV, 0) or RUN_CPUS)
        self.check_memory = check_memory
        self.client = self._connect()
        self._jobs: dict[str, dict] = {}  # submission id -> its details, as last read
        self._nodes: list[Node] = []
        self._dead: dict[str, str] = {}  # node id -> address, for nodes seen to leave
        self._facts = threading.Lock()  # the cluster's nodes and jobs as last read; jobs read them under theirs
        self.refresh()
        self._start_thread()  # from the start: it also finds the runs this server started before a restart

    def _connect(self):
        try:
            from ray.job_submission import JobSubmissionClient  # Ray only once a cluster is asked for
        except ImportError:
            raise FtcoreError('training on a Ray cluster needs Ray: pip install ".[cluster]"') from None
        try:
            return JobSubmissionClient(self.address)
        except Exception as e:  # Ray raises ConnectionError and RuntimeError alike
            raise FtcoreError(f"the Ray head at {self.address} does not answer ({_first_line(e)}); check that "
                              "it runs (ray start --head) and that this machine can reach it") from None

    # ---- what the cluster says

    def _get(self, path: str) -> dict:
        """One JSON answer of the dashboard's HTTP API."""
        with urllib.request.urlopen(f"{self.address}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def read_nodes(self) -> list[Node]:
        """The cluster's alive nodes with their totals (and GPU sizes, where the dashboard reports them)."""
        listed = self._get("/api/v0/nodes?limit=10000&detail=1")["data"]["result"]["result"]
        gpus = self._gpu_bytes()
        nodes = []
        for node in listed:
            if node.get("state") != "ALIVE":
                self._dead[node["node_id"]] = node.get("node_ip", "")
                continue
            total = node.get("resources_total") or {}
            nodes.append(Node(id=node["node_id"], ip=node.get("node_ip", ""), gpu_bytes=gpus.get(node["node_id"], 0),
                              total={name: float(total.get(name, 0.0)) for name in ("CPU", "GPU", "memory")}))
        return nodes

    def _gpu_bytes(self) -> dict[str, int]:
        """node id -> memory of its smallest GPU, from the dashboard's node summary (absent on CPU nodes)."""
        try:
            summary = self._get("/nodes?view=summary")["data"]["summary"]
        except (OSError, ValueError, KeyError):
            return {}
        sizes = {}
        for node in summary:
            memories = [gpu.get("memoryTotal", 0) for gpu in node.get("gpus") or []]
            node_id = (node.get("raylet") or {}).get("nodeId")
            if memories and node_id:
                sizes[node_id] = int(min(memories)) * 2**20  # the dashboard reports MiB
        return sizes

    def refresh(self) -> None:
        """Read the cluster's nodes and jobs once (the admitting thread does this every poll_seconds)."""
        nodes = self.read_nodes()
        jobs = {info.submission_id: info.model_dump(mode="json") for info in self.client.list_jobs()
                if info.submission_id}
        with self._facts:
            # a run submitted since the listing was asked for still holds its node
            self._nodes, self._jobs = nodes, {**{sid: info for sid, info in self._jobs.items()
                                                 if sid in self._running and sid not in jobs}, **jobs}

    def job_info(self, submission_id: str) -> dict | None:
        """A job's details as last read."""
        with self._facts:
            return self._jobs.get(submission_id)

    def node_address(self, node_id: str) -> str:
        """The node's IP address, alive or gone ('' when unknown)."""
        with self._facts:
            return next((node.ip for node in self._nodes if node.id == node_id), self._dead.get(node_id, ""))

    def worker_sentence(self, submission_id: str) -> str | None:
        """The worker's own one-sentence error, from the end of its log that Ray puts in a failed job's message."""
        message = (self.job_info(submission_id) or {}).get("message") or ""
        lines = [line for line in message.splitlines() if line.startswith(WORKER_ERROR_PREFIX)]
        return lines[-1][len(WORKER_ERROR_PREFIX):].strip() if lines else None

    def stop_job(self, submission_id: str) -> None:
        """Ask Ray to end the job (SIGTERM, then SIGKILL)."""
        try:
            self.client.stop_job(submission_id)
        except Exception:  # already ended, or the head is gone: nothing left to stop
            pass

    # ---- the contract

    def ask(self, job: ProcessJob) -> dict[str, float]:
        """What the run asks of one node: CPUs, host memory and, on a GPU cluster, its share of one GPU."""
        on_gpu = job.config.device != "cpu" and any(node.total.get("GPU") for node in self._nodes)
        ask = {"CPU": float(GPU_RUN_CPUS if on_gpu else self.run_cpus), "memory": float(job.estimate)}
        if on_gpu:
            ask["GPU"] = self.gpu_share(job)
        return ask

    def gpu_share(self, job: ProcessJob) -> float:
        """The run's share of one GPU: its estimate over the smallest GPU's memory, rounded up to a hundredth."""
        sizes = [node.gpu_bytes for node in self._nodes if node.total.get("GPU") and node.gpu_bytes]
        if not sizes or not job.gpu_estimate:
            return 1.0
        return min(1.0, math.ceil(job.gpu_estimate / min(sizes) / GPU_SHARE_STEP) * GPU_SHARE_STEP)

    def check_fits(self, config: TrainConfig) -> int:
        """The run's estimated host memory in bytes; FtcoreError naming what to lower when no node could take it."""
        if not self.check_memory:
            return 0
        need = memory.estimate_run_bytes(config)
        nodes = self._nodes
        largest = max((node.total.get("memory", 0.0) for node in nodes), default=0.0)
        if nodes and need > largest:
            raise FtcoreError(memory.too_big_message(config, need, int(largest), "the cluster's largest machine"))
        cpus = max((node.total.get("CPU", 0.0) for node in nodes), default=0.0)
        if nodes and self.run_cpus > cpus:
            raise FtcoreError(f"a run asks for {self.run_cpus} CPUs and the cluster's largest node has {cpus:g}; "
                              f"set {RUN_CPUS_ENV} to at most {cpus:g}")
        return need

    def size(self, job: ProcessJob, together: int) -> None:
        """Its host memory, and its GPU memory where the cluster has GPUs; runs go to the cluster one by one."""
        job.estimate = self.check_fits(job.config)
        job.gpu_estimate = (memory.estimate_gpu_bytes(job.config, 1)
                            if any(node.total.get("GPU") for node in self._nodes) else 0)

    def waits_for(self, job: ProcessJob) -> str:
        """What the next run in line waits for: a machine of the cluster with room for its ask; under the lock."""
        ask, most = self.ask(job), max((node.free("CPU") for node in self._nodes), default=0.0)
        what = ", ".join(f"{ask[name]:g} GPU" if name == "GPU" else f"{ask[name] / 1e9:.1f} GB" if name == "memory"
                         else f"{ask[name]:g} CPUs" for name in ("CPU", "GPU", "memory") if ask.get(name))
        return (f"a machine of the cluster has {what} free (the {len(self._nodes)} machine(s) have at most "
                f"{max(most, 0):g} CPUs free now)")

    def finder_root(self) -> Path:
        """Where the learning-rate finder's folders go: beside the runs, on the storage every node sees."""
        return self.runs_dir / ".lr-finder"

    # ---- the admitting thread

    def _launch(self, job: ProcessJob) -> None:
        """Submit `job` as a Ray job; a refusal becomes the run's error."""
        submission_id = f"ftcore-{job.id}-{uuid.uuid4().hex[:6]}"
        ask = self.ask(job)
        # a node with this checkout at the same path runs it from there; one with the lab installed, from that
        env = {THREADS_ENV: str(int(ask["CPU"])), "PYTHONPATH": str(REPO_ROOT)}
        metadata = {METADATA_FOLDER: str(job.folder), METADATA_ASK: json.dumps(ask)}
        try:
            self.client.submit_job(
                entrypoint=f"python -m {WORKER_MODULE} {shlex.quote(str(job.folder))}", submission_id=submission_id,
                runtime_env={"env_vars": env}, metadata=metadata,
                entrypoint_num_cpus=ask["CPU"], entrypoint_num_gpus=ask.get("GPU") or None,
                entrypoint_memory=int(ask["memory"]) or None)
            handle = RayJob(self, submission_id)
        except Exception as e:
            handle = RayJob(self, submission_id, error=f"the cluster at {self.address} refused the run "
                                                       f"({_first_line(e)}); start it again")
        if not handle.error:
            with self._facts:  # counted at once, before the next read of the cluster lists it
                self._jobs[submission_id] = {"status": "PENDING", "submission_id": submission_id, "metadata": metadata}
            self._running[submission_id] = job
        job.attach(handle)

    def _admit_next(self) -> bool:
        """Submit the first queued run if a node has room for it now; under the lock."""
        job = self._queue.next_group()[0]
        nodes = [Node(id=n.id, ip=n.ip, total=n.total, gpu_bytes=n.gpu_bytes) for n in self._nodes]
        place_jobs(nodes, list(self._jobs.values()))
        ask = self.ask(job)
        fitting = [node for node in nodes if node.fits(ask)]
        if not fitting:
            return False
        self._queue.take([job])
        self._launch(job)
        return True

    def _adopt(self) -> None:
        """Watch the active jobs of this runs folder that no job here watches (started before a restart)."""
        watched = set(self._running)
        for submission_id, info in self._jobs.items():
            folder = (info.get("metadata") or {}).get(METADATA_FOLDER)
            if (submission_id in watched or info.get("status") not in ACTIVE or not folder
                    or Path(folder).parent != self.runs_dir or not Path(folder).is_dir()):
                continue
            try:
                self._running[submission_id] = ProcessJob.resumed(folder, RayJob(self, submission_id))
            except (OSError, ValueError, KeyError):
                continue



def _first_line(error: BaseException) -> str:
    """An exception's first line, for a sentence."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
