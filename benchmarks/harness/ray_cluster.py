"""A Ray cluster of several nodes on this one machine, on loopback, for the cluster tests and the classroom
benchmark: `ray start --head`, then `ray start --address` for each further node.

Every node's daemons run in a process group of their own (the `ray start` that made them), so a node is killed,
as a machine leaving the cluster would be, by its group id, and the cluster is stopped by its own process ids,
never with `ray stop` (which ends every Ray process on the machine).

Ray turns a loopback node address into the machine's network address, which would open its ports beyond this
machine. The head is started as a single-machine Ray (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps 127.0.0.1),
and further nodes through `ray start` with that one rewrite turned off, so every port binds to loopback.

Not run on its own: `LocalRayCluster(cpus=2).start()` in tests/conftest.py (the `ray_nodes` fixture) and in
`python -m benchmarks.load.classroom --cluster-nodes N`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.harness.app_server import free_port

START_SECONDS = 120  # a node's start on two busy cores
NODE_LAUNCHER = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host  # keep 127.0.0.1: this node listens on loopback only
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""
# Nodes that miss heartbeats for 3 s are dead (Ray's default waits longer), so a killed node is seen in seconds.
HEALTH_CHECK = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
                "RAY_health_check_initial_delay_ms": "1000"}


class LocalRayCluster:
    """A head and its nodes on loopback, each with `cpus` CPUs and no GPU; `address` is the head's dashboard."""

    def __init__(self, cpus: int = 2):
        self.cpus = cpus
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rayft-", dir="/tmp"))  # short: Ray's socket paths are capped
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.groups: list[int] = []  # process group of each node's daemons, the head's first
        # this interpreter's folder first: `ray` and the jobs' `python` are this environment's, activated or not
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **HEALTH_CHECK,
                    "PATH": os.pathsep.join(p for p in (bin_dir, os.environ.get("PATH", "")) if p)}
        self.ray = shutil.which("ray", path=self.env["PATH"]) or "ray"

    def _ray_start(self, command: list[str], env: dict[str, str]) -> None:
        log = self.temp_dir / f"node-{len(self.groups)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.groups.append(proc.pid)
        if proc.wait(timeout=START_SECONDS) != 0:
            raise RuntimeError(f"ray start failed:\n{log.read_text()}")

    def start(self) -> LocalRayCluster:
        """Start the head (and its dashboard, the Jobs API) and wait until it answers."""
        self._ray_start([self.ray, "start", "--head", "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
                         "--dashboard-port", str(self.dashboard_port), "--num-cpus", str(self.cpus), "--num-gpus",
                         "0", "--temp-dir", str(self.temp_dir), "--disable-usage-stats", "--include-dashboard",
                         "true", "--ray-client-server-port", str(free_port())],
                        {**self.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        self.wait_for_nodes(1)
        return self

    def add_node(self) -> int:
        """Start one more node on loopback; returns its index (its process group is groups[index])."""
        alive = self.alive_nodes()
        self._ray_start([sys.executable, "-c", NODE_LAUNCHER, "start", "--address", f"127.0.0.1:{self.gcs_port}",
                         "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--num-gpus", "0",
                         "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()),
                         "--metrics-export-port", str(free_port())], self.env)
        self.wait_for_nodes(alive + 1)
        return len(self.groups) - 1

    def alive_nodes(self) -> int:
        """Nodes the head counts as alive now."""
        import json

        try:
            with urllib.request.urlopen(f"{self.address}/api/v0/nodes?detail=1", timeout=5) as answer:
                nodes = json.loads(answer.read())["data"]["result"]["result"]
        except OSError:
            return 0
        return sum(node["state"] == "ALIVE" for node in nodes)

    def wait_for_nodes(self, count: int, timeout: float = START_SECONDS) -> None:
        """Wait until exactly `count` nodes are alive."""
        deadline = time.monotonic() + timeout
        while self.alive_nodes() != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} alive node(s)")
            time.sleep(0.5)

    def kill_node(self, index: int) -> None:
        """SIGKILL every process of node `index`, its daemons and the workers and jobs they started, as a machine
        that leaves the cluster without a word."""
        members = {pid for pid, (_, group) in _processes().items() if group == self.groups[index]}
        for pid in members | _descendants(members):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Kill every node (the head last) and remove the cluster's files."""
        for index in reversed(range(len(self.groups))):
            self.kill_node(index)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process readable in /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _descendants(roots: set[int]) -> set[int]:
    """Every process started, directly or not, by one of `roots`."""
    parents = {pid: parent for pid, (parent, _) in _processes().items()}
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
