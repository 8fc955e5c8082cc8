"""Per-video texts: captions and timed transcript segments, one `texts` row each.

Captions come first (``captions`` when the manifest has them, else ``caption``: the manifest
keeps ``caption`` equal to the first of ``captions``), then transcript segments with their
times, after MMPT's clean-up of repeated and overlapping ASR lines (:mod:`vlprep.text.asr`).
``segment`` numbers the rows of one video from 0. Blank texts are skipped; a video with no
text emits nothing, which is not an error (plain video corpora have none).

Each row also gets what the three methods train on, so training never runs spaCy or a
tokenizer: BERT ids the way MMPT pre-tokenises (VideoCLIP), CLIP BPE ids with a noun / verb /
other tag per token aligned through character offsets (STOA-VLP), and spaCy noun and verb
lemmas (ALPRO's entity vocabulary, STOA-VLP's matching). All texts of a batch go through
``nlp.pipe`` and the tokenizers together.

spaCy and the tokenizers are loaded once per worker process and kept there (a per-process
cache), but the stage runs as Ray tasks, not as an actor pool: an actor would hold its CPUs
for the whole pass, and next to a model actor and 1-CPU sampling tasks on a 2-CPU machine
that starves the sampling (the demo stalled at 0 videos). Ray reuses task worker processes,
so the cache makes each process load spaCy once, as an actor would.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field, field_validator

from vlprep.schemas import TEXTS
from vlprep.stages.base import Record, Resources, Stage, StageOptions, emit
from vlprep.text.asr import Line, clean_lines


class TextsOptions(StageOptions):
    speed_only = frozenset({"spacy_batch"})

    max_chars: int | None = Field(default=None, gt=0, description="truncate longer texts")
    dedup_transcripts: bool = Field(
        default=True, description="MMPT's clean-up of repeated/overlapping ASR lines")
    bert_tokenizer: str | None = Field(
        default=None, description="BERT tokenizer dir (bert-base-uncased) or builtin:demo")
    bert_max_chars: int = Field(default=96, gt=0, description="MMPT cuts lines to 96 chars")
    bert_max_tokens: int = Field(default=32, gt=0, description="MMPT keeps 32 ids a line")
    clip_tokenizer: str | None = Field(
        default=None, description="CLIP tokenizer dir or builtin:demo")
    clip_max_tokens: int = Field(default=77, ge=2, description="CLIP context, with specials")
    spacy_model: str | None = Field(
        default="en_core_web_sm", min_length=1,
        description="spaCy model name or path; null: no nouns/verbs")
    spacy_batch: int = Field(default=256, gt=0, description="texts per nlp.pipe batch")

    @field_validator("bert_tokenizer", "clip_tokenizer")
    @classmethod
    def _tokenizer_exists(cls, value: str | None) -> str | None:
        from vlprep.models.tokenizers import check_spec

        return None if value is None else check_spec(value)

    @field_validator("spacy_model")
    @classmethod
    def _spacy_installed(cls, value: str | None) -> str | None:
        from vlprep.models.spacy_nlp import check_installed

        return None if value is None else check_installed(value)


def _time(value: Any) -> float | None:
    return None if value is None else float(value)


def text_rows(record: Record, max_chars: int | None = None,
              dedup: bool = False) -> list[dict[str, Any]]:
    """The `texts` rows of one record (text and times only), in order, without blank ones."""
    captions = record.get("captions") or []
    if not captions and record.get("caption") is not None:
        captions = [record["caption"]]
    items = [("caption", c, None, None) for c in captions]
    lines = [Line(_time(s.get("start")), _time(s.get("end")), s.get("text") or "")
             for s in record.get("segments") or []]
    if dedup:
        lines = clean_lines(lines)
    items += [("transcript", line.text, line.start, line.end) for line in lines]
    rows = []
    for source, text, start, end in items:
        text = (text or "").strip()
        if max_chars is not None:
            text = text[:max_chars].rstrip()
        if text:
            rows.append({"video_id": record["video_id"], "segment": len(rows), "source": source,
                         "text": text, "start": start, "end": end})
    return rows


_CACHE: dict[tuple[str, str], Any] = {}


def _cached(what: str, spec: str) -> Any:
    """spaCy pipelines and tokenizers, loaded once per process."""
    key = (what, spec)
    if key not in _CACHE:
        if what == "nlp":
            from vlprep.models.spacy_nlp import load_nlp

            _CACHE[key] = load_nlp(spec)
        else:
            from vlprep.models.tokenizers import load_tokenizer

            _CACHE[key] = load_tokenizer(spec, what)  # type: ignore[arg-type]
    return _CACHE[key]


class TextsStage(Stage[TextsOptions]):
    """Turns a record's caption(s) and transcript into `texts` rows with tokens and POS."""

    kind = "texts"
    stateful = False  # see the module docstring: cached per process instead
    tables = ("texts",)
    default_resources = Resources(num_cpus=0.5, batch_size=64)

    nlp: Any = None
    bert: Any = None
    clip: Any = None
    _ready = False

    def setup(self) -> None:
        if self._ready:
            return
        opts = self.options
        if opts.spacy_model is not None:
            self.nlp = _cached("nlp", opts.spacy_model)
        if opts.bert_tokenizer is not None:
            self.bert = _cached("bert", opts.bert_tokenizer)
        if opts.clip_tokenizer is not None:
            self.clip = _cached("clip", opts.clip_tokenizer)
        self._ready = True

    def __call__(self, batch: list[Record]) -> list[Record]:
        self.setup()
        opts = self.options
        per_video = [text_rows(r, opts.max_chars, opts.dedup_transcripts) for r in batch]
        rows = [row for video in per_video for row in video]
        self.annotate(rows)
        for record, video_rows in zip(batch, per_video, strict=True):
            if video_rows:
                emit(record, "texts", pa.Table.from_pylist(video_rows, schema=TEXTS))
        return batch

    def annotate(self, rows: list[dict[str, Any]]) -> None:
        """Add token ids, POS tags and lemmas to the rows, in place, all rows at once."""
        from vlprep.text.pos import char_tags, token_tags

        opts = self.options
        texts = [row["text"] for row in rows]
        analyses = None
        if self.nlp is not None and texts:
            from vlprep.models.spacy_nlp import analyse

            analyses = analyse(self.nlp, texts, opts.spacy_batch)
        if self.bert is not None:
            from vlprep.models.tokenizers import bert_ids

            for row, ids in zip(rows, bert_ids(self.bert, texts, opts.bert_max_chars,
                                               opts.bert_max_tokens), strict=True):
                row["bert_ids"] = ids
        if self.clip is not None:
            from vlprep.models.tokenizers import clip_tokens

            ids, offsets = clip_tokens(self.clip, texts, opts.clip_max_tokens)
            for i, row in enumerate(rows):
                row["clip_ids"] = ids[i]
                if analyses is not None:
                    tags = char_tags(len(row["text"]), analyses[i].spans)
                    row["clip_pos"] = token_tags(offsets[i], tags)
        if analyses is not None:
            for row, analysis in zip(rows, analyses, strict=True):
                row["nouns"], row["verbs"] = analysis.nouns, analysis.verbs
