"""The corpus entity vocabulary (ALPRO): the top-N noun lemmas of `texts` by frequency.

An aggregate stage: the runner counts nouns batch by batch of the `texts` table in parallel
(:meth:`EntitiesStage.partial`), sums the counts per lemma with a Ray aggregation, and
:meth:`EntitiesStage.finalize` ranks them. Ranking is by count, then by lemma, so the
vocabulary is the same whatever the batching or the number of workers.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from vlprep.schemas import ENTITIES
from vlprep.schemas.text_features import CORPUS
from vlprep.stages.base import AggregateStage, Resources, StageOptions

PARTIAL = pa.schema([pa.field("lemma", pa.string()), pa.field("count", pa.int64())])


class EntitiesOptions(StageOptions):
    top_n: int = Field(default=1000, gt=0, description="entities kept (ALPRO: 1,000)")
    min_count: int = Field(default=1, gt=0, description="drop rarer lemmas")
    sources: list[Literal["caption", "transcript"]] = Field(
        default=["caption", "transcript"], min_length=1, description="texts rows counted")
    stop_words: list[str] = Field(default=[], description="more lemmas to leave out")


class EntitiesStage(AggregateStage[EntitiesOptions]):
    """Counts `texts.nouns` lemmas corpus-wide; writes `entities` (rank, lemma, count)."""

    kind = "entities"
    Options = EntitiesOptions
    source = "texts"
    columns = ("source", "nouns")
    keys = ("lemma",)
    tables = ("entities",)
    default_resources = Resources(num_cpus=1.0, batch_size=4096, concurrency=2)

    def partial(self, batch: pa.Table) -> pa.Table:
        """Noun counts of one batch of `texts`, only lemmas that may become entities."""
        from vlprep.text.vocab import is_entity_word

        opts = self.options
        rows = batch.filter(pc.is_in(batch.column("source"), pa.array(opts.sources)))
        counts = Counter(lemma for nouns in rows.column("nouns").to_pylist() if nouns
                         for lemma in nouns)
        extra = {w.lower() for w in opts.stop_words}
        kept = sorted(w for w in counts if is_entity_word(w, extra))
        return pa.table({"lemma": kept, "count": [counts[w] for w in kept]}, schema=PARTIAL)

    def finalize(self, totals: pa.Table) -> dict[str, pa.Table]:
        """The top-N lemmas of the summed counts, most frequent first, ties alphabetical."""
        opts = self.options
        lemmas = totals.column("lemma").to_pylist()
        counts = [int(c) for c in totals.column("count").to_pylist()]
        merged: Counter = Counter()
        for lemma, count in zip(lemmas, counts, strict=True):  # tolerate unsummed partials
            merged[lemma] += count
        ranked = sorted(((c, w) for w, c in merged.items() if c >= opts.min_count),
                        key=lambda cw: (-cw[0], cw[1]))[:opts.top_n]
        n = len(ranked)
        return {"entities": pa.table({
            "video_id": [CORPUS] * n,
            "rank": pa.array(range(n), pa.int32()),
            "lemma": [w for _, w in ranked],
            "count": pa.array([c for c, _ in ranked], pa.int64()),
        }, schema=ENTITIES)}


def read_entities(store: str) -> list[str]:
    """The entity lemmas of a store in rank order (entity id = list index), from its
    committed files only (the store's one reader)."""
    from vlprep.store import CommittedStore

    data = CommittedStore(store, must_exist=False)
    if "entities" not in data.tables():
        raise FileNotFoundError(f"store {store} has no entities table (run an `entities` "
                                "stage before the prompter)")
    table = data.read("entities", ["rank", "lemma"]).sort_by("rank")
    ranks = table.column("rank").to_pylist()
    if ranks != list(range(len(ranks))):
        raise ValueError(f"store {store}: entities ranks are not 0..{len(ranks) - 1}")
    return table.column("lemma").to_pylist()
