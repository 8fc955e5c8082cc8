"""Reading ALPRO's released prompter weights (``output/pretrain/prompter_pretrained.pt``).

ALPRO saves ``model.state_dict()`` of its ``Prompter`` (``src/utils/load_save.py``
``ModelSaver``), whose keys are those of ``AlproBaseModel`` (``src/modeling/alpro_models.py``):

- ``visual_encoder.model.*``: the TimeSformer (``cls_token``, ``pos_embed``, ``time_embed``,
  ``patch_embed.proj.*``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,temporal_norm1,
  temporal_attn.qkv,temporal_attn.proj,temporal_fc,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*``,
  ``head.*`` (a Kinetics classifier, unused));
- ``text_encoder.bert.*``: ``BertForMaskedLM``'s BERT (``embeddings.*``,
  ``encoder.layer.{0-11}.*``); ``text_encoder.cls.*`` is its MLM head (unused);
- ``vision_proj.*``, ``text_proj.*`` (768 -> 256), ``temp`` (a 0-d tensor), ``itm_head.*`` and
  the ``video_prompt_feat`` / ``image_prompt_feat`` buffers (unused: we rebuild the prompts).

Accepted as well: ``{'model': ...}`` or ``{'model_state_dict': ...}`` wrappers, ``module.``
prefixes (DataParallel), an ``AlproForPretrain`` state dict holding the prompter under
``prompter.`` (its own top-level encoders are the student's and are not used), and BERT under
``text_encoder.`` without ``bert.`` (ALPRO's ``remove_text_encoder_prefix`` layout).
Only the text layers before ``fusion_layer`` (6) are read; every other key the prompter uses
must be present with its shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch

from vlprep.errors import CheckpointError
from vlprep.models.checkpoint import read_state_dict

VISION, TEXT = "visual_encoder.model.", "text_encoder.bert."
TEXT_NO_BERT = "text_encoder."
# our module's prefix -> the released one
OURS_TO_RELEASED = {"vision.": VISION, "text.": TEXT, "": ""}
WRAPPERS = ("model", "model_state_dict", "state_dict")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's tensors in the released key layout, whatever accepted layout it has."""
    return released_layout(read_state_dict(path, WRAPPERS, mmap=True), str(path))


def released_layout(raw: object, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap and un-prefix a loaded object to the Prompter's own key layout."""
    state = raw
    for _ in range(2):
        if isinstance(state, Mapping):
            inner = next((state[k] for k in WRAPPERS if isinstance(state.get(k), Mapping)),
                         None)
            if inner is not None:
                state = inner
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{name}: holds a {type(raw).__name__}, not a state dict")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    if any(k.startswith("prompter.") for k in tensors):
        tensors = {k[len("prompter."):]: v for k, v in tensors.items()
                   if k.startswith("prompter.")}
    if not any(k.startswith(TEXT) for k in tensors):  # BERT saved without `bert.`
        tensors.update({TEXT + k[len(TEXT_NO_BERT):]: v for k, v in list(tensors.items())
                        if k.startswith(TEXT_NO_BERT) and not k.startswith("text_encoder.cls.")})
    return tensors


def released_name(ours: str) -> str:
    """Our module's key (``vision.blocks.0...``) as the released file names it."""
    for prefix, released in OURS_TO_RELEASED.items():
        if ours.startswith(prefix):
            return released + ours[len(prefix):]
    return ours


def load_into(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor],
              name: str = "checkpoint") -> None:
    """Copy every parameter (and persistent buffer) the model has from the released keys;
    refuse with one line naming the first key that is missing or of the wrong shape."""
    ours = model.state_dict()
    picked = {}
    for key, target in ours.items():
        released = released_name(key)
        value = tensors.get(released)
        if value is None:
            raise CheckpointError(f"{name}: not an ALPRO prompter checkpoint: key {released!r} "
                                  f"is missing ({len(tensors)} tensors in the file)")
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(f"{name}: key {released!r} has shape {tuple(value.shape)}, "
                                  f"the prompter expects {tuple(target.shape)}")
        picked[key] = value.to(torch.float32)  # fp32 files stay memory-mapped (shared pages)
    model.load_state_dict(picked, strict=True, assign=True)
    materialise_buffers(model)


def materialise_buffers(model: torch.nn.Module) -> None:
    """A model built on the meta device has no values in its non-persistent buffers (BERT's
    position and token type ids): give them theirs (0..L-1 and zeros)."""
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if not buf.is_meta:
                continue
            if name == "position_ids":
                value = torch.arange(buf.shape[-1]).expand(buf.shape)
            elif name == "token_type_ids":
                value = torch.zeros(buf.shape, dtype=buf.dtype)
            else:
                raise RuntimeError(f"no value for buffer {name!r} of {type(module).__name__}")
            module.register_buffer(name, value.to(buf.dtype).contiguous(), persistent=False)


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
