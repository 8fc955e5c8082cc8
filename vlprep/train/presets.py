"""Training settings for the built-in synthetic corpus: each method learns it on a CPU in a
few minutes (used by bench/train.py and the slow tests; the CLI equivalent is in README).

The towers are narrower than the defaults (128 wide): the synthetic features are small and
a 2-core machine trains them in minutes. VideoCLIP takes one clip per video in a batch: the
synthetic videos are 4 s with a two-line transcript, so MMPT's 16 clips of one video would be
near copies of each other, negatives that cannot be told apart. Everything else is each
method's default.
"""

from __future__ import annotations

from typing import Any

SYNTHETIC: dict[str, dict[str, Any]] = {
    "videoclip": {"job": "synthetic-videoclip", "epochs": 45, "batch_size": 16, "lr": 2e-3,
                  "options": {"dim": 128, "clips_per_video": 1}},
    "alpro": {"job": "synthetic-alpro", "epochs": 30, "batch_size": 16, "lr": 1e-3,
              "options": {"dim": 128, "embed_dim": 128}},
    "stoa": {"job": "synthetic-stoa", "epochs": 20, "batch_size": 16, "lr": 1e-3,
             "options": {"dim": 128}},
}


def cli_flags(method: str) -> list[str]:
    """The `vlprep train` flags of a preset."""
    p = SYNTHETIC[method]
    flags = ["--epochs", str(p["epochs"]), "--batch-size", str(p["batch_size"]),
             "--lr", str(p["lr"])]
    for key, value in p["options"].items():
        flags += ["--set", f"{key}={value}"]
    return flags
