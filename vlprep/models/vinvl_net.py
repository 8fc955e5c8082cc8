"""VinVL's X152-C4 attribute detector as torch modules named like scene_graph_benchmark's.

Every module sits at the attribute path of the original (``AttrRCNN`` -> ``backbone.body``
ResNeXt stages 1-4, ``rpn.head`` / ``rpn.anchor_generator``, ``roi_heads.box`` with
``feature_extractor.head.layer4`` and ``predictor``, ``attribute`` sharing the box head's
feature extractor), so ``state_dict()`` has exactly the published file's keys. Only the
networks live here; the test-time box logic is in :mod:`vlprep.models.vinvl_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VinVLConfig:
    """Architecture and test settings; the defaults are ``sgg_configs/vgattr/vinvl_x152c4.yaml``
    on top of maskrcnn_benchmark's and scene_graph_benchmark's defaults, with the README's
    feature-extraction overrides (NMS_FILTER 1, SCORE_THRESH 0.2, IGNORE_BOX_REGRESSION)."""

    blocks: tuple[int, int, int] = (3, 8, 36)  # R-152-C4: res2, res3, res4
    head_blocks: int = 3  # res5 in the box head
    groups: int = 32
    width_per_group: int = 8
    stem_channels: int = 64
    res2_channels: int = 256
    num_classes: int = 1595  # background + 1,594 Visual Genome classes
    num_attributes: int = 525  # background + 524 attributes
    cls_embed_dim: int = 256
    attr_embed_dim: int = 512
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_stride: int = 16
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    rpn_nms: float = 0.7
    rpn_min_size: int = 0
    pooler_resolution: int = 14
    pooler_scale: float = 1.0 / 16
    sampling_ratio: int = 0
    score_thresh: float = 0.2
    class_nms: float = 0.3  # filter_results_peter's fixed per-class NMS
    min_detections: int = 10
    max_detections: int = 100
    attr_thresh: float = 0.05
    max_attr_per_obj: int = 16
    max_attr_per_img: int = 100
    min_size: int = 600
    max_size: int = 1000
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)  # BGR, 0-255
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    nms: str = "torchvision"  # what the head commit calls; "legacy": the +1 area convention

    @property
    def backbone_channels(self) -> int:
        return self.res2_channels * 4

    @property
    def feature_dim(self) -> int:
        return self.res2_channels * 8


X152C4 = VinVLConfig()


class FrozenBatchNorm2d(nn.Module):
    """maskrcnn_benchmark's: four buffers, and no epsilon (scale = weight / sqrt(var))."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("weight", torch.ones(n))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + bias.reshape(1, -1, 1, 1).to(x.dtype)


class Bottleneck(nn.Module):
    """ResNeXt bottleneck, stride on the 3x3 (STRIDE_IN_1X1 False), projection shortcut
    (``downsample``) where the channel count changes."""

    def __init__(self, cin: int, mid: int, cout: int, groups: int, stride: int):
        super().__init__()
        self.downsample = None
        if cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            FrozenBatchNorm2d(cout))
        self.conv1 = nn.Conv2d(cin, mid, 1, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=1, groups=groups, bias=False)
        self.bn2 = FrozenBatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def make_stage(cin: int, mid: int, cout: int, count: int, groups: int,
               stride: int) -> nn.Sequential:
    blocks = [Bottleneck(cin if i == 0 else cout, mid, cout, groups, stride if i == 0 else 1)
              for i in range(count)]
    return nn.Sequential(*blocks)


class Stem(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 7, 2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)


class ResNetBody(nn.Module):
    """Stem + res2..res4 (``layer1``..``layer3``); returns C4 at stride 16."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.stem = Stem(c.stem_channels)
        cin, mid, cout = c.stem_channels, c.groups * c.width_per_group, c.res2_channels
        for i, count in enumerate(c.blocks):
            self.add_module(f"layer{i + 1}", make_stage(
                cin, mid * 2 ** i, cout * 2 ** i, count, c.groups, 1 if i == 0 else 2))
            cin = cout * 2 ** i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.stem(x))))


class Backbone(nn.Module):
    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.body = ResNetBody(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def cell_anchors(stride: int, sizes: tuple[int, ...], ratios: tuple[float, ...]) -> torch.Tensor:
    """Detectron's generate_anchors: ratio then scale enumeration around the
    (0, 0, stride-1, stride-1) window, rounded widths; A x 4, x1 y1 x2 y2."""
    w = h = float(stride)
    cx = cy = 0.5 * (stride - 1)
    ws = np.round(np.sqrt(w * h / np.asarray(ratios, np.float64)))
    hs = np.round(ws * np.asarray(ratios, np.float64))
    scales = np.asarray(sizes, np.float64) / stride
    out = []
    for rw, rh in zip(ws, hs, strict=True):
        sw, sh = rw * scales, rh * scales
        out.append(np.stack([cx - 0.5 * (sw - 1), cy - 0.5 * (sh - 1),
                             cx + 0.5 * (sw - 1), cy + 0.5 * (sh - 1)], axis=1))
    return torch.from_numpy(np.concatenate(out)).float()


class AnchorGenerator(nn.Module):
    """Holds the cell anchors as buffer ``cell_anchors.0`` (a BufferList in the original,
    so the published state dict carries them)."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.stride = c.anchor_stride
        self.cell_anchors = nn.Module()
        self.cell_anchors.register_buffer("0", cell_anchors(c.anchor_stride, c.anchor_sizes,
                                                            c.aspect_ratios))

    def forward(self, height: int, width: int) -> torch.Tensor:
        """All anchors of an H x W feature map, (y, x, anchor) order, in input pixels."""
        base = getattr(self.cell_anchors, "0")
        xs = torch.arange(0, width * self.stride, self.stride, dtype=torch.float32,
                          device=base.device)
        ys = torch.arange(0, height * self.stride, self.stride, dtype=torch.float32,
                          device=base.device)
        sy, sx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([sx.reshape(-1), sy.reshape(-1)] * 2, dim=1)  # x, y, x, y
        return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


class RPNHead(nn.Module):
    def __init__(self, channels: int, anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.cls_logits = nn.Conv2d(channels, anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, anchors * 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = F.relu(self.conv(x))
        return self.cls_logits(t), self.bbox_pred(t)


class RPN(nn.Module):
    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.anchor_generator = AnchorGenerator(c)
        self.head = RPNHead(c.backbone_channels, len(c.anchor_sizes) * len(c.aspect_ratios))


class ResNetHead(nn.Module):
    """res5 as ``layer4`` (stride 2 on its first block): 14x14 RoIs -> 7x7 maps."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        mid = c.groups * c.width_per_group * 8
        self.layer4 = make_stage(c.backbone_channels, mid, c.feature_dim, c.head_blocks,
                                 c.groups, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(x)


class BoxFeatureExtractor(nn.Module):
    """ResNet50Conv5ROIFeatureExtractor minus its pooler (RoIAlign has no weights; it runs in
    :func:`vlprep.models.vinvl_ops.pool`)."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.head = ResNetHead(c)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(pooled)


class BoxPredictor(nn.Module):
    """FastRCNNPredictor: average pool, class logits (and box regression, loaded but unused
    under TEST.IGNORE_BOX_REGRESSION)."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.cls_score = nn.Linear(c.feature_dim, c.num_classes)
        self.bbox_pred = nn.Linear(c.feature_dim, c.num_classes * 4)


class BoxHead(nn.Module):
    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.feature_extractor = BoxFeatureExtractor(c)
        self.predictor = BoxPredictor(c)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoIAlign maps -> (2048-d averaged box features, class logits)."""
        features = self.feature_extractor(pooled).mean(dim=(2, 3))
        return features, self.predictor.cls_score(features)


class AttributePredictor(nn.Module):
    """AttributeRCNNPredictor: [pooled feature, class embedding] -> fc_attr -> 525 logits."""

    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.cls_embedding = nn.Embedding(c.num_classes, c.cls_embed_dim)
        self.fc_attr = nn.Linear(c.feature_dim + c.cls_embed_dim, c.attr_embed_dim)
        self.attr_score = nn.Linear(c.attr_embed_dim, c.num_attributes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([features, self.cls_embedding(labels).to(features.dtype)], dim=1)
        return self.attr_score(F.relu(self.fc_attr(x)))


class AttributeHead(nn.Module):
    def __init__(self, c: VinVLConfig, shared: BoxFeatureExtractor):
        super().__init__()
        self.feature_extractor = shared  # SHARE_BOX_FEATURE_EXTRACTOR: the same module
        self.predictor = AttributePredictor(c)


class RoIHeads(nn.Module):
    def __init__(self, c: VinVLConfig):
        super().__init__()
        self.box = BoxHead(c)


class VinVLNet(nn.Module):
    """The weights of AttrRCNN with the attribute head; forward pieces are called by
    :class:`vlprep.models.vinvl.VinVL`."""

    def __init__(self, c: VinVLConfig = X152C4):
        super().__init__()
        self.config = c
        self.backbone = Backbone(c)
        self.rpn = RPN(c)
        self.roi_heads = RoIHeads(c)
        self.attribute = AttributeHead(c, self.roi_heads.box.feature_extractor)
