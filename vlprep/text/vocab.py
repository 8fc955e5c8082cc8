"""Which noun lemmas may become ALPRO entities: words, not stop-words, numbers or symbols."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """spaCy's English stop-word list (a plain set: loading it loads no model)."""
    try:
        from spacy.lang.en.stop_words import STOP_WORDS
    except ImportError as e:  # pragma: no cover - the `text` extra installs spaCy
        raise RuntimeError("spaCy is not installed: pip install 'vlprep[text]'") from e
    return frozenset(STOP_WORDS)


def is_entity_word(lemma: str, extra_stop: Iterable[str] = ()) -> bool:
    """A lower-case word of letters (hyphens and apostrophes inside allowed), at least two
    characters, not a stop-word: 'knife', 't-shirt', 'café' pass; '3d', 'x', '...' don't."""
    if len(lemma) < 2 or lemma != lemma.lower():
        return False
    parts = lemma.replace("'", "-").split("-")
    if not all(p.isalpha() for p in parts):
        return False
    return lemma not in stop_words() and lemma not in extra_stop
