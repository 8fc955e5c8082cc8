"""Texts with their nouns and verbs marked, from the store's own per-token tags.

`texts.clip_pos` tags each CLIP token (0 other, 1 noun, 2 verb). The texts stage joined the
tags to characters through the tokenizer's offsets, so the report re-tokenises the text with
the recipe's CLIP tokenizer and, when its ids equal the stored `clip_ids`, marks exactly the
characters of the tagged tokens. Where the tokenizer cannot be loaded here (a directory on
another machine), words whose lower case starts with a stored noun or verb lemma are marked
instead, and the row says so.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

NOUN, VERB = 1, 2
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


class TextMarker:
    def __init__(self, recipe: dict[str, Any] | None):
        self.spec = None
        for stage in (recipe or {}).get("stages", []):
            if stage["kind"] == "texts":
                self.spec = stage["options"].get("clip_tokenizer")
                self.max_tokens = int(stage["options"].get("clip_max_tokens", 77))
        self._tokenizer: Any = None
        self._tried = False

    def tokenizer(self):
        if not self._tried and self.spec:
            self._tried = True
            logger = logging.getLogger("vlprep")
            level = logger.level
            logger.setLevel(logging.ERROR)  # the demo tokenizer's warning is the store's news
            try:
                from vlprep.models.tokenizers import load_tokenizer

                self._tokenizer = load_tokenizer(self.spec, "clip")
            except Exception:  # noqa: BLE001 - fall back to the lemmas
                self._tokenizer = None
            finally:
                logger.setLevel(level)
        return self._tokenizer

    def tags_from_tokens(self, row: dict[str, Any]) -> list[int] | None:
        """Per character 0/1/2 from clip_pos, or None when the tokens cannot be aligned."""
        ids, pos, text = row.get("clip_ids"), row.get("clip_pos"), row["text"]
        tok = self.tokenizer() if ids and pos else None
        if tok is None:
            return None
        from vlprep.models.tokenizers import clip_tokens

        got, offsets = clip_tokens(tok, [text], self.max_tokens)
        if list(got[0]) != list(ids) or len(offsets[0]) != len(pos):
            return None
        tags = [0] * len(text)
        for (start, end), tag in zip(offsets[0], pos, strict=True):
            for c in range(start, min(end, len(text))):
                tags[c] = int(tag)
        return tags

    @staticmethod
    def tags_from_lemmas(row: dict[str, Any]) -> list[int]:
        text = row["text"]
        tags = [0] * len(text)
        lemmas = [(lemma, NOUN) for lemma in row.get("nouns") or []] + \
                 [(lemma, VERB) for lemma in row.get("verbs") or []]
        for match in _WORD.finditer(text):
            word = match.group().lower()
            for lemma, tag in lemmas:
                stem = lemma[:-1] if len(lemma) > 3 and lemma.endswith("e") else lemma
                if word == lemma or (len(stem) >= 3 and word.startswith(stem)):
                    tags[match.start():match.end()] = [tag] * (match.end() - match.start())
                    break
        return tags

    def mark(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row's text as HTML with <mark class=noun|verb> spans, and how it was marked."""
        tags = self.tags_from_tokens(row)
        how = "clip_pos"
        if tags is None:
            tags, how = self.tags_from_lemmas(row), "lemmas (tokenizer not available here)"
        text, parts, i = row["text"], [], 0
        while i < len(text):
            j = i
            while j < len(text) and tags[j] == tags[i]:
                j += 1
            chunk = html.escape(text[i:j])
            cls = {NOUN: "noun", VERB: "verb"}.get(tags[i])
            parts.append(f'<mark class="{cls}">{chunk}</mark>' if cls else chunk)
            i = j
        return {"source": row.get("source"), "segment": row.get("segment"),
                "start": row.get("start"), "end": row.get("end"), "html": "".join(parts),
                "how": how, "nouns": row.get("nouns") or [], "verbs": row.get("verbs") or [],
                "noun_marks": sum(1 for p in parts if 'class="noun"' in p),
                "verb_marks": sum(1 for p in parts if 'class="verb"' in p)}
