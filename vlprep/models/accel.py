"""Device, precision and host-to-device helpers shared by every backbone.

One place decides what "auto" means, so CLIP, S3D and the detector behave alike: the GPU
when there is one, bf16 autocast on GPUs that support it (fp16 otherwise), fp32 on CPU
(where reduced precision is slow), and pinned host memory for asynchronous copies.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import torch

Precision = Literal["auto", "fp32", "fp16", "bf16"]


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' means the GPU when there is one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means plain fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device,
             precision: Precision = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision where it pays off (CUDA), a no-op elsewhere unless asked for."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on `device`; through pinned memory and a non-blocking copy on CUDA."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
