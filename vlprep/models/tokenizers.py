"""Tokenizers from local `transformers` tokenizer directories, and the ids vlprep stores.

No tokenizer is downloaded: a stage option names a directory (what ``save_pretrained``
writes, or a Hugging Face model snapshot such as bert-base-uncased or
openai/clip-vit-base-patch16), or ``builtin:demo`` for the tiny run-time tokenizers of
:mod:`vlprep.models.demo_tokenizers`, which the run reports loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from vlprep.errors import TokenizerError  # noqa: F401 - re-exported

log = logging.getLogger("vlprep")

BUILTIN_DEMO = "builtin:demo"
Kind = Literal["bert", "clip"]


def check_spec(spec: str) -> str:
    """Validate a tokenizer option value (for option validators)."""
    if spec != BUILTIN_DEMO and not Path(spec).is_dir():
        raise ValueError(f"tokenizer {spec!r} is not a directory (or {BUILTIN_DEMO})")
    return spec


def load_tokenizer(spec: str, kind: Kind):
    """A tokenizer with character offsets (a `tokenizers`-backed one) from a directory."""
    if spec == BUILTIN_DEMO:
        from vlprep.models.demo_tokenizers import demo_bert_tokenizer, demo_clip_tokenizer

        log.warning("%s tokenizer is the tiny DEMO tokenizer (builtin:demo): its ids are NOT "
                    "those of a real %s tokenizer; point the option at a tokenizer directory",
                    kind.upper(), kind.upper())
        return demo_bert_tokenizer() if kind == "bert" else demo_clip_tokenizer()
    from transformers import AutoTokenizer

    path = Path(spec)
    if not path.is_dir():
        raise TokenizerError(f"tokenizer {spec}: not a directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise TokenizerError(f"tokenizer {spec}: cannot be loaded "
                             f"({str(e).splitlines()[0]})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError(f"tokenizer {spec}: not a `tokenizers`-backed (fast) tokenizer; "
                             "character offsets are needed")
    return tokenizer


def bert_ids(tokenizer, texts: Sequence[str], max_chars: int = 96,
             max_tokens: int = 32) -> list[list[int]]:
    """MMPT's pre-tokenisation: each text cut to `max_chars` characters, tokenized without
    special tokens, at most `max_tokens` ids (MMPT adds [CLS]/[SEP] when it builds batches)."""
    if not texts:
        return []
    enc = tokenizer([t[:max_chars] for t in texts], add_special_tokens=False)
    return [ids[:max_tokens] for ids in enc["input_ids"]]


def clip_tokens(tokenizer, texts: Sequence[str], max_tokens: int = 77
                ) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """CLIP ids with start/end of text, truncated to `max_tokens` in all (the end token is
    kept, as CLIP's text tower pools there), and each token's character offsets."""
    if not texts:
        return [], []
    enc = tokenizer(list(texts), truncation=True, max_length=max_tokens,
                    return_offsets_mapping=True)
    offsets = [[(int(s), int(e)) for s, e in row] for row in enc["offset_mapping"]]
    return list(enc["input_ids"]), offsets
