"""S3D-G as trained on HowTo100M with MIL-NCE: the video tower VideoCLIP's features come from.

The published checkpoint ``s3d_howto100m.pth`` is a plain state dict of a network with a 3D
space-to-depth stem, separable 3D convolutions with self-gating, inception blocks
``mixed_3b`` .. ``mixed_5c`` and an ``fc`` 1024 -> 512. Parameter names and shapes here follow
that layout, so the file loads as it is (strict for every video key; the ``text_module.*``
word-embedding keys are ignored). torchvision's ``s3d`` is another network and cannot load it.

Input: B x 3 x T x H x W floats in [0, 1] (no mean/std), T, H and W even. Output: a dict with
``video_embedding`` (B x 512, the joint text-video space) and ``mixed_5c`` (B x 1024, the
spatio-temporal average of the last block).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlprep.errors import CheckpointError  # noqa: F401 - re-exported
from vlprep.models.accel import Precision, autocast, to_device
from vlprep.models.checkpoint import load_into, read_state_dict

log = logging.getLogger("vlprep")

# (b0, b1 reduce, b1, b2 reduce, b2, pool projection) output channels of each inception block.
_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Max pools with TensorFlow "SAME" padding, run before the named block: (kernel, stride).
_POOLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "conv_2b": ((1, 3, 3), (1, 2, 2)),
    "mixed_3b": ((1, 3, 3), (1, 2, 2)),
    "mixed_4b": ((3, 3, 3), (2, 2, 2)),
    "mixed_5b": ((2, 2, 2), (2, 2, 2)),
}


class _Unit(nn.Module):
    """Conv3d-BN-ReLU; a separable unit factorises a k x k x k kernel into a spatial
    1 x k x k conv (``conv1``) and a temporal k x 1 x 1 conv (``conv2``), each with BN-ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int],
                 padding: int | tuple[int, int, int] = 0, separable: bool = False):
        super().__init__()
        k = (kernel,) * 3 if isinstance(kernel, int) else kernel
        p = (padding,) * 3 if isinstance(padding, int) else padding
        self.separable = separable
        if separable:
            self.conv1 = nn.Conv3d(cin, cout, (1, k[1], k[2]), padding=(0, p[1], p[2]), bias=False)
            self.conv2 = nn.Conv3d(cout, cout, (k[0], 1, 1), padding=(p[0], 0, 0), bias=False)
            self.bn2 = nn.BatchNorm3d(cout)
        else:
            self.conv1 = nn.Conv3d(cin, cout, k, padding=p, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.separable:
            x = F.relu(self.bn2(self.conv2(x)))
        return x


class _Gate(nn.Module):
    """Self-gating: scale each channel by a sigmoid of its spatio-temporal mean (S3D-G)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class _Mixed(nn.Module):
    """An inception block of four gated branches: 1x1x1, 1x1x1 -> separable 3x3x3 (twice,
    different widths), and 3x3x3 max pool -> 1x1x1; concatenated along channels."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1, b2a, b2, b3 = widths
        self.conv_b0 = _Unit(cin, b0, 1)
        self.conv_b1_a = _Unit(cin, b1a, 1)
        self.conv_b1_b = _Unit(b1a, b1, 3, padding=1, separable=True)
        self.conv_b2_a = _Unit(cin, b2a, 1)
        self.conv_b2_b = _Unit(b2a, b2, 3, padding=1, separable=True)
        self.conv_b3_b = _Unit(cin, b3, 1)
        self.gating_b0, self.gating_b1 = _Gate(b0), _Gate(b1)
        self.gating_b2, self.gating_b3 = _Gate(b2), _Gate(b3)
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool3d(x, 3, stride=1, padding=1)
        return torch.cat([
            self.gating_b0(self.conv_b0(x)),
            self.gating_b1(self.conv_b1_b(self.conv_b1_a(x))),
            self.gating_b2(self.conv_b2_b(self.conv_b2_a(x))),
            self.gating_b3(self.conv_b3_b(pooled)),
        ], dim=1)


def _max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int],
                   stride: tuple[int, int, int]) -> torch.Tensor:
    """Max pool with TensorFlow's SAME padding (the extra pad at the end), ceil mode, as the
    network was trained with. Zero padding is safe: inputs are non-negative (after ReLU)."""
    pads: list[int] = []
    for k, s in reversed(list(zip(kernel, stride, strict=True))):  # F.pad wants W, H, T
        total = max(k - s, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool3d(F.pad(x, pads), kernel, stride, ceil_mode=True)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """B x C x T x H x W -> B x 8C x T/2 x H/2 x W/2, channel order (dt, dh, dw, c)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2)
    return x.permute(0, 3, 5, 7, 1, 2, 4, 6).reshape(b, 8 * c, t // 2, h // 2, w // 2)


class S3D(nn.Module):
    """S3D-G with the HowTo100M MIL-NCE head; eval-mode inference only."""

    def __init__(self, embedding_dim: int = 512):
        super().__init__()
        self.conv1 = _Unit(24, 64, (2, 4, 4), padding=(1, 2, 2))
        self.conv_2b = _Unit(64, 64, 1)
        self.conv_2c = _Unit(64, 192, 3, padding=1, separable=True)
        self.gating = _Gate(192)
        channels = 192
        for name, widths in _BLOCKS.items():
            block = _Mixed(channels, widths)
            setattr(self, name, block)
            channels = block.out_channels
        self.fc = nn.Linear(channels, embedding_dim)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, _, t, h, w = x.shape
        if t % 2 or h % 2 or w % 2:
            raise ValueError(f"S3D needs even T, H, W; got {t}x{h}x{w}")
        x = self.conv1(space_to_depth(x))[:, :, 1:, 1:, 1:]  # crop: TF SAME padding
        x = self.conv_2c(self.conv_2b(_max_pool_same(x, *_POOLS["conv_2b"])))
        x = self.gating(x)
        for name in _BLOCKS:
            if name in _POOLS:
                x = _max_pool_same(x, *_POOLS[name])
            x = getattr(self, name)(x)
        pooled = x.mean(dim=(2, 3, 4))
        # The head runs in fp32 also under autocast: the extractor computes (and normalises)
        # the embedding in fp32 and only then casts to fp16.
        with torch.autocast(x.device.type, enabled=False):
            embedding = self.fc(pooled.float())
        return {"video_embedding": embedding, "mixed_5c": pooled}

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> S3D:
        """The published `s3d_howto100m.pth` (or a safetensors copy), strict, in eval mode.

        Read with ``weights_only=True``: no pickled code runs. Every video parameter and
        buffer must be present with its shape (BatchNorm's ``num_batches_tracked`` may be
        absent: it is unused in eval); ``text_module.*`` keys are ignored.
        """
        state = read_state_dict(path, wrappers=("state_dict",))
        return load_into(cls(), state, str(path), "an S3D-G HowTo100M state dict",
                         ignore=lambda key: key.startswith("text_module."))


def random_s3d(seed: int = 0) -> S3D:
    """Seeded random weights (deterministic across processes), for demos and tests only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = S3D()
        # PyTorch's default init shrinks activations to ~1e-10 by mixed_5c (every clip would
        # get the same features): He init for the convs, gates that start mostly open, no fc
        # bias, so that random features still differ between clips as real ones do
        for module in model.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, _Gate):
                nn.init.constant_(module.fc.bias, 2.0)
        nn.init.zeros_(model.fc.bias)
    log.warning("S3D is RANDOMLY INITIALISED (seed %d): its features are NOT meaningful; "
                "set a checkpoint (s3d_howto100m.pth) for real ones", seed)
    return model.float().eval()


def embed_windows(model: S3D, frames: np.ndarray, window: int = 30,
                  device: torch.device | None = None, batch_size: int = 8,
                  precision: Precision = "auto") -> dict[str, np.ndarray]:
    """Features of consecutive `window`-frame clips of uint8 N x H x W x 3 RGB frames.

    As VideoCLIP's extractor does: pixels / 255, no mean/std, one clip per `window` frames
    without overlap, the last one zero-padded. Returns float32 ``video_embedding``
    (n x 512) and ``mixed_5c`` (n x 1024), n = ceil(N / window).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x 3, got {frames.dtype} {frames.shape}")
    n = -(-len(frames) // window)
    if n * window != len(frames):
        pad = np.zeros((n * window - len(frames), *frames.shape[1:]), np.uint8)
        frames = np.concatenate([frames, pad])
    clips = frames.reshape(n, window, *frames.shape[1:])
    device = device or next(model.parameters()).device
    out: dict[str, list[np.ndarray]] = {"video_embedding": [np.zeros((0, 512), np.float32)],
                                        "mixed_5c": [np.zeros((0, 1024), np.float32)]}
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, n, batch_size):
            x = to_device(clips[start:start + batch_size], device)
            x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)  # B x 3 x T x H x W
            result = model(x)
            for key, chunks in out.items():
                chunks.append(result[key].float().cpu().numpy())
    return {key: np.concatenate(chunks) for key, chunks in out.items()}
