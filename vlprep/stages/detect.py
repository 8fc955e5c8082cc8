"""VinVL-style object detection with region features: one `regions` row per sampled frame.

Stateful: a torchvision Faster R-CNN is loaded once per worker from a state dict (or an ONNX
export run by onnxruntime), with VinVL's test settings (score 0.2, NMS 0.5, 10 to 100 boxes
per frame). All frames of a batch of videos go through the detector together, ``frame_batch``
at a time. Each box gets a region feature (fp16) and Oscar's 6-d geometry. The detections
(without features) are also left on the record under ``key`` for the trajectories stage.
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
from vlprep.stages.backbone import BackboneOptions
from vlprep.stages.base import Contract, Record, Resources, Stage, emit
from vlprep.stages.frames import SampledFrames, get_frames


@dataclass
class DetectedFrames:
    """The detections of one video's sampled frames, passed on to the trajectories stage."""

    boxes: list[np.ndarray]  # per frame: float32 K x 4, x1 y1 x2 y2 in frame pixels
    labels: list[np.ndarray]  # per frame: int64 K
    scores: list[np.ndarray]  # per frame: float32 K, descending
    names: list[str]  # label map: class id -> name
    indices: np.ndarray  # int64 N: frame index of each sampled frame
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.boxes)


class DetectOptions(BackboneOptions):
    speed_only = frozenset({"frame_batch"})

    checkpoint: str | None = Field(
        default=None, description="torchvision Faster R-CNN state dict (.pth/.safetensors) "
                                  "or its ONNX export")
    architecture: Literal["resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v3_large_fpn",
                          "resnet18_fpn"] = "resnet50_fpn_v2"
    label_map: str | None = Field(
        default=None, description="coco, or a VinVL VG-SGG-dicts JSON / list JSON / text file")
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
        return self


class DetectStage(Stage[DetectOptions]):
    """Leaves a DetectedFrames under ``key``; emits the `regions` rows of each video."""

    kind = "detect"
    Options = DetectOptions
    stateful = True
    tables = ("regions",)
    default_resources = Resources(num_cpus=1.0, batch_size=2, concurrency=1)

    model: Any = None

    @classmethod
    def contract(cls, options: DetectOptions) -> Contract:
        return Contract(reads=(options.frames,), writes=(options.key,), tables=cls.tables)

    def setup(self) -> None:
        if self.model is not None:
            return
        from vlprep.models import detector as det
        from vlprep.models.accel import resolve_device
        from vlprep.models.vinvl import RegionDetector, VinvlSettings

        opts = self.options
        self.device = resolve_device(opts.device)
        settings = VinvlSettings(opts.score_thresh, opts.nms_thresh, opts.min_detections,
                                 opts.max_detections, opts.class_candidates, opts.region_feature)
        sizes = dict(min_size=opts.min_size, max_size=opts.max_size, proposals=opts.proposals)
        if opts.checkpoint and opts.checkpoint.endswith(".onnx"):
            from vlprep.models.onnx_runtime import OnnxSession

            self.model = OnnxSession(opts.checkpoint, self.device)
            meta = self.model.metadata
            if meta.get("model") != "detector":
                raise ValueError(f"{opts.checkpoint}: not a vlprep detector export")
            num_classes, dim = int(meta["num_classes"]), int(meta["feature_dim"])
        else:
            if opts.init == "random":
                classes = opts.num_classes or (
                    len(det.read_label_map(opts.label_map)) if opts.label_map
                    else det.VG_CLASSES + 1)
                model = det.random_detector(opts.seed, opts.architecture, classes, **sizes)
            else:
                model = det.load_detector(opts.checkpoint, opts.architecture,  # type: ignore
                                          **sizes)
            num_classes = int(model.roi_heads.box_predictor.cls_score.out_features)
            dim = det.region_feature_dim(model, opts.region_feature)
            self.model = RegionDetector(model, settings).to(self.device)
        self.names = det.label_names(opts.label_map, num_classes)
        self.schema = with_vector_dims(REGIONS, features=dim)

    def _onnx(self, frames: np.ndarray) -> Any:
        """Export on first use (the graph is traced for one frame size and batch)."""
        from vlprep.models.onnx_runtime import OnnxSession
        from vlprep.models.vinvl import export_detector_onnx

        opts = self.options
        with tempfile.TemporaryDirectory(prefix="vlprep-detector-onnx-") as tmp:
            path = export_detector_onnx(self.model.cpu(), Path(tmp) / "detector.onnx",
                                        opts.frame_batch, frames.shape[1], frames.shape[2])
            return OnnxSession(path, self.device)

    def detect(self, frames: np.ndarray) -> list[Any]:
        from vlprep.models.vinvl import detect, onnx_detect

        opts = self.options
        if opts.runtime == "onnx" and not hasattr(self.model, "metadata"):
            self.model = self._onnx(frames)
        if hasattr(self.model, "metadata"):
            return onnx_detect(self.model, frames)
        return detect(self.model, frames, self.device, opts.frame_batch, opts.precision)

    def __call__(self, batch: list[Record]) -> list[Record]:
        self.setup()
        opts = self.options
        sampled = [get_frames(record, opts.frames) for record in batch]
        found = self.detect(np.concatenate([s.frames for s in sampled]))
        start = 0
        for record, s in zip(batch, sampled, strict=True):
            dets = found[start:start + len(s)]
            start += len(s)
            emit(record, "regions", self.rows(record, s, dets))
            height, width = s.frames.shape[1:3]
            record[opts.key] = DetectedFrames(
                [d.boxes for d in dets], [d.labels for d in dets], [d.scores for d in dets],
                self.names, np.asarray(s.indices, np.int64), int(width), int(height))
        return batch

    def rows(self, record: Record, sampled: SampledFrames, dets: list[Any]) -> pa.Table:
        """One row per frame; every per-box column is one flat buffer plus offsets."""
        from vlprep.models.vinvl import box_geometry

        n = len(dets)
        offsets = np.concatenate([[0], np.cumsum([len(d.scores) for d in dets])])
        labels = np.concatenate([d.labels for d in dets]).astype(np.int32)
        dim = self.schema.field("features").type.value_type.list_size
        boxes = np.concatenate([d.boxes for d in dets]).reshape(-1, 4)
        geometry = np.concatenate([box_geometry(d.boxes, d.width, d.height) for d in dets])
        features = np.concatenate([d.features for d in dets]).reshape(-1, dim)
        names = pa.array([self.names[i] for i in labels], pa.string())
        off = pa.array(offsets.astype(np.int32))
        return pa.Table.from_arrays([
            pa.array([record["video_id"]] * n, pa.string()),
            pa.array(np.asarray(sampled.indices, np.int32)),
            pa.array(np.asarray(sampled.times, np.float32)),
            pa.array(np.arange(n, dtype=np.int16)),
            pa.array(np.array([d.width for d in dets], np.int32)),
            pa.array(np.array([d.height for d in dets], np.int32)),
            list_of_vectors(boxes.astype(np.float32), offsets, 4, pa.float32()),
            pa.ListArray.from_arrays(off, pa.array(labels)),
            pa.ListArray.from_arrays(off, names),
            pa.ListArray.from_arrays(off, pa.array(np.concatenate([d.scores for d in dets]))),
            list_of_vectors(features.astype(np.float16), offsets, dim, pa.float16()),
            list_of_vectors(geometry, offsets, 6, pa.float32()),
        ], schema=self.schema)
