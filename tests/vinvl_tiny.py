"""A tiny configuration of VinVL's architecture code (same modules, fewer blocks and
channels) for fast forward tests, and helpers shared by the VinVL tests."""

from __future__ import annotations

import numpy as np

from vlprep.models.vinvl_net import VinVLConfig

TINY = VinVLConfig(blocks=(1, 2, 1), head_blocks=2, groups=2, width_per_group=4,
                   stem_channels=8, res2_channels=16, num_classes=12, num_attributes=24,
                   cls_embed_dim=8, attr_embed_dim=16, min_size=96, max_size=160,
                   pre_nms_top_n=500, post_nms_top_n=60)


def images(seed: int = 0) -> list[np.ndarray]:
    """Smooth-ish random RGB images of different sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in ((120, 200), (90, 90), (200, 64)):
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
        out.append(np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), np.uint8))[:h, :w]))
    return out
