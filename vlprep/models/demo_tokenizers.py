"""Tiny but real tokenizers built at run time, for the demo job and tests (``builtin:demo``).

No tokenizer can be downloaded at run time, and the real ones (bert-base-uncased's 30,522
WordPiece entries, CLIP's 49,408 BPE entries) are not ours to ship. These are built from a
few hundred everyday words: a WordPiece vocabulary (whole words, then single characters as
word starts and ``##`` continuations, so any text tokenizes) and a byte-level BPE in CLIP's
format (the 256 byte symbols, with and without CLIP's ``</w>`` word end, plus merges learned
from the words). They run through the same `transformers` classes as the real ones, but
their ids are NOT bert-base-uncased's or CLIP's: real jobs point at real tokenizer dirs.
"""

from __future__ import annotations

import string
from collections import Counter, defaultdict
from functools import lru_cache

WORDS = """
a an the and or of to in on at by for with from into onto over under up down out off
is are was were be been being has have had do does did will can not no it its he she they
we you i his her their our my your this that these those there here what who how when
man woman men women person people boy girl child children baby kid family friend player
dog cat bird horse cow fish rabbit animal bunny squirrel butterfly tree forest grass
flower meadow field garden sun sky cloud water river lake sea beach mountain road street
city car bike bicycle cyclist bus train truck phone camera video clip footage scene movie
kitchen food knife pan pot oven bowl plate cup table chair bed room house home door window
hand hands face head eye eyes hair shirt hat ball game music song guitar piano dance
onion tomato egg bread cheese meat chicken rice salt oil sugar butter sauce soup cake
morning day night time minute way thing part side front back top bottom left right middle
run runs running ride rides riding walk walks walking talk talks talking sit sits sitting
stand stands look looks looking see sees watch play plays playing cook cooks cooking cut
cuts cutting slice slices slicing chop put puts add adds mix stir pour make makes making
take takes use uses open close show shows hold holds move moves jump jumps swim drive
drives stretch stretches come comes coming go goes going get gets turn turns start stop
big small large little long short old new young good great green red blue white black
yellow brown animated low high quality blocky moving busy slowly quickly together first
then next now just very really also again
"""


def word_list() -> list[str]:
    return sorted(set(WORDS.split()))


def _bert_vocab() -> list[str]:
    chars = string.ascii_lowercase + string.digits
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    singles = list(chars + string.punctuation)
    pieces = ["##" + c for c in chars]
    words = [w for w in word_list() if len(w) > 1]
    return specials + singles + pieces + words


@lru_cache(maxsize=1)
def demo_bert_tokenizer():
    """An uncased WordPiece tokenizer (BertTokenizer) over the demo words."""
    from transformers import BertTokenizer

    vocab = {token: i for i, token in enumerate(_bert_vocab())}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in byte order."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_merges(words: list[str], num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE on the words (each ends in ``</w>``): the most frequent pair is merged
    first, ties broken alphabetically, so the result is the same everywhere. Pair counts are
    updated only for the words a merge touches."""
    counts = Counter(w for w in words if w)
    corpus = [[list(w[:-1]) + [w[-1] + "</w>"], n] for w, n in sorted(counts.items())]
    pairs: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, (symbols, n) in enumerate(corpus):
        for pair in zip(symbols, symbols[1:], strict=False):
            pairs[pair] += n
            where[pair].add(i)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges and pairs:
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for i in sorted(where.pop(best)):
            symbols, n = corpus[i]
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] -= n
            symbols = corpus[i][0] = _merge(symbols, best)
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += n
                where[pair].add(i)
        pairs = Counter({p: c for p, c in pairs.items() if c > 0})
    return merges


@lru_cache(maxsize=1)
def demo_clip_tokenizer(num_merges: int = 600):
    """A CLIP-format byte-level BPE tokenizer (CLIPTokenizer) over the demo words; start and
    end of text are the last two ids, as in CLIP."""
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges = learn_merges(word_list(), num_merges)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
