"""Keyed sums of aggregate partials: exact totals whatever the folding schedule."""

from __future__ import annotations

import random

import pyarrow as pa

from vlprep.pipeline.aggregate import KeyedSums

SCHEMA = pa.schema([("lemma", pa.string()), ("count", pa.int64()), ("videos", pa.int64())])


def _partial(rng: random.Random) -> pa.Table:
    words = [rng.choice("abcdefghij") * rng.randint(1, 3) for _ in range(rng.randint(0, 20))]
    return pa.table({"lemma": words, "count": [rng.randint(1, 5) for _ in words],
                     "videos": [1] * len(words)}, schema=SCHEMA)


def test_totals_match_a_plain_count_for_any_fold_size():
    rng = random.Random(0)
    partials = [_partial(rng) for _ in range(200)]
    want: dict[str, list[int]] = {}
    for t in partials:
        for r in t.to_pylist():
            acc = want.setdefault(r["lemma"], [0, 0])
            acc[0] += r["count"]
            acc[1] += r["videos"]
    for combine_rows in (1, 37, 10**9):
        sums = KeyedSums(["lemma"], SCHEMA, combine_rows=combine_rows)
        for t in partials:
            sums.add(t)
            assert sums.pending_rows <= max(combine_rows, 30) + 20  # folded as it goes
        got = {r["lemma"]: [r["count"], r["videos"]] for r in sums.result().to_pylist()}
        assert got == want
        assert sums.result().schema == SCHEMA


def test_no_partials_give_an_empty_table_of_the_schema():
    assert KeyedSums(["lemma"], SCHEMA).result().equals(SCHEMA.empty_table())
