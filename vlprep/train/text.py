"""Text token ids as the store keeps them, turned into padded model inputs.

The `texts` table carries the tokenizer ids the pipeline computed (``bert_ids``: MMPT's
BERT ids without special tokens; ``clip_ids``: CLIP BPE with start/end of text, plus
``clip_pos`` per token). Training never re-tokenizes text: models embed these ids directly.
The vocabulary (size and special ids) comes from the tokenizer the store's recipe names;
when that tokenizer cannot be loaded here, from the ids themselves (the largest id plus one,
with our own specials appended), so a store stays trainable wherever it is copied. Either
way the vocabulary is saved with the checkpoint; ids beyond it map to ``unk``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc
import torch

from vlprep.store.fs import StoreError
from vlprep.train.recipe import load_recipe, tokenizer_spec
from vlprep.train.store_reader import StoreReader

if TYPE_CHECKING:
    from vlprep.models.tokenizers import Kind

log = logging.getLogger("vlprep")
ID_COLUMNS: dict[str, Kind] = {"bert_ids": "bert", "clip_ids": "clip"}


@dataclass(frozen=True)
class Vocab:
    """Rows of the embedding table and the special ids the methods insert."""

    column: str
    size: int  # embedding rows: every id is < size
    pad: int
    cls: int  # BERT [CLS]; CLIP start of text
    sep: int  # BERT [SEP]; CLIP end of text
    unk: int
    tokenizer: str | None = None  # the spec it was read from, when it was

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_ids(cls, column: str, top: int) -> Vocab:
        """Ids 0..top from the store, our four specials after them."""
        return cls(column, top + 5, top + 1, top + 2, top + 3, top + 4)


def _from_tokenizer(column: str, spec: str) -> Vocab:
    from vlprep.models.tokenizers import load_tokenizer

    tok = load_tokenizer(spec, ID_COLUMNS[column])
    cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
    sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else sep_id
    unk_id = tok.unk_token_id if tok.unk_token_id is not None else pad_id
    return Vocab(column, len(tok), pad_id, cls_id, sep_id, unk_id, spec)


def _top_id(reader: StoreReader, column: str) -> int:
    top, seen = -1, 0
    for unit in reader.units("texts"):
        ids = reader.read_row_group(unit.path, unit.row_group, [column]).column(0)
        seen += len(ids) - ids.null_count
        flat = pc.list_flatten(ids)
        if len(flat):
            top = max(top, pc.max(flat).as_py())
    if seen == 0 or top < 0:
        raise StoreError(f"store {reader.uri}: texts.{column} is empty: set the texts stage's "
                         f"{ID_COLUMNS[column]}_tokenizer (a local tokenizer directory, or "
                         "builtin:demo for tests) and run the job again")
    return top


def vocab_from_store(reader: StoreReader, column: str) -> Vocab:
    """The vocabulary of `column` in `texts` (see the module docstring)."""
    if column not in ID_COLUMNS:
        raise ValueError(f"unknown token id column {column!r} (known: {', '.join(ID_COLUMNS)})")
    reader.require("texts")
    if not reader.has_column("texts", column):
        raise StoreError(f"store {reader.uri}: texts has no {column} column (an older store): "
                         "run the job again with a current vlprep")
    top = _top_id(reader, column)
    spec = tokenizer_spec(load_recipe(reader), ID_COLUMNS[column])
    if spec is not None:
        try:
            vocab = _from_tokenizer(column, spec)
            if top < vocab.size:
                return vocab
            log.warning("texts.%s has id %d beyond tokenizer %s (%d ids)", column, top, spec,
                        vocab.size)
        except Exception as e:  # noqa: BLE001 - any load failure: fall back to the ids
            log.warning("tokenizer %s of the store's recipe cannot be loaded (%s); using the "
                        "store's id range", spec, str(e).splitlines()[0])
    return Vocab.from_ids(column, top)


def known_ids(vocab: Vocab, ids: Sequence[int] | None) -> list[int]:
    """Store ids with those outside the vocabulary mapped to unk."""
    return [int(i) if 0 <= i < vocab.size else vocab.unk for i in (ids or ())]


def with_specials(vocab: Vocab, ids: Sequence[int], max_len: int) -> list[int]:
    """[CLS] ids [SEP], cut so the whole is at most `max_len` (MMPT's BERT layout)."""
    body = known_ids(vocab, ids)[: max(0, max_len - 2)]
    return [vocab.cls, *body, vocab.sep]


def pad_batch(vocab: Vocab, sequences: Sequence[Sequence[int]],
              extra: Sequence[Sequence[int]] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(ids B x L, mask B x L bool, extra B x L or None): right-padded to the longest.

    `extra` holds one value per token (e.g. POS codes), padded with 0.
    """
    length = max(1, max((len(s) for s in sequences), default=1))
    ids = np.full((len(sequences), length), vocab.pad, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=bool)
    tags = np.zeros((len(sequences), length), dtype=np.int64) if extra is not None else None
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = seq
        mask[i, : len(seq)] = True
        if tags is not None and extra is not None:
            values = list(extra[i])[:length]
            tags[i, : len(values)] = values
    return (torch.from_numpy(ids), torch.from_numpy(mask),
            torch.from_numpy(tags) if tags is not None else None)
