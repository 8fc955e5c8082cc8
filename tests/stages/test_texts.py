from __future__ import annotations

import pytest

from vlprep.schemas import TEXTS
from vlprep.stages.base import OUTPUTS, Resources
from vlprep.stages.texts import TextsOptions, TextsStage


def texts_of(record: dict, **options) -> list[dict]:
    record = {"video_id": "v1", "path": "/x.mp4", "partition": 0, **record}
    TextsStage(TextsOptions(**options), Resources())([record])
    table = record.get(OUTPUTS, {}).get("texts")
    if table is None:
        return []
    assert table.schema.equals(TEXTS, check_metadata=True)
    return table.to_pylist()


def test_single_caption():
    assert texts_of({"caption": "  A dog runs.  "}) == [
        {"video_id": "v1", "segment": 0, "source": "caption", "text": "A dog runs.",
         "start": None, "end": None}]


def test_captions_list_wins_over_caption():
    rows = texts_of({"caption": "first", "captions": ["first", "second", " ", "third"]})
    assert [(r["segment"], r["text"]) for r in rows] == [(0, "first"), (1, "second"),
                                                         (2, "third")]
    assert {r["source"] for r in rows} == {"caption"}


def test_transcript_segments_follow_captions_with_times():
    rows = texts_of({
        "caption": "a cooking video",
        "segments": [{"start": 0.0, "end": 2.5, "text": "first we chop"},
                     {"start": 2.5, "end": 4.0, "text": "   "},
                     {"start": 4.0, "end": 6.25, "text": "then we fry"}],
    })
    assert [(r["segment"], r["source"], r["text"], r["start"], r["end"]) for r in rows] == [
        (0, "caption", "a cooking video", None, None),
        (1, "transcript", "first we chop", 0.0, 2.5),
        (2, "transcript", "then we fry", 4.0, 6.25),
    ]


def test_transcript_only_and_no_text_at_all():
    rows = texts_of({"caption": None, "segments": [{"start": 1, "end": 2, "text": "hi"}]})
    assert [(r["segment"], r["source"]) for r in rows] == [(0, "transcript")]
    assert texts_of({"caption": None, "captions": None, "segments": None}) == []
    assert texts_of({"caption": "   ", "segments": []}) == []


def test_max_chars_truncates():
    rows = texts_of({"caption": "abcdef ghij"}, max_chars=7)
    assert rows[0]["text"] == "abcdef"
    with pytest.raises(ValueError):
        TextsOptions(max_chars=0)
