"""Object detection with region features: one `regions` row per sampled frame.

Stateful: the detector is loaded once per worker. ``architecture: vinvl_x152c4`` is VinVL's
published X152-C4 with attributes (:mod:`vlprep.stages.detect_vinvl`, 2,048-d features, VinVL's
own settings); the other architectures are torchvision Faster R-CNNs from a state dict (or an
ONNX export run by onnxruntime) with VinVL-style test settings (score 0.2, NMS 0.5, 10 to 100
boxes per frame). All frames of a batch of videos go through the detector together,
``frame_batch`` at a time. Each box gets a region feature (fp16) and Oscar's 6-d geometry.
The detections (without features) are also left on the record under ``key`` for the
trajectories stage.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from vlprep.columns import list_of_vectors
from vlprep.schemas import REGIONS, with_vector_dims
from vlprep.stages.backbone import BackboneOptions, BackboneStage, Encoder, Runtime, table_of
from vlprep.stages.base import Record, Resources
from vlprep.stages.frames import SampledFrames


@dataclass
class DetectedFrames:
    """The detections of one video's sampled frames, passed on to the trajectories stage."""

    boxes: list[np.ndarray]  # per frame: float32 K x 4, x1 y1 x2 y2 in frame pixels
    labels: list[np.ndarray]  # per frame: int64 K
    scores: list[np.ndarray]  # per frame: float32 K (descending; VinVL: its own order)
    names: list[str]  # label map: class id -> name
    indices: np.ndarray  # int64 N: frame index of each sampled frame
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.boxes)


class DetectOptions(BackboneOptions):
    speed_only = frozenset({"frame_batch"})

    checkpoint: str | None = Field(
        default=None, description="vinvl_x152c4: vinvl_vg_x152c4.pth; else a torchvision "
                                  "Faster R-CNN state dict (.pth/.safetensors) or its ONNX export")
    architecture: Literal["vinvl_x152c4", "resnet50_fpn", "resnet50_fpn_v2",
                          "mobilenet_v3_large_fpn", "resnet18_fpn"] = "resnet50_fpn_v2"
    label_map: str | None = Field(
        default=None, description="coco, or a VinVL VG-SGG-dicts JSON / list JSON / text file "
                                  "(vinvl_x152c4: VG-SGG-dicts-vgoi6-clipped.json)")
    num_classes: int | None = Field(default=None, gt=1, description="init: random only; "
                                    "default: the label map's size, else 1595 (VinVL)")
    min_size: int = Field(default=600, gt=0, description="test resize: shorter side")
    max_size: int = Field(default=1000, gt=0, description="test resize: longer side cap")
    proposals: int = Field(default=300, gt=0, description="RPN boxes kept per frame")
    score_thresh: float = Field(default=0.2, ge=0, le=1)
    nms_thresh: float = Field(default=0.5, gt=0, le=1)
    min_detections: int = Field(default=10, ge=0)
    max_detections: int = Field(default=100, gt=0)
    class_candidates: int = Field(default=10, gt=0, description="classes per proposal in NMS")
    region_feature: Literal["head", "roi"] = Field(
        default="head", description="box-head representation, or mean of the RoIAlign map")
    nms_convention: Literal["torchvision", "legacy"] = Field(
        default="torchvision", description="vinvl_x152c4: torchvision's NMS (what the head "
                                           "commit calls) or the compiled kernel's +1 area")
    runtime: Literal["torch", "onnx"] = "torch"
    frame_batch: int = Field(default=8, gt=0, description="frames per forward pass")
    key: str = Field(default="detections", description="record key the detections go under")

    @model_validator(mode="after")
    def _weights(self) -> DetectOptions:
        self.check_weights("file", {"num_classes": "num_classes"})
        if self.checkpoint and self.checkpoint.endswith(".onnx") and self.runtime != "onnx":
            raise ValueError("an .onnx checkpoint needs runtime: onnx")
        if self.label_map not in (None, "coco") and not Path(self.label_map).is_file():
            raise ValueError(f"label_map {self.label_map!r}: no such file (or use coco)")
        if self.min_detections > self.max_detections:
            raise ValueError("min_detections cannot exceed max_detections")
        if self.architecture == "vinvl_x152c4":
            if self.label_map is not None and not self.label_map.endswith(".json"):
                raise ValueError("vinvl_x152c4: label_map is VinVL's VG-SGG-dicts JSON")
            wrong = {"num_classes", "class_candidates", "region_feature"} & self.model_fields_set
            if wrong:
                raise ValueError(f"{sorted(wrong)[0]} applies to the torchvision architectures "
                                 "only (vinvl_x152c4 is VinVL's fixed network)")
            if self.checkpoint and self.checkpoint.endswith(".onnx"):
                raise ValueError("vinvl_x152c4 takes the .pth (runtime: onnx exports it)")
        return self


class DetectStage(BackboneStage[DetectOptions], kind="detect", table="regions",
                  resources=Resources(num_cpus=1.0, batch_size=2, concurrency=1)):
    """Leaves a DetectedFrames under ``key``; emits the `regions` rows of each video."""

    @classmethod
    def leaves(cls, options: DetectOptions) -> tuple[str, ...]:
        return (options.key,)

    def load(self) -> Runtime:
        from vlprep.models import detector as det
        from vlprep.models.region_detector import RegionDetector, VinvlSettings, detect

        opts = self.options
        if opts.architecture == "vinvl_x152c4":
            from vlprep.stages.detect_vinvl import VinvlBackend

            backend = VinvlBackend(opts, self.device)
            self.names, self.attributes = backend.names, backend.attributes
            self.schema = with_vector_dims(REGIONS, features=backend.feature_dim)
            return Encoder(opts.runtime, backend, backend.model,
                           {"num_classes": len(backend.names),
                            "feature_dim": backend.feature_dim})
        self.attributes: list[str] | None = None
        settings = VinvlSettings(opts.score_thresh, opts.nms_thresh, opts.min_detections,
                                 opts.max_detections, opts.class_candidates, opts.region_feature)
        sizes = dict(min_size=opts.min_size, max_size=opts.max_size, proposals=opts.proposals)
        if opts.checkpoint and opts.checkpoint.endswith(".onnx"):
            runtime = self._onnx_session(Path(opts.checkpoint))
        else:
            if opts.init == "random":
                classes = opts.num_classes or (
                    len(det.read_label_map(opts.label_map)) if opts.label_map
                    else det.VG_CLASSES + 1)
                model = det.random_detector(opts.seed, opts.architecture, classes, **sizes)
            else:
                model = det.load_detector(opts.checkpoint_path, opts.architecture, **sizes)
            dims = {"num_classes": int(model.roi_heads.box_predictor.cls_score.out_features),
                    "feature_dim": det.region_feature_dim(model, opts.region_feature)}
            region = RegionDetector(model, settings).to(self.device)
            runtime = Encoder("torch", lambda frames: detect(
                region, frames, self.device, opts.frame_batch, opts.precision), region, dims)
            if opts.runtime == "onnx":  # exported on first use: traced for one frame size
                runtime = Encoder("onnx", self._export_on_first_call(region), None, dims)
        self.names = det.label_names(opts.label_map, runtime.dims["num_classes"])
        self.schema = with_vector_dims(REGIONS, features=runtime.dims["feature_dim"])
        return runtime

    def _onnx_session(self, path: Path) -> Encoder:
        from vlprep.models.onnx_runtime import OnnxSession
        from vlprep.models.region_detector import onnx_detect

        session = OnnxSession(path, self.device)
        meta = session.metadata
        if meta.get("model") != "detector":
            raise ValueError(f"{path}: not a vlprep detector export")
        return Encoder("onnx", lambda frames: onnx_detect(session, frames), session,
                       {k: int(meta[k]) for k in ("num_classes", "feature_dim")})

    def _export_on_first_call(self, region: Any) -> Any:
        from vlprep.models.region_detector import export_detector_onnx

        def run(frames: np.ndarray) -> Any:
            if not isinstance(self.model, Encoder) or self.model.model is None:
                with tempfile.TemporaryDirectory(prefix="vlprep-detector-onnx-") as tmp:
                    path = export_detector_onnx(region.cpu(), Path(tmp) / "detector.onnx",
                                                self.options.frame_batch, frames.shape[1],
                                                frames.shape[2])
                    self.model = self._onnx_session(path)
            return self.model(frames)

        return run

    def leave(self, record: Record, sampled: SampledFrames, outputs: list[Any]) -> None:
        height, width = sampled.frames.shape[1:3]
        record[self.options.key] = DetectedFrames(
            [d.boxes for d in outputs], [d.labels for d in outputs], [d.scores for d in outputs],
            self.names, np.asarray(sampled.indices, np.int64), int(width), int(height))

    def rows(self, record: Record, sampled: SampledFrames, outputs: list[Any], extra: Any = None
             ) -> pa.Table:
        """One row per frame; every per-box column is one flat buffer plus offsets."""
        from vlprep.models.region_detector import box_geometry

        dets = outputs
        n = len(dets)
        offsets = np.concatenate([[0], np.cumsum([len(d.scores) for d in dets])])
        labels = np.concatenate([d.labels for d in dets]).astype(np.int32)
        dim = self.schema.field("features").type.value_type.list_size
        boxes = np.concatenate([d.boxes for d in dets]).reshape(-1, 4)
        geometry = np.concatenate([box_geometry(d.boxes, d.width, d.height) for d in dets])
        features = np.concatenate([d.features for d in dets]).reshape(-1, dim)
        names = pa.array([self.names[i] for i in labels], pa.string())
        off = pa.array(offsets.astype(np.int32))
        return table_of(self.schema, {
            "video_id": pa.array([record["video_id"]] * n, pa.string()),
            "frame_index": pa.array(np.asarray(sampled.indices, np.int32)),
            "time": pa.array(np.asarray(sampled.times, np.float32)),
            "sample_rank": pa.array(np.arange(n, dtype=np.int16)),
            "width": pa.array(np.array([d.width for d in dets], np.int32)),
            "height": pa.array(np.array([d.height for d in dets], np.int32)),
            "boxes": list_of_vectors(boxes.astype(np.float32), offsets, 4, pa.float32()),
            "classes": pa.ListArray.from_arrays(off, pa.array(labels)),
            "class_names": pa.ListArray.from_arrays(off, names),
            "scores": pa.ListArray.from_arrays(off, pa.array(np.concatenate([d.scores
                                                                             for d in dets]))),
            "features": list_of_vectors(features.astype(np.float16), offsets, dim, pa.float16()),
            "geometry": list_of_vectors(geometry, offsets, 6, pa.float32()),
            **self.attribute_columns(dets, offsets),
        })

    def attribute_columns(self, dets: list[Any], offsets: np.ndarray) -> dict[str, pa.Array]:
        """attr_ids / attr_names / attr_scores: a list per box; null without an attribute
        head."""
        columns = ("attr_ids", "attr_names", "attr_scores")
        types = [self.schema.field(c).type for c in columns]
        if self.attributes is None:
            return {c: pa.nulls(len(dets), t) for c, t in zip(columns, types, strict=True)}
        ids = [a.astype(np.int16) for d in dets for a in d.attr_ids]
        names = [[self.attributes[i] for i in a] for a in ids]
        scores = [s.astype(np.float32) for d in dets for s in d.attr_scores]
        off = pa.array(offsets.astype(np.int32))
        return {c: pa.ListArray.from_arrays(off, pa.array(v, t.value_type))
                for c, v, t in zip(columns, (ids, names, scores), types, strict=True)}
