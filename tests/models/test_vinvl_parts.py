"""Each part of the VinVL port against an independent computation of what
maskrcnn_benchmark / scene_graph_benchmark do (written out here from their definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import nms as tv_nms
from torchvision.ops import roi_align
from vinvl_tiny import TINY

from vlprep.models.vinvl_net import X152C4, FrozenBatchNorm2d, cell_anchors
from vlprep.models.vinvl_ops import (
    attribute_scores,
    class_nms_mask,
    clip_boxes,
    decode,
    filter_detections,
    nms,
    normalize,
    pool,
    resize_boxes,
    resize_image,
    resized_size,
    rpn_proposals,
)


def legacy_roi_align(feature: np.ndarray, box: np.ndarray, out: int, scale: float) -> np.ndarray:
    """ROIAlign_cpu of maskrcnn_benchmark (sampling ratio 0, no half-pixel offset)."""
    channels, height, width = feature.shape
    x1, y1, x2, y2 = box * scale
    rw, rh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    bw, bh = rw / out, rh / out
    gw, gh = math.ceil(rw / out), math.ceil(rh / out)

    def bilinear(y: float, x: float) -> np.ndarray:
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return np.zeros(channels)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= height - 1:
            yh = yl = height - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= width - 1:
            xh = xl = width - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        hy, hx = 1 - ly, 1 - lx
        return (hy * hx * feature[:, yl, xl] + hy * lx * feature[:, yl, xh]
                + ly * hx * feature[:, yh, xl] + ly * lx * feature[:, yh, xh])

    result = np.zeros((channels, out, out))
    for ph in range(out):
        for pw in range(out):
            acc = np.zeros(channels)
            for iy in range(gh):
                for ix in range(gw):
                    acc += bilinear(y1 + ph * bh + (iy + 0.5) * bh / gh,
                                    x1 + pw * bw + (ix + 0.5) * bw / gw)
            result[:, ph, pw] = acc / (gh * gw)
    return result


def test_pool_is_legacy_roi_align():
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.normal(size=(2, 3, 10, 12)).astype(np.float32))
    boxes = [torch.tensor([[0.0, 0.0, 50.0, 40.0], [17.3, 5.1, 150.0, 170.0]]),
             torch.tensor([[100.0, 60.0, 103.0, 61.0]])]
    config = TINY.__class__(**{**TINY.__dict__, "pooler_resolution": 5})
    pooled = pool(features, boxes, config).numpy()
    want = [legacy_roi_align(features[i].numpy(), b.numpy(), 5, 1 / 16)
            for i, bs in enumerate(boxes) for b in bs]
    np.testing.assert_allclose(pooled, np.stack(want), rtol=1e-5, atol=1e-5)
    rois = torch.tensor([[0, 17.3, 5.1, 150.0, 170.0]])
    aligned = roi_align(features, rois, (5, 5), 1 / 16, 0, aligned=True).numpy()
    assert not np.allclose(aligned[0], pooled[1], atol=1e-3)  # the half-pixel variant differs


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, plus_one: bool) -> list:
    one = 1.0 if plus_one else 0.0
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            w = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + one)
            h = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + one)
            area = [(b[2] - b[0] + one) * (b[3] - b[1] + one) for b in (boxes[i], boxes[j])]
            if w * h / (area[0] + area[1] - w * h) <= thresh:
                rest.append(j)
        order = rest
    return keep


def test_nms_conventions():
    # two 10 px boxes overlapping by 5 px: IoU 5/15 without the +1, 6/16 with it
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 41, 41]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    t = torch.from_numpy
    assert nms(t(boxes), t(scores), 0.35).tolist() == [0, 1, 2]
    assert nms(t(boxes), t(scores), 0.35, "legacy").tolist() == [0, 2]
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (60, 2))
    many = np.concatenate([xy, xy + rng.uniform(1, 30, (60, 2))], 1).astype(np.float32)
    s = rng.uniform(0, 1, 60).astype(np.float32)
    for thresh in (0.3, 0.7):
        assert nms(t(many), t(s), thresh).tolist() == greedy_nms(many, s, thresh, False)
        assert nms(t(many), t(s), thresh, "legacy").tolist() == greedy_nms(many, s, thresh, True)


def test_class_nms_mask_is_one_nms_per_class():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 80, (70, 2))
    boxes = torch.from_numpy(np.concatenate([xy, xy + rng.uniform(2, 40, (70, 2))], 1)).float()
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(70, 9))).float() * 3, -1)
    for convention in ("torchvision", "legacy"):
        mask = class_nms_mask(boxes, probs, 0.3, convention)
        assert not mask[:, 0].any()
        for j in range(1, 9):
            want = nms(boxes, probs[:, j], 0.3, convention)
            assert sorted(torch.nonzero(mask[:, j])[:, 0].tolist()) == sorted(want.tolist())
    assert tv_nms(boxes, probs[:, 1], 0.3).tolist() == nms(boxes, probs[:, 1], 0.3).tolist()


def test_box_coder_inclusive_convention():
    boxes = torch.tensor([[10.0, 20.0, 29.0, 59.0]])  # 20 x 40 pixels, inclusive
    assert decode(torch.zeros(1, 4), boxes, (10, 10, 5, 5)).tolist() == boxes.tolist()
    # dx = 10 (/ weight 10): one width right; dw = 5 * log 2: twice as wide about the centre
    delta = torch.tensor([[10.0, 0.0, 5 * math.log(2), 0.0]])
    got = decode(delta, boxes, (10, 10, 5, 5))[0].tolist()
    ctr = 10 + 0.5 * 20 + 20
    np.testing.assert_allclose(got, [ctr - 20, 20, ctr + 20 - 1, 59], rtol=1e-6)
    huge = decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), boxes, (1, 1, 1, 1))[0]
    assert float(huge[2] - huge[0] + 1) == pytest.approx(20 * 1000 / 16, rel=1e-5)  # clipped dw
    clipped = clip_boxes(torch.tensor([[-5.0, -1.0, 300.0, 90.0]]), height=80, width=200)
    assert clipped.tolist() == [[0.0, 0.0, 199.0, 79.0]]


def test_cell_anchors_are_detectrons():
    anchors = cell_anchors(16, X152C4.anchor_sizes, X152C4.aspect_ratios)
    assert anchors.shape == (15, 4)
    # ratio 0.5: w = round(sqrt(512)) = 23, h = round(11.5) = 12, times 32/16
    assert anchors[0].tolist() == [-15.0, -4.0, 30.0, 19.0]
    assert anchors[5].tolist() == [-8.0, -8.0, 23.0, 23.0]  # ratio 1, size 32
    assert anchors[9].tolist() == [-248.0, -248.0, 263.0, 263.0]  # ratio 1, size 512


@pytest.mark.parametrize(("hw", "want"), [((480, 640), (600, 800)), ((224, 224), (600, 600)),
                                          ((100, 1000), (100, 1000)), ((600, 900), (600, 900)),
                                          ((333, 500), (600, 900)), ((1080, 1920), (562, 999)),
                                          ((1920, 1080), (999, 562))])
def test_resize_rule(hw, want):
    assert resized_size(*hw, 600, 1000) == want


def test_resize_image_and_normalize():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    config = TINY.__class__(**{**TINY.__dict__, "min_size": 96, "max_size": 200})
    out = resize_image(image, config)
    want = np.asarray(Image.fromarray(image).resize((128, 96), Image.BILINEAR))
    np.testing.assert_array_equal(out, want)
    x = normalize(torch.from_numpy(out[None]), config)[0]
    r, g, b = (float(v) for v in out[5, 7])
    mean = config.pixel_mean
    np.testing.assert_allclose(x[:, 5, 7].tolist(), [b - mean[0], g - mean[1], r - mean[2]],
                               atol=1e-4)


def test_frozen_batchnorm_has_no_epsilon():
    bn = FrozenBatchNorm2d(2)
    bn.weight.copy_(torch.tensor([2.0, 1.0]))
    bn.bias.copy_(torch.tensor([0.5, 0.0]))
    bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1e-8]))
    x = torch.ones(1, 2, 1, 1)
    np.testing.assert_allclose(bn(x).flatten().tolist(), [0.5, 2e4], rtol=1e-4)


def test_filter_detections_order_and_counts():
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [100, 0, 110, 10],
                          [1, 0, 11, 10], [0, 100, 10, 110]])
    # proposal 3 overlaps 0 (IoU 9/11 > 0.3) and scores below it in both classes, so both
    # its classes are suppressed and it drops out; 4 survives with 0.1 (below 0.2)
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.65, 0.1, 0.25], [0.2, 0.25, 0.55],
                          [0.3, 0.5, 0.2], [0.85, 0.1, 0.05]])
    cfg = TINY.__class__(**{**TINY.__dict__, "min_detections": 0, "max_detections": 10})
    index, labels, scores = filter_detections(boxes, probs, cfg)
    assert index.tolist() == [0, 1, 2]  # >= 0.2, in proposal order (count within range)
    assert labels.tolist() == [1, 2, 2] and scores.tolist() == pytest.approx([0.6, 0.25, 0.55])
    few = TINY.__class__(**{**cfg.__dict__, "min_detections": 4})
    index, labels, scores = filter_detections(boxes, probs, few)
    assert index.tolist() == [0, 2, 1, 4]  # too few: top 4 by score
    cap = TINY.__class__(**{**cfg.__dict__, "max_detections": 2})
    assert filter_detections(boxes, probs, cap)[0].tolist() == [0, 2]


def test_attribute_postprocessing_on_hand_made_scores():
    probs = torch.tensor([[0.30, 0.40, 0.04, 0.20, 0.06],  # background 0.3 is dropped
                          [0.90, 0.02, 0.03, 0.01, 0.04]])  # nothing above 0.05
    cfg = TINY.__class__(**{**TINY.__dict__, "max_attr_per_obj": 3})
    labels, scores = attribute_scores(probs.log(), cfg)
    assert labels.tolist() == [[1, 3, 4], [0, 0, 0]]
    np.testing.assert_allclose(scores.numpy(), [[0.4, 0.2, 0.06], [0, 0, 0]], atol=1e-6)
    # the per-image cap is a kthvalue over all scores, zeros included, as written upstream
    capped = TINY.__class__(**{**cfg.__dict__, "max_attr_per_img": 1})
    labels, scores = attribute_scores(probs.log(), capped)
    assert labels.tolist() == [[1, 3, 4], [0, 0, 0]]
    dense = torch.tensor([[0.0, 0.5, 0.3, 0.2]]).clamp(min=1e-9).log()
    labels, _ = attribute_scores(dense, TINY.__class__(**{**capped.__dict__,
                                                          "max_attr_per_obj": 3}))
    # 3 attributes over a cap of 1: the 3rd smallest of all 4 scores (0 included) is 0.3
    assert labels.tolist() == [[1, 2, 0]]


def test_rpn_proposals_sorted_clipped_and_capped():
    rng = np.random.default_rng(4)
    anchors_per_cell = 15
    objectness = torch.from_numpy(rng.normal(size=(anchors_per_cell, 6, 8))).float()
    deltas = torch.from_numpy(rng.normal(scale=0.2, size=(anchors_per_cell * 4, 6, 8))).float()
    from vlprep.models.vinvl_net import AnchorGenerator

    anchors = AnchorGenerator(X152C4)(6, 8)
    assert anchors.shape == (6 * 8 * 15, 4)
    assert anchors[15].tolist() == (cell_anchors(16, X152C4.anchor_sizes, X152C4.aspect_ratios)[0]
                                    + torch.tensor([16.0, 0, 16, 0])).tolist()
    cfg = TINY.__class__(**{**TINY.__dict__, "pre_nms_top_n": 200, "post_nms_top_n": 30})
    boxes = rpn_proposals(objectness, deltas, anchors, 96, 128, cfg)
    assert len(boxes) == 30
    assert (boxes[:, 0::2] <= 127).all() and (boxes[:, 1::2] <= 95).all() and (boxes >= 0).all()
    # the same through an explicit computation: sigmoid, top 200, decode, clip, NMS 0.7
    flat_obj = objectness.permute(1, 2, 0).reshape(-1).sigmoid()
    flat_del = deltas.view(15, 4, 6, 8).permute(2, 3, 0, 1).reshape(-1, 4)
    top = flat_obj.topk(200).indices
    ref = clip_boxes(decode(flat_del[top], anchors[top], (1, 1, 1, 1)), 96, 128)
    keep = tv_nms(ref, flat_obj[top], 0.7)[:30]
    torch.testing.assert_close(boxes, ref[keep])


def test_resize_boxes_back():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    assert resize_boxes(boxes, (600, 600), (224, 224))[0].tolist() == pytest.approx(
        [10 * 224 / 600, 20 * 224 / 600, 30 * 224 / 600, 40 * 224 / 600])
    assert resize_boxes(boxes, (800, 600), (640, 481))[0].tolist() == pytest.approx(
        [8.0, 20 * 481 / 600, 24.0, 40 * 481 / 600])
