"""A real two-node Ray cluster on this machine, and a demo-like job run on it with --address.

Both nodes are `ray start --block` processes of this test, each with its own temp dir and
free ports, all on 127.0.0.1. They are stopped by signalling those processes (by id), never
with `ray stop`, which would stop every Ray on the machine, other users' included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_helpers import read_rows, run_cli, write_job
from media import sample_videos

RAY = str(Path(sys.executable).with_name("ray"))
HOST = "127.0.0.1"
START_TIMEOUT = 180  # seconds: generous, the machine is small and shared


def _free_ports(n: int) -> list[int]:
    """n distinct ports free right now (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Cluster:
    address: str
    dashboard: str
    temp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start_node(self, name: str, args: list[str]) -> None:
        """`ray start --block` for one node; it runs until this test signals it."""
        agent, grpc, metrics, runtime_env, manager, objects = _free_ports(6)
        node_temp = self.temp / name
        node_temp.mkdir()
        cmd = [RAY, "start", "--block", "--disable-usage-stats", f"--node-ip-address={HOST}",
               f"--temp-dir={node_temp}", "--num-gpus=0", "--object-store-memory=150000000",
               f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={grpc}",
               f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
               f"--node-manager-port={manager}", f"--object-manager-port={objects}", *args]
        log = open(self.temp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           env=_ray_env()))

    def python(self, code: str, timeout: float = 120) -> str:
        """Run `code` in a fresh interpreter (this test process never becomes a Ray driver)."""
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=timeout, env=_ray_env())
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip().splitlines()[-1]

    def alive_nodes(self) -> list[dict]:
        """The cluster's live nodes as a driver sees them (public `ray.nodes()`)."""
        return json.loads(self.python(
            "import json, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} "
            "for n in ray.nodes() if n['Alive']]))"))

    def plan_work(self, node: str) -> list[str]:
        """Names of the plan's tasks and actors that ran on a node, from its worker logs.

        Each node has its own temp dir, so a worker's log file says which node ran it; Ray
        writes `:task_name:` / `:actor_name:` into it whenever a task or actor starts.
        """
        names = []
        for log in (self.temp / node).glob("session_*/logs/worker-*.out"):
            for line in log.read_text(errors="replace").splitlines():
                kind, _, name = line.partition(":task_name:")[::-1][0:1] + ("",) * 2 \
                    if False else (None, None, None)
                for marker in (":task_name:", ":actor_name:"):
                    if line.startswith(marker):
                        name = line[len(marker):]
                        if any(k in name for k in ("MapBatches", "MapWorker", "ReadFiles")):
                            names.append(name)
        return names

    def stop(self) -> None:
        """SIGTERM each `ray start --block` (it stops its node's processes), newest first."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this test made for the node
                proc.wait(timeout=30)


def _ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _describe(cluster: Cluster) -> str:
    logs = [p.read_text()[-1500:] for p in sorted(cluster.temp.glob("*.log"))]
    return "\n---\n".join(logs)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (1 CPU) and a second node (1 CPU, custom resource `worker2`), both alive."""
    temp = Path(tempfile.mkdtemp(prefix="vlr", dir="/tmp"))  # short: Ray's socket paths
    gcs, dashboard = _free_ports(2)
    c = Cluster(f"{HOST}:{gcs}", f"http://{HOST}:{dashboard}", temp)
    try:
        c.start_node("head", ["--head", f"--port={gcs}", "--num-cpus=1",
                              f"--dashboard-host={HOST}", f"--dashboard-port={dashboard}"])
        _wait_for(c, 1)
        c.start_node("worker2", [f"--address={c.address}", "--num-cpus=1",
                                 '--resources={"worker2": 1}'])
        _wait_for(c, 2)
        yield c
    finally:
        c.stop()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for(cluster: Cluster, nodes: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        dead = [p for p in cluster.procs if p.poll() is not None]
        assert not dead, f"ray start exited:\n{_describe(cluster)}"
        try:
            if len(cluster.alive_nodes()) >= nodes:
                return
        except (AssertionError, subprocess.TimeoutExpired):
            pass  # the head's API server is not up yet
        assert time.monotonic() < deadline, f"{nodes} nodes not up:\n{_describe(cluster)}"
        time.sleep(2)


def test_demo_like_job_runs_across_two_nodes(tmp_path, cluster):
    nodes = cluster.alive_nodes()
    assert len(nodes) == 2
    assert [n["resources"].get("worker2") for n in nodes].count(1.0) == 1
    rows = [{"video_id": k, "path": str(v), "caption": f"a clip called {k}"}
            for k, v in sorted(sample_videos().items())]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", partition_size=1)

    result = run_cli("run", str(job), "--quiet", "--address", cluster.address, timeout=480,
                     env=_ray_env())
    assert result.returncode == 0, result.stderr[-3000:]

    store = tmp_path / "store"
    assert sorted(r["video_id"] for r in read_rows(store, "videos")) == sorted(sample_videos())
    assert len(read_rows(store, "clip_frames")) == 8 * len(rows)
    assert len(list((store / "_commits").glob("*.json"))) == len(rows)
    # Where Ray ran the plan's tasks and actor calls: both nodes must have done some.
    ran_on = set(json.loads(cluster.python(
        "import json; from ray.util.state import list_tasks\n"
        f"tasks = list_tasks(address={cluster.dashboard!r}, limit=10000, "
        "raise_on_missing_output=False)\n"
        "print(json.dumps(sorted({t.node_id for t in tasks if t.node_id and "
        "any(k in t.name for k in ('MapBatches', 'MapWorker', 'ReadFiles'))})))")))
    assert ran_on == {n["id"] for n in nodes}
