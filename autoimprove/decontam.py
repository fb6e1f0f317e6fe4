"""Text normalization and word n-gram overlap: the decontamination check between data sets.

The seed pool is what the service trains on; the held-out set is what it is judged on. If a
held-out question (or a long run of its words) also sits in the pool, a rise in held-out score
can be memorization rather than improvement. The check here is the usual one for that: compare
*normalized* text (lowercase, no punctuation, single spaces) for identical items, and compare
word n-grams (n=8 by default) for near-copies that share a long phrase.

Used by ``seeds/make_arith.py`` (to filter the pool against the held-out set while generating)
and by the data tests (to prove the shipped files are clean).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

# Punctuation is removed outright (not turned into a space) so "$12" and "12", or "Ana's" and
# "Anas", compare equal: a leak should not hide behind a currency sign or an apostrophe.
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")

DEFAULT_N = 8

NGram = tuple[str, ...]


def normalize_text(text: str) -> str:
    """Lowercase, strip punctuation and collapse whitespace to single spaces."""
    return _SPACE.sub(" ", _PUNCT.sub("", text.lower())).strip()


def word_ngrams(text: str, n: int = DEFAULT_N) -> set[NGram]:
    """Word n-grams of the normalized text.

    A text shorter than ``n`` words yields one "n-gram" made of all its words, so two identical
    short texts still count as overlapping (it can never equal an n-word tuple of a longer text).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = normalize_text(text).split()
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_index(texts: Iterable[str], n: int = DEFAULT_N) -> dict[NGram, set[int]]:
    """Map each n-gram to the indices of the texts that contain it (for repeated look-ups)."""
    index: dict[NGram, set[int]] = defaultdict(set)
    for i, text in enumerate(texts):
        for gram in word_ngrams(text, n):
            index[gram].add(i)
    return dict(index)


def overlaps(
    a_texts: Sequence[str], b_texts: Sequence[str], n: int = DEFAULT_N
) -> list[tuple[int, int]]:
    """Sorted ``(i, j)`` pairs where ``a_texts[i]`` and ``b_texts[j]`` share a word n-gram."""
    index = ngram_index(b_texts, n)
    pairs: set[tuple[int, int]] = set()
    for i, text in enumerate(a_texts):
        for gram in word_ngrams(text, n):
            for j in index.get(gram, ()):
                pairs.add((i, j))
    return sorted(pairs)


def exact_overlaps(a_texts: Sequence[str], b_texts: Sequence[str]) -> list[tuple[int, int]]:
    """Sorted ``(i, j)`` pairs whose normalized texts are identical."""
    by_text: dict[str, list[int]] = defaultdict(list)
    for j, text in enumerate(b_texts):
        by_text[normalize_text(text)].append(j)
    return sorted(
        (i, j) for i, text in enumerate(a_texts) for j in by_text.get(normalize_text(text), ())
    )
