"""CLIP frame embeddings: one `clip_frames` row per sampled frame.

Stateful (the model is loaded once per worker, in ``setup``). All frames of a batch of videos
are embedded together in chunks of ``frame_batch``, so short videos still fill the GPU, then
split back per video. Embeddings are L2-normalised and stored fp16, sized to the model's
projection dim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import ConfigDict, Field, field_validator, model_validator

from vlprep.schemas import CLIP_FRAMES, with_vector_dims
from vlprep.stages.base import Record, Resources, Stage, StageOptions, emit
from vlprep.stages.frames import SampledFrames, get_frames


class ClipOptions(StageOptions):
    # `model_config` is pydantic's own attribute, so the job key is an alias of `vision_config`.
    model_config = ConfigDict(populate_by_name=True)

    checkpoint: str | None = Field(default=None, description="local HF CLIP model directory")
    init: Literal["checkpoint", "random"] = "checkpoint"
    seed: int = 0
    vision_config: dict[str, Any] | None = Field(
        default=None, alias="model_config",
        description="CLIPVisionConfig overrides for init: random (default ViT-B/16-like)")
    device: str = "auto"
    frame_batch: int = Field(default=64, gt=0, description="frames per forward pass")
    frames: str = Field(default="frames", description="record key of the sampled frames")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and value.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError("expected auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _checkpoint_or_random(self) -> ClipOptions:
        if self.init == "random":
            if self.checkpoint is not None:
                raise ValueError("give either a checkpoint or init: random, not both")
            return self
        if self.vision_config is not None:
            raise ValueError("model_config applies to init: random only")
        if self.checkpoint is None:
            raise ValueError("checkpoint is required (or set init: random for a demo)")
        if not Path(self.checkpoint).is_dir():
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a directory")
        return self


class ClipStage(Stage):
    """Adds nothing to the record; emits the `clip_frames` rows of each video."""

    kind = "clip"
    Options = ClipOptions
    stateful = True
    tables = ("clip_frames",)
    default_resources = Resources(num_cpus=1.0, batch_size=4, concurrency=1)

    model: Any = None

    def setup(self) -> None:
        if self.model is not None:
            return
        # Imported here so that building the stage (job validation) does not load transformers.
        from vlprep.models.clip import embedding_dim, load_clip, random_clip, resolve_device

        opts: ClipOptions = self.options  # type: ignore[assignment]
        if opts.init == "random":
            model = random_clip(opts.seed, opts.vision_config)
        else:
            model = load_clip(opts.checkpoint)  # type: ignore[arg-type]
        self.device = resolve_device(opts.device)
        self.model = model.to(self.device)
        self.schema = with_vector_dims(CLIP_FRAMES, embedding=embedding_dim(model))

    def __call__(self, batch: list[Record]) -> list[Record]:
        from vlprep.models.clip import embed_frames

        self.setup()
        opts: ClipOptions = self.options  # type: ignore[assignment]
        sampled = [get_frames(record, opts.frames) for record in batch]
        frames = np.concatenate([s.frames for s in sampled])
        embeddings = embed_frames(self.model, frames, self.device, opts.frame_batch)
        start = 0
        for record, s in zip(batch, sampled, strict=True):
            n = len(s)
            emit(record, "clip_frames", self.rows(record, s, embeddings[start:start + n]))
            start += n
        return batch

    def rows(self, record: Record, sampled: SampledFrames, embeddings: np.ndarray) -> pa.Table:
        """One row per frame; the vectors go in as one flat fp16 buffer (no per-row lists)."""
        n, dim = embeddings.shape
        flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float16).reshape(-1))
        return pa.Table.from_arrays([
            pa.array([record["video_id"]] * n, pa.string()),
            pa.array(np.asarray(sampled.indices, dtype=np.int32)),
            pa.array(np.asarray(sampled.times, dtype=np.float32)),
            pa.array(np.arange(n, dtype=np.int16)),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ], schema=self.schema)
