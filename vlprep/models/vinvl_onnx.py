"""``runtime: onnx`` for VinVL: its three networks as ONNX graphs, run by ONNX Runtime.

The heavy parts are exported with dynamic sizes (no graph per size bucket): the trunk
(normalised N x 3 x H x W -> C4 features, RPN objectness and deltas), the box head (RoIAlign
maps R x 1024 x 14 x 14 -> 2,048-d features and class logits) and the attribute predictor
(features + labels -> attribute logits). The box logic between them (anchors, proposals,
RoIAlign, the per-class NMS filter, attribute post-processing) is the same fp32 torch code as
the torch runtime, so both runtimes differ only by the graphs' float arithmetic. Each file
carries the VinVL configuration in its metadata.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from vlprep.models.onnx_runtime import OnnxSession, export
from vlprep.models.vinvl import VinVL
from vlprep.models.vinvl_net import AnchorGenerator, VinVLConfig

PARTS = ("trunk", "box_head", "attribute")


class _Trunk(nn.Module):
    def __init__(self, det: VinVL):
        super().__init__()
        self.backbone, self.head = det.net.backbone, det.net.rpn.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c4 = self.backbone(x)
        objectness, deltas = self.head(c4)
        return c4, objectness, deltas


class _Attribute(nn.Module):
    def __init__(self, det: VinVL):
        super().__init__()
        self.predictor = det.net.attribute.predictor

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.predictor(features, labels)


def export_vinvl_onnx(det: VinVL, folder: str | Path) -> Path:
    """Write trunk.onnx, box_head.onnx and attribute.onnx under `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = det.config
    det = det.float().cpu().eval()
    meta = {"model": "vinvl", "config": dataclasses.asdict(c)}
    size = 2 * c.anchor_stride * 4
    image = torch.randn(1, 3, size, size + c.anchor_stride) * 50
    export(_Trunk(det), (image,), folder / "trunk.onnx", ["images"],
           ["c4", "objectness", "deltas"],
           {"images": {0: "n", 2: "h", 3: "w"}, "c4": {0: "n", 2: "fh", 3: "fw"},
            "objectness": {0: "n", 2: "fh", 3: "fw"}, "deltas": {0: "n", 2: "fh", 3: "fw"}},
           {**meta, "part": "trunk"})
    pooled = torch.randn(3, c.backbone_channels, c.pooler_resolution, c.pooler_resolution)
    export(det.net.roi_heads.box, (pooled,), folder / "box_head.onnx", ["pooled"],
           ["features", "logits"], {"pooled": {0: "r"}, "features": {0: "r"},
                                    "logits": {0: "r"}}, {**meta, "part": "box_head"})
    features = torch.randn(3, c.feature_dim)
    labels = torch.tensor([1, 2, 1])
    export(_Attribute(det), (features, labels), folder / "attribute.onnx",
           ["features", "labels"], ["logits"],
           {"features": {0: "k"}, "labels": {0: "k"}, "logits": {0: "k"}},
           {**meta, "part": "attribute"})
    anchors = det.net.rpn.anchor_generator.cell_anchors.state_dict()["0"]
    (folder / "anchors.json").write_text(json.dumps(anchors.tolist()))
    return folder


class VinVLOnnx(VinVL):
    """The same detect() with the three networks in ONNX Runtime sessions."""

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu"):
        folder = Path(folder)
        sessions = {p: OnnxSession(folder / f"{p}.onnx", device) for p in PARTS}
        meta = sessions["trunk"].metadata
        if meta.get("model") != "vinvl":
            raise ValueError(f"{folder}: not a vlprep VinVL export")
        raw = meta["config"]
        config = VinVLConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in raw.items()})
        nn.Module.__init__(self)
        self.config = config
        self.sessions = sessions
        self.generator = AnchorGenerator(config)
        cell = torch.tensor(json.loads((folder / "anchors.json").read_text()))
        self.generator.cell_anchors.register_buffer("0", cell)
        self.precision = "fp32"
        self.timings = None
        self._device = torch.device("cpu")  # box logic on the host; sessions pick providers

    @property
    def device(self) -> torch.device:
        return self._device

    def _run(self, part: str, **inputs: torch.Tensor) -> list[torch.Tensor]:
        out = self.sessions[part].run(**{k: v.detach().cpu().float().numpy()
                                         if v.is_floating_point() else v.cpu().numpy()
                                         for k, v in inputs.items()})
        return [torch.from_numpy(v) for v in out.values()]

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self._timed("backbone"):
            c4, objectness, deltas = self._run("trunk", images=x)
        return c4, objectness, deltas

    def box_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self._run("box_head", pooled=pooled)
        return features, logits

    def attribute_logits(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._run("attribute", features=features, labels=labels)[0]

    def anchors(self, height: int, width: int) -> torch.Tensor:
        return self.generator(height, width)
