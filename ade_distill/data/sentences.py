"""Sentence splitting with spaCy (blank English + rule-based sentencizer: no model download), keeping offsets."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _nlp() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return half-open ``(start, end)`` character offsets of the sentences of ``text``, whitespace trimmed.

    ``text[start:end]`` is the sentence; empty sentences are omitted.
    """
    out: list[tuple[int, int]] = []
    doc = _nlp()(text)
    for sent in doc.sents:
        start, end = sent.start_char, sent.end_char
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out
