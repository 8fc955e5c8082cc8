from __future__ import annotations

import logging

import pytest
from transformers import AutoTokenizer

from vlprep.models.demo_tokenizers import (
    byte_symbols,
    demo_bert_tokenizer,
    demo_clip_tokenizer,
    learn_merges,
)
from vlprep.models.tokenizers import (
    BUILTIN_DEMO,
    TokenizerError,
    bert_ids,
    check_spec,
    clip_tokens,
    load_tokenizer,
)

SENTENCES = [
    "A man is slicing tomatoes in the kitchen.",
    "The café owner pours coffee — naïve latte art, 日本語 too!",
    "quokkas running in the park " * 8,  # > 96 characters, > 32 word pieces
    "",
]


def test_bert_ids_are_mmpt_pretokenisation(bert_tokenizer_dir):
    tok = load_tokenizer(str(bert_tokenizer_dir), "bert")
    got = bert_ids(tok, SENTENCES, max_chars=96, max_tokens=32)
    for text, ids in zip(SENTENCES, got, strict=True):
        expected = tok(text[:96], add_special_tokens=False)["input_ids"][:32]
        assert ids == expected
        assert tok.cls_token_id not in ids and tok.sep_token_id not in ids
    assert len(got[2]) == 32  # the long line is cut to 32 ids
    uncut = bert_ids(tok, SENTENCES[2:3], max_chars=96, max_tokens=10_000)[0]
    assert 32 < len(uncut) < len(tok(SENTENCES[2], add_special_tokens=False)["input_ids"])
    assert got[3] == [] and bert_ids(tok, []) == []
    # the cut is in characters before tokenizing: 'kitchen' is past char 20
    assert tok.convert_tokens_to_ids("kitchen") not in bert_ids(tok, SENTENCES[:1], 20)[0]


def test_clip_tokens_keep_start_and_end_and_offsets(clip_tokenizer_dir):
    tok = load_tokenizer(str(clip_tokenizer_dir), "clip")
    long = "a dog runs on the street " * 200  # 5,000 characters
    ids, offsets = clip_tokens(tok, [SENTENCES[0], long, ""], max_tokens=77)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    for row in ids:
        assert row[0] == bos and row[-1] == eos and len(row) <= 77
    assert len(ids[1]) == 77 and ids[2] == [bos, eos]
    assert len(offsets[0]) == len(ids[0]) and offsets[0][0] == (0, 0) == offsets[0][-1]
    text = SENTENCES[0]
    tokens = tok.convert_ids_to_tokens(ids[0])
    for token, (start, end) in zip(tokens[1:-1], offsets[0][1:-1], strict=True):
        assert text[start:end].lower() == token.removesuffix("</w>")
    assert ids[0] == tok(text)["input_ids"]
    assert clip_tokens(tok, [], 77) == ([], [])


def test_load_errors(tmp_path):
    with pytest.raises(TokenizerError, match="not a directory"):
        load_tokenizer(str(tmp_path / "nowhere"), "bert")
    with pytest.raises(TokenizerError, match="cannot be loaded"):
        load_tokenizer(str(tmp_path), "bert")
    with pytest.raises(ValueError, match="builtin:demo"):
        check_spec(str(tmp_path / "nowhere"))
    assert check_spec(BUILTIN_DEMO) == BUILTIN_DEMO


def test_builtin_demo_is_loud(caplog):
    with caplog.at_level(logging.WARNING, logger="vlprep"):
        tok = load_tokenizer(BUILTIN_DEMO, "clip")
    assert "DEMO tokenizer" in caplog.text and tok is demo_clip_tokenizer()


def test_demo_tokenizers_tokenize_anything(tmp_path):
    clip, bert = demo_clip_tokenizer(), demo_bert_tokenizer()
    text = "A rabbit stretches in the sun: ÿ ☃ 日本 \x00"
    ids = clip(text)["input_ids"]
    assert ids[0] == len(clip) - 2 and ids[-1] == len(clip) - 1  # start/end are last, as CLIP
    assert clip.unk_token_id not in ids[1:-1]  # byte level: no unknowns
    pieces = bert.convert_ids_to_tokens(bert(text, add_special_tokens=False)["input_ids"])
    assert pieces[:4] == ["a", "rabbit", "stretches", "in"]
    assert [bert.convert_tokens_to_ids(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")] == [
        0, 1, 2, 3]
    # they save and load as ordinary tokenizer directories
    clip.save_pretrained(tmp_path / "c")
    assert AutoTokenizer.from_pretrained(tmp_path / "c")(text)["input_ids"] == ids


def test_bpe_merges_are_deterministic_and_frequency_first():
    words = ["low", "lower", "lowest", "newer", "wider"]
    merges = learn_merges(words, 10)
    assert merges == learn_merges(list(reversed(words)), 10)
    # 'e r</w>', 'l o' and 'w e' occur 3 times each: ties go alphabetically
    assert merges[:2] == [("e", "r</w>"), ("l", "o")]
    assert len(byte_symbols()) == len(set(byte_symbols())) == 256
