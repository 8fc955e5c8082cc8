"""Options every frozen-backbone stage shares (CLIP, S3D, detector), validated at job load.

Where the weights come from (``checkpoint`` or ``init: random``, from WeightsOptions), which
device and precision they run in, how many inputs go into one forward pass and which record
key holds the sampled frames. A bad checkpoint path fails when the job is read, before Ray
starts; the weights themselves are loaded once per worker, in the stage's ``setup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from vlprep.stages.base import WeightsOptions


class BackboneOptions(WeightsOptions):
    speed_only = frozenset({"device"})

    device: str = Field(default="auto", description="auto (GPU when there is one), cpu, cuda:N")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="autocast dtype; auto: bf16/fp16 on GPU, fp32 on CPU")
    frames: str = Field(default="frames", description="record key of the sampled frames")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and value.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError("expected auto, cpu, cuda or cuda:N")
        return value

    def check_weights(self, kind: Literal["file", "dir"], random_only: dict[str, str] | None = None
                      ) -> None:
        """checkpoint xor init: random; the checkpoint exists; `random_only` options (attribute
        -> job key; they describe a random model) are not set next to a checkpoint."""
        if self.init == "random":
            if self.checkpoint is not None:
                raise ValueError("give either a checkpoint or init: random, not both")
            return
        for name, key in (random_only or {}).items():
            if getattr(self, name) is not None:
                raise ValueError(f"{key} applies to init: random only")
        if self.checkpoint is None:
            raise ValueError("checkpoint is required (or set init: random for a demo)")
        path = Path(self.checkpoint)
        if kind == "dir" and not (path.is_dir() or path.suffix == ".onnx" and path.is_file()):
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a directory")
        if kind == "file" and not path.is_file():
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a file")

