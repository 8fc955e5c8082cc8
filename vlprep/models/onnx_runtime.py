"""ONNX export of our torch backbones and inference with ONNX Runtime.

Export uses torch's TorchScript-based exporter (``dynamo=False``): it knows torchvision's
NMS and RoIAlign, which the detector graph needs, and handles the CLIP tower as well. Models
carry their settings in the ONNX metadata (``vlprep.*`` keys), so a file is self-describing.
Sessions use the CUDA provider when asked for a GPU and ``onnxruntime-gpu`` offers it, else
the CPU provider. onnxruntime is optional (``pip install 'vlprep[onnx]'``): it is imported
only when a session is made.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlprep.errors import CheckpointError

OPSET = 17
INSTALL_HINT = ("runtime: onnx needs onnxruntime: pip install 'vlprep[onnx]' "
                "(onnxruntime-gpu on Linux x86_64; the plain onnxruntime package on CPU-only "
                "machines)")


class OnnxUnavailable(CheckpointError, RuntimeError):
    """onnxruntime (or onnx, for export) is not installed, or cannot run on the device."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: str | Path,
           input_names: Sequence[str], output_names: Sequence[str],
           dynamic_axes: dict[str, dict[int, str]], metadata: dict[str, Any]) -> Path:
    """Export `module` (eval mode, fp32) traced on `args`; `metadata` is stored as JSON
    strings under ``vlprep.<key>``."""
    try:
        import onnx
    except ImportError:
        raise OnnxUnavailable(INSTALL_HINT) from None
    path = Path(path)
    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"vlprep.{key}", json.dumps(value)
    onnx.save(model, str(path))
    return path


class OnnxSession:
    """An ONNX Runtime session on the requested device, with the file's vlprep metadata."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu", threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxUnavailable(INSTALL_HINT) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise OnnxUnavailable("device is CUDA but onnxruntime has no CUDA provider: "
                                      "install onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, Any] = {k[len("vlprep."):]: json.loads(v)
                                         for k, v in meta.items() if k.startswith("vlprep.")}
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return dict(zip(self.output_names, outputs, strict=True))
