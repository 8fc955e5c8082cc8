from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from vlprep.schemas import ENTITIES, TABLES, TEXTS
from vlprep.stages.base import Resources
from vlprep.stages.entities import PARTIAL, EntitiesOptions, EntitiesStage, read_entities
from vlprep.store import Store
from vlprep.text.vocab import is_entity_word


def texts_table(rows: list[tuple[str, list[str] | None]]) -> pa.Table:
    """A `texts` table with the given (source, nouns) rows."""
    return pa.Table.from_pylist([
        {"video_id": f"v{i}", "segment": 0, "source": source, "text": "x", "nouns": nouns}
        for i, (source, nouns) in enumerate(rows)], schema=TEXTS)


def stage(**options) -> EntitiesStage:
    return EntitiesStage(EntitiesOptions(**options), Resources())


def run(stage_: EntitiesStage, table: pa.Table, batch_size: int) -> pa.Table:
    """What the runner does: partial per batch, sum per lemma, finalize."""
    source = table.select(list(stage_.columns))
    parts = [stage_.partial(source.slice(i, batch_size))
             for i in range(0, max(1, source.num_rows), batch_size)]
    summed = pa.concat_tables(parts).group_by("lemma").aggregate([("count", "sum")])
    return stage_.finalize(summed.rename_columns(["lemma", "count"]))["entities"]


def test_entity_words():
    for word in ("knife", "t-shirt", "café", "rock'n'roll"):
        assert is_entity_word(word), word
    for word in ("something", "3d", "x", "...", "—", "Knife", "www.example.com", "", "it"):
        assert not is_entity_word(word), word
    assert not is_entity_word("video", extra_stop={"video"})


def test_partial_counts_filtered_nouns_of_chosen_sources():
    table = texts_table([("caption", ["dog", "dog", "ball", "3d", "something"]),
                         ("transcript", ["dog", "oven"]), ("caption", None),
                         ("caption", [])])
    assert stage().partial(table).to_pylist() == [
        {"lemma": "ball", "count": 1}, {"lemma": "dog", "count": 3},
        {"lemma": "oven", "count": 1}]
    only_captions = stage(sources=["caption"], stop_words=["Ball"]).partial(table)
    assert only_captions.to_pylist() == [{"lemma": "dog", "count": 2}]
    # the runner learns the partial's columns from an empty source batch
    empty = stage().partial(TABLES["texts"].empty_table().select(["source", "nouns"]))
    assert empty.schema.equals(PARTIAL) and empty.num_rows == 0


def test_finalize_ranks_by_count_then_lemma():
    totals = pa.table({"lemma": ["cat", "ant", "dog", "bee", "eel"],
                       "count": [5, 2, 5, 2, 1]}, schema=PARTIAL)
    out = stage(top_n=4, min_count=2).finalize(totals)["entities"]
    assert out.schema.equals(ENTITIES, check_metadata=True)
    assert out.to_pylist() == [
        {"video_id": "", "rank": 0, "lemma": "cat", "count": 5},
        {"video_id": "", "rank": 1, "lemma": "dog", "count": 5},
        {"video_id": "", "rank": 2, "lemma": "ant", "count": 2},
        {"video_id": "", "rank": 3, "lemma": "bee", "count": 2}]
    assert stage().finalize(PARTIAL.empty_table())["entities"].num_rows == 0


def test_vocabulary_is_the_same_for_any_batching_and_order():
    rng = random.Random(0)
    words = ["dog", "cat", "ball", "knife", "onion", "pan", "car", "tree", "bird", "hat"]
    rows = [(rng.choice(["caption", "transcript"]),
             [rng.choice(words) for _ in range(rng.randint(0, 6))]) for _ in range(300)]
    reference = run(stage(top_n=7), texts_table(rows), batch_size=1000)
    assert reference.num_rows == 7
    for batch_size in (1, 7, 64):
        rng.shuffle(rows)
        assert run(stage(top_n=7), texts_table(rows), batch_size).equals(reference)


def test_read_entities_from_a_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="no entities table"):
        read_entities(str(tmp_path))
    table = stage().finalize(pa.table({"lemma": ["pan", "dog"], "count": [1, 3]},
                                      schema=PARTIAL))["entities"]
    (tmp_path / "entities").mkdir()  # a crashed run's file, never committed: not there
    pq.write_table(table, tmp_path / "entities" / "agg-entities-000.parquet")
    with pytest.raises(FileNotFoundError, match="no entities table"):
        read_entities(str(tmp_path))
    (tmp_path / "entities" / "agg-entities-000.parquet").unlink()
    Store(str(tmp_path)).write_unit("agg-entities", 0, {"entities": table}, 1 << 20)
    assert read_entities(str(tmp_path)) == ["dog", "pan"]


def test_options():
    with pytest.raises(ValidationError):
        EntitiesOptions(top_n=0)
    with pytest.raises(ValidationError):
        EntitiesOptions(sources=["subtitles"])
    assert EntitiesOptions().top_n == 1000
    assert (EntitiesStage.source, EntitiesStage.keys) == ("texts", ("lemma",))
    assert set(EntitiesStage.columns) <= set(TEXTS.names)
