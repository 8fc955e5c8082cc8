from __future__ import annotations

import pytest
from pydantic import ValidationError

from vlprep.schemas import TEXTS
from vlprep.stages.base import OUTPUTS, Resources
from vlprep.stages.texts import TextsOptions, TextsStage
from vlprep.text.pos import NOUN, OTHER, VERB

BASE = ("video_id", "segment", "source", "text", "start", "end")


def run_texts(records: list[dict], **options) -> list[list[dict]]:
    """Rows per record, after one call of the stage on all of them."""
    records = [{"path": "/x.mp4", "partition": 0, **r} for r in records]
    TextsStage(TextsOptions(**options), Resources())(records)
    out = []
    for record in records:
        table = record.get(OUTPUTS, {}).get("texts")
        if table is not None:
            assert table.schema.equals(TEXTS, check_metadata=True)
        out.append([] if table is None else table.to_pylist())
    return out


def texts_of(record: dict, **options) -> list[dict]:
    """Only the text and time columns, without spaCy or tokenizers."""
    options.setdefault("spacy_model", None)
    [rows] = run_texts([{"video_id": "v1", **record}], **options)
    return [{k: r[k] for k in BASE} for r in rows]


@pytest.fixture(scope="module")
def full(bert_tokenizer_dir, clip_tokenizer_dir):
    """Options with both tokenizers and spaCy."""
    return dict(bert_tokenizer=str(bert_tokenizer_dir), clip_tokenizer=str(clip_tokenizer_dir))


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


def test_transcripts_get_mmpt_clean_up_unless_disabled():
    segments = [{"start": 0, "end": 3, "text": "today we make"},
                {"start": 2, "end": 5, "text": "today we make bread"},
                {"start": 5, "end": 6, "text": "make bread"}]
    assert [(r["text"], r["start"], r["end"]) for r in texts_of({"segments": segments})] == [
        ("today we make bread", 0.0, 6.0)]
    raw = texts_of({"segments": segments}, dedup_transcripts=False)
    assert [r["text"] for r in raw] == [s["text"] for s in segments]


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


def test_without_tools_the_feature_columns_are_null():
    [rows] = run_texts([{"video_id": "v", "caption": "A dog runs."}], spacy_model=None)
    assert all(rows[0][c] is None for c in ("bert_ids", "clip_ids", "clip_pos", "nouns",
                                            "verbs"))


def test_tokens_nouns_verbs_and_pos_of_real_sentences(full, bert_tokenizer_dir,
                                                      clip_tokenizer_dir):
    from transformers import AutoTokenizer

    bert = AutoTokenizer.from_pretrained(bert_tokenizer_dir)
    clip = AutoTokenizer.from_pretrained(clip_tokenizer_dir)
    caption = "A man is slicing tomatoes in the kitchen."
    [rows] = run_texts([{"video_id": "v", "caption": caption}], **full)
    row = rows[0]
    assert row["nouns"] == ["man", "tomato", "kitchen"] and row["verbs"] == ["slice"]
    assert row["bert_ids"] == bert(caption, add_special_tokens=False)["input_ids"]
    assert row["clip_ids"] == clip(caption)["input_ids"]
    assert len(row["clip_pos"]) == len(row["clip_ids"])
    tags = {}
    for token, tag in zip(clip.convert_ids_to_tokens(row["clip_ids"]), row["clip_pos"],
                          strict=True):
        tags.setdefault(tag, []).append(token.removesuffix("</w>"))
    assert "".join(tags[NOUN]) == "mantomatoeskitchen"  # every piece of each noun
    assert "".join(tags[VERB]) == "slicing"
    assert row["clip_pos"][0] == row["clip_pos"][-1] == OTHER  # start / end of text


def test_non_ascii_empty_and_5000_character_captions(full, clip_tokenizer_dir):
    long = "A chef is cutting onions in the kitchen. " * 122
    records = [{"video_id": "a", "caption": "Ein Mädchen spielt — the café owner pours coffee."},
               {"video_id": "b", "caption": ""},
               {"video_id": "c", "caption": long}]
    a, b, c = run_texts(records, **full)
    assert b == []
    assert "café" in a[0]["nouns"] and "pour" in a[0]["verbs"]
    assert len(a[0]["clip_pos"]) == len(a[0]["clip_ids"])
    assert c[0]["text"] == long.strip()
    assert len(c[0]["bert_ids"]) == 32 and len(c[0]["clip_ids"]) == 77
    assert c[0]["nouns"].count("onion") == 122  # nouns come from the whole text
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(clip_tokenizer_dir).eos_token_id
    assert c[0]["clip_ids"][-1] == eos


def test_batching_does_not_change_rows(full):
    records = [{"video_id": "a", "caption": "A dog runs in the park."},
               {"video_id": "b", "caption": None},
               {"video_id": "c", "caption": "Cyclists ride past.",
                "segments": [{"start": 0, "end": 1, "text": "look at the bikes"}]}]
    together = run_texts(records, **full)
    alone = [run_texts([r], **full)[0] for r in records]
    assert together == alone and together[1] == []


def test_option_validation(tmp_path):
    with pytest.raises(ValidationError, match="not a directory"):
        TextsOptions(bert_tokenizer=str(tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="not installed"):
        TextsOptions(spacy_model="xx_no_such_model")
    with pytest.raises(ValidationError, match="extra"):
        TextsOptions.model_validate({"bert_tokeniser": "x"})
    assert TextsOptions(clip_tokenizer="builtin:demo").clip_max_tokens == 77

def test_models_are_loaded_once_per_process(full):
    a = TextsStage(TextsOptions(**full), Resources())
    b = TextsStage(TextsOptions(**full), Resources())
    a.setup()
    b.setup()
    assert a.nlp is b.nlp and a.bert is b.bert and a.clip is b.clip
    assert not TextsStage.stateful  # a task: no actor holds CPUs for the whole pass
