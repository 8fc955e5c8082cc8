"""Part-of-speech tags carried from spaCy's words over to a tokenizer's sub-word tokens.

STOA-VLP matches nouns to object trajectories and verbs to action queries token by token, so
every CLIP token needs a tag. spaCy and CLIP split text differently ("don't" is do + n't for
spaCy, don + 't for CLIP), so the two are joined through character offsets into the original
text: a token takes the tag of the spaCy word that holds its first character.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OTHER, NOUN, VERB = 0, 1, 2
CODES = {"NOUN": NOUN, "VERB": VERB}  # spaCy's coarse (universal) tags


def char_tags(length: int, words: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Per character of a text of `length` characters: the code of the word covering it.

    `words` are (start, end, code) character spans, e.g. from spaCy tokens.
    """
    tags = np.zeros(length, dtype=np.int8)
    for start, end, code in words:
        if code:
            tags[start:end] = code
    return tags


def token_tags(offsets: Sequence[tuple[int, int]], tags: np.ndarray) -> list[int]:
    """The code of each token from its (start, end) character offsets; special tokens (empty
    spans, e.g. CLIP's start/end of text) and tokens outside the text are OTHER."""
    out = []
    for start, end in offsets:
        out.append(int(tags[start]) if end > start and start < len(tags) else OTHER)
    return out
