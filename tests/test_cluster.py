"""A real two-node Ray cluster on this machine, and a demo-like job run on it with --address.

Both nodes are `ray start --block` processes of this test, each with its own temp dir and
free ports. They are stopped by signalling those processes (by id), never with `ray stop`,
which stops every Ray on the machine, other users' included. The cluster uses Ray's token
authentication with a token made for it; the driver gets the same token.
"""

from __future__ import annotations

import json
import os
import secrets
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
from e2e_helpers import TINY_CLIP, read_rows, run_cli, write_job
from media import sample_videos

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 180  # seconds: generous, the machine is small and shared
PLAN_NAMES = ("MapBatches", "MapWorker", "ReadFiles")  # Ray Data's names for our plan's work


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
    temp: Path
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start_node(self, name: str, args: list[str]) -> None:
        """`ray start --block` for one node; it runs until this test signals it."""
        agent, grpc, metrics, runtime_env, manager, objects = _free_ports(6)
        node_temp = self.temp / name
        node_temp.mkdir()
        cmd = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={node_temp}",
               "--num-gpus=0", "--object-store-memory=150000000",
               f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={grpc}",
               f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
               f"--node-manager-port={manager}", f"--object-manager-port={objects}", *args]
        with open(self.temp / f"{name}.log", "w") as log:
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, env=self.env,
                                               start_new_session=True))

    def alive_nodes(self) -> list[dict]:
        """The cluster's live nodes as a driver sees them (public `ray.nodes()`), run in a
        fresh interpreter so that this test process never becomes a Ray driver."""
        code = ("import json, ray\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} "
                "for n in ray.nodes() if n['Alive']]))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120, env=self.env)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def plan_work(self, node: str) -> list[str]:
        """Names of our plan's tasks and actors that ran on a node, from its worker logs.

        Each node has its own temp dir, so a worker's log file tells which node ran it; Ray
        writes `:task_name:` / `:actor_name:` lines into it whenever a task or actor starts.
        """
        names = []
        for log in (self.temp / node).glob("session_*/logs/worker-*.out"):
            for line in log.read_text(errors="replace").splitlines():
                for marker in (":task_name:", ":actor_name:"):
                    name = line[len(marker):] if line.startswith(marker) else ""
                    if any(k in name for k in PLAN_NAMES):
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

    def describe(self) -> str:
        return "\n---\n".join(p.read_text()[-1500:] for p in sorted(self.temp.glob("*.log")))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (1 CPU) and a second node (1 CPU, custom resource `worker2`), both alive."""
    temp = Path(tempfile.mkdtemp(prefix="vlr", dir="/tmp"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(32))
    (port,) = _free_ports(1)
    c = Cluster(f"127.0.0.1:{port}", temp, env)
    try:
        c.start_node("head", ["--head", f"--port={port}", "--num-cpus=1",
                              "--include-dashboard=false"])
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
        assert not dead, f"ray start exited:\n{cluster.describe()}"
        try:
            if len(cluster.alive_nodes()) >= nodes:
                return
        except (AssertionError, subprocess.TimeoutExpired):
            pass  # the head is not accepting drivers yet
        assert time.monotonic() < deadline, f"{nodes} nodes not up:\n{cluster.describe()}"
        time.sleep(2)


def test_demo_like_job_runs_across_two_nodes(tmp_path, cluster):
    nodes = cluster.alive_nodes()
    assert len(nodes) == 2
    assert sorted(n["resources"].get("worker2", 0) for n in nodes) == [0, 1]
    rows = [{"video_id": k, "path": str(v), "caption": f"a clip called {k}"}
            for k, v in sorted(sample_videos().items())]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # full patch tokens: the feature bytes (~100 KB a video) dwarf any metadata; the CLIP
    # stage, the pass's last (its workers write the rows), holds the second node's custom
    # resource, so Ray must place it there
    clip = {"init": "random", "seed": 0, "model_config": TINY_CLIP, "batch_size": 2,
            "patch_tokens": "full", "resources": {"worker2": 1}}
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", partition_size=1,
                    extra_stages={"clip": clip})

    # One CPU per node and the CLIP actor holding worker2's: the plan needs both nodes.
    result = run_cli("run", str(job), "--quiet", "--address", cluster.address, timeout=480,
                     env=cluster.env)
    assert result.returncode == 0, result.stderr[-3000:]

    store = tmp_path / "store"
    assert sorted(r["video_id"] for r in read_rows(store, "videos")) == sorted(sample_videos())
    assert len(read_rows(store, "clip_frames")) == 8 * len(rows)
    assert len(list((store / "_commits").glob("*.json"))) == len(rows)
    on_head, on_worker2 = cluster.plan_work("head"), cluster.plan_work("worker2")
    assert on_head and on_worker2, (on_head, on_worker2)

    # The second node's worker process wrote the data files, never the driver (which runs
    # on the head node's machine); the driver only received the batches' reports (what its
    # plan handed it: no feature rows, a few KB).
    [summary] = [json.loads(p.read_text()) for p in (store / "_runs").glob("run-*.json")]
    writers = {tuple(key.split()) for key in summary["writers"]}
    [worker2] = [n["id"] for n in nodes if n["resources"].get("worker2")]
    assert writers and {node for node, _ in writers} == {worker2}, (writers, worker2)
    driver = summary["driver"]
    assert (driver["node"], str(driver["pid"])) not in writers, (driver, writers)
    written = sum(p.stat().st_size for p in store.glob("[!_]*/part-*.parquet"))  # not _inputs
    assert summary["bytes_written"] == written and written > 300_000
    assert 0 < driver["bytes_received"] < 2_000 * len(rows), driver
