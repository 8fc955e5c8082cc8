"""`vlprep train` and `vlprep eval` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_fake_store import write_store

VLPREP = [sys.executable, "-m", "vlprep"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*VLPREP, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("cli") / "store", 40, partition_size=16,
                       tables=("s3d", "texts"))


def test_train_then_eval(store, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "videoclip", "--store", str(store), "--out", str(run), "--epochs", "2",
                 "--batch-size", "8", "--set", "dim=32", "--set", "heads=2", "--set",
                 "layers=1", "--set", "text_layers=1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "done: videoclip, 2 epochs" in result.stdout
    assert "held-out text->video" in result.stdout and "chance R@1" in result.stdout
    assert (run / "last.json").exists() and (run / "metrics.jsonl").exists()
    from typer.testing import CliRunner

    from vlprep.cli import app

    again = CliRunner().invoke(app, ["eval", str(run), "--store", str(store), "--json"])
    assert again.exit_code == 0, again.output
    metrics = json.loads(again.stdout.strip().splitlines()[-1])
    assert metrics["method"] == "videoclip" and metrics["split"] == "eval"
    assert {"R@1", "R@5", "R@10", "MdR"} <= metrics.keys() and metrics["queries"] > 0
    final = [json.loads(line) for line in (run / "metrics.jsonl").open()
             if '"eval"' in line][-1]
    assert metrics["R@1"] == final["R@1"]  # the same split, the same model
    everything = CliRunner().invoke(app, ["eval", str(run), "--store", str(store),
                                          "--split", "all"])
    assert everything.exit_code == 0 and "(all, 40 queries)" in everything.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "clip4clip", "--store", "S"], "unknown method 'clip4clip'"),
    (["train", "videoclip", "--store", "/nonexistent/store"], "no such directory"),
    (["train", "videoclip", "--store", "STORE", "--set", "dimm=3"], "unknown option 'dimm'"),
    (["train", "stoa", "--store", "STORE"], "no clip_frames, trajectories tables"),
    (["train", "videoclip", "--store", "STORE", "--vtc-only"], "--vtc-only applies to alpro"),
    (["eval", "/nonexistent/run", "--store", "STORE"], "no checkpoint"),
    (["eval", "RUN", "--store", "STORE", "--split", "test"], "--split test: expected"),
])
def test_errors_are_one_line(store, tmp_path, args, message):
    from typer.testing import CliRunner

    from vlprep.cli import app

    args = [str(store) if a == "STORE" else str(tmp_path) if a == "RUN" else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("vlprep:")
             and "WARNING" not in line]
    assert len(lines) == 1 and message in lines[0], result.output
