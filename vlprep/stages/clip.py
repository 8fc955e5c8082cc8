"""CLIP frame embeddings (and optionally patch tokens): one `clip_frames` row per frame.

Stateful (the model is loaded once per worker, in ``setup``). All frames of a batch of videos
are embedded together in chunks of ``frame_batch``, so short videos still fill the GPU, then
split back per video. Embeddings are L2-normalised and stored fp16, sized to the model's
projection dim. Patch tokens are the tokens entering block ``patch_block`` (default: the last
block, which STOA-VLP pools objects from), stored fp16 as ``none``, pooled to a
``patch_grid`` x ``patch_grid`` grid, or ``full``. ``runtime: onnx`` runs the same graph in
onnxruntime: exported from the checkpoint at set-up, or read from an ``.onnx`` checkpoint.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import ConfigDict, Field, model_validator

from vlprep.columns import list_of_vectors
from vlprep.schemas import CLIP_FRAMES, with_vector_dims
from vlprep.stages.backbone import BackboneOptions, BackboneStage, Encoder, Runtime, table_of
from vlprep.stages.base import Record, Resources
from vlprep.stages.frames import SampledFrames


def clip_frames_schema(projection_dim: int, hidden_size: int) -> pa.Schema:
    """`clip_frames` sized to a model: embedding dim and patch-token width."""
    schema = with_vector_dims(CLIP_FRAMES, embedding=projection_dim)
    tokens = pa.field("patch_tokens", pa.list_(pa.list_(pa.float16(), hidden_size)))
    return schema.set(schema.get_field_index("patch_tokens"), tokens)


class ClipOptions(BackboneOptions):
    speed_only = frozenset({"frame_batch"})

    # `model_config` is pydantic's own attribute, so the job key is an alias of `vision_config`.
    model_config = ConfigDict(populate_by_name=True)

    checkpoint: str | None = Field(
        default=None, description="local HF CLIP model directory, or an exported .onnx file")
    vision_config: dict[str, Any] | None = Field(
        default=None, alias="model_config",
        description="CLIPVisionConfig overrides for init: random (default ViT-B/16-like)")
    frame_batch: int = Field(default=64, gt=0, description="frames per forward pass")
    patch_tokens: Literal["none", "grid", "full"] = "none"
    patch_block: int = Field(default=-1, description="tokens entering this block (-1: last)")
    patch_grid: int = Field(default=7, gt=0, description="grid side for patch_tokens: grid")
    runtime: Literal["torch", "onnx"] = "torch"

    @model_validator(mode="after")
    def _checkpoint_or_random(self) -> ClipOptions:
        self.check_weights("dir", {"vision_config": "model_config"})
        if self.checkpoint and self.checkpoint.endswith(".onnx") and self.runtime != "onnx":
            raise ValueError("an .onnx checkpoint needs runtime: onnx")
        return self

    @property
    def grid(self) -> int | None:
        return self.patch_grid if self.patch_tokens == "grid" else None


class ClipStage(BackboneStage[ClipOptions], kind="clip", table="clip_frames",
                resources=Resources(num_cpus=1.0, batch_size=4, concurrency=1)):
    """Adds nothing to the record; emits the `clip_frames` rows of each video."""

    def load(self) -> Runtime:
        # Imported here so that building the stage (job validation) does not load transformers.
        from vlprep.models.clip import ClipFeatures, load_clip, random_clip

        opts = self.options
        block = None if opts.patch_tokens == "none" else opts.patch_block
        if opts.checkpoint and opts.checkpoint.endswith(".onnx"):
            runtime = self._onnx(Path(opts.checkpoint), block)
        else:
            model = (random_clip(opts.seed, opts.vision_config) if opts.init == "random"
                     else load_clip(opts.checkpoint_path))
            features = ClipFeatures(model, block, opts.grid)
            runtime = self._export(features) if opts.runtime == "onnx" else \
                self._torch(features.to(self.device))
        self.schema = clip_frames_schema(runtime.dims["projection_dim"],
                                         runtime.dims["hidden_size"])
        return runtime

    def _torch(self, features: Any) -> Encoder:
        from vlprep.models.clip import clip_features

        opts = self.options
        config = features.model.config
        return Encoder("torch", lambda frames: clip_features(
            features, frames, self.device, opts.frame_batch, opts.precision), features,
            {"projection_dim": int(config.projection_dim),
             "hidden_size": int(config.hidden_size)})

    def _export(self, features: Any) -> Encoder:
        from vlprep.models.clip import export_clip_onnx

        with tempfile.TemporaryDirectory(prefix="vlprep-clip-onnx-") as tmp:
            path = export_clip_onnx(features, Path(tmp) / "clip.onnx")
            return self._onnx(path, features.patch_block)

    def _onnx(self, path: Path, block: int | None) -> Encoder:
        from vlprep.models.clip import onnx_clip_features
        from vlprep.models.onnx_runtime import OnnxSession

        opts = self.options
        session = OnnxSession(path, self.device)
        meta = session.metadata
        if meta.get("model") != "clip":
            raise ValueError(f"{path}: not a vlprep CLIP export")
        layers = int(meta["num_layers"])
        want = (None if block is None else block % layers, opts.grid)
        if want != (meta["patch_block"], meta["patch_grid"]):
            raise ValueError(f"{path}: exported with patch_block={meta['patch_block']}, "
                             f"patch_grid={meta['patch_grid']}; the job asks for "
                             f"patch_tokens={opts.patch_tokens}, patch_block={block}")
        return Encoder("onnx", lambda frames: onnx_clip_features(session, frames,
                                                                 opts.frame_batch), session,
                       {k: int(meta[k]) for k in ("projection_dim", "hidden_size")})

    def rows(self, record: Record, sampled: SampledFrames, outputs: Any, extra: Any = None
             ) -> pa.Table:
        """One row per frame; the vectors go in as one flat fp16 buffer (no per-row lists)."""
        embeddings, patches = outputs
        n, dim = embeddings.shape
        flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float16).reshape(-1))
        token_type = self.schema.field("patch_tokens").type
        if patches is None or patches.shape[1] == 0:
            grid, tokens = pa.nulls(n, pa.int16()), pa.nulls(n, token_type)
        else:
            p = patches.shape[1]
            grid = pa.array(np.full(n, round(p ** 0.5), np.int16))
            tokens = list_of_vectors(patches.astype(np.float16), np.arange(n + 1) * p,
                                     patches.shape[2], pa.float16())
        return table_of(self.schema, {
            "video_id": pa.array([record["video_id"]] * n, pa.string()),
            "frame_index": pa.array(np.asarray(sampled.indices, dtype=np.int32)),
            "time": pa.array(np.asarray(sampled.times, dtype=np.float32)),
            "sample_rank": pa.array(np.arange(n, dtype=np.int16)),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
            "patch_grid": grid,
            "patch_tokens": tokens,
        })
