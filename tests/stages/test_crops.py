from __future__ import annotations

import numpy as np
import pytest

from vlprep.stages.crops import Box, crop_view, sample_box, sample_boxes, video_rng


def test_boxes_follow_alpro_rules():
    boxes = [b for v in range(50) for b in sample_boxes(f"video-{v}", 0, 4, 224, 224)]
    for b in boxes:
        assert b.left % 16 == b.top % 16 == b.width % 16 == b.height % 16 == 0
        assert b.width >= 16 and b.height >= 16
        assert b.left + b.width <= 224 and b.top + b.height <= 224
        # snapping only shrinks the drawn area (at most 0.5 of the frame); the aspect is
        # drawn in [0.3, 1/0.3] before snapping
        assert b.width * b.height <= 0.5 * 224 * 224
        assert 0.3 * 0.5 < b.height / b.width < 2 / 0.3
    areas = np.array([b.width * b.height for b in boxes]) / 224**2
    assert 0.2 < areas.mean() < 0.5 and len({(b.left, b.top) for b in boxes}) > 20


def test_boxes_are_seeded_by_video_and_seed_only():
    a = sample_boxes("vid", 3, 4, 224, 224)
    np.random.seed(1)  # global state plays no part
    assert sample_boxes("vid", 3, 4, 224, 224) == a
    assert sample_boxes("vid", 4, 4, 224, 224) != a
    assert sample_boxes("other", 3, 4, 224, 224) != a
    assert sample_boxes("vid", 3, 6, 224, 224)[:4] == a  # more crops extend, not reshuffle
    assert video_rng("vid", 0).integers(1 << 30) == video_rng("vid", 0).integers(1 << 30)


def test_tiny_frames_fall_back_to_a_centred_box():
    assert sample_box(video_rng("v", 0), 20, 20) == Box(0, 0, 16, 16)
    with pytest.raises(ValueError, match="smaller than one 16-pixel patch"):
        sample_box(video_rng("v", 0), 8, 224)


def test_masked_and_resized_views():
    frames = np.random.default_rng(0).integers(1, 256, (3, 224, 224, 3), dtype=np.uint8)
    box = Box(32, 48, 64, 96)
    masked = crop_view(frames, box, "masked", 224)
    inside = (slice(None), slice(48, 144), slice(32, 96))
    assert np.array_equal(masked[inside], frames[inside])
    masked[inside] = 0
    assert not masked.any()  # black outside the box
    resized = crop_view(frames, box, "resized", 224)
    assert resized.shape == (3, 224, 224, 3) and resized.dtype == np.uint8
    flat = np.full((1, 224, 224, 3), 77, np.uint8)
    assert (crop_view(flat, box, "resized", 112) == 77).all()
    with pytest.raises(ValueError, match="unknown crop view"):
        crop_view(frames, box, "blurred", 224)
