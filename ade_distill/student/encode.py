"""Pure conversions between character spans, word-level BIO tags and first-sub-word token labels.

Words are the tokenizer's own pre-tokenization (for BERT: whitespace, then every punctuation character is a word
of its own, so ``azithromycin-induced`` is three words). A word's character range is the union of the offsets of
its sub-word tokens, taken from the fast tokenizer (``word_ids()`` and ``offset_mapping``), so offsets always
point into the original text even when the tokenizer lower-cases or strips accents.

Labels live on words: only the FIRST sub-word piece of each word carries a label, the other pieces carry
``IGNORE`` (-100) in training and are not read at decoding (an earlier calibration run lost 5-7 strict F1 by
labelling every piece).

Snapping rule (char span → words): a span covers every word whose character range overlaps ``[start, end)``.
A span whose ends fall inside a word is therefore widened to whole words; this is counted as ``snapped``
(:class:`AlignStats`). A span that overlaps no word (only whitespace, or cut off by truncation — a word cut
mid-way by ``max_length`` is dropped whole) is counted as ``lost``; a span of several words of which only the
first ones survive truncation keeps those words and is counted as ``snapped``; a span whose words are already tagged by an earlier span of the same tag sequence is counted as
``conflict`` and skipped (spans are processed in input order; the first one wins).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
O, B, I = 0, 1, 2  # noqa: E741 - the conventional BIO names
BIO = ("O", "B", "I")


@dataclass(frozen=True)
class Encoding:
    """One text as the encoder sees it.

    Attributes:
        input_ids: token ids including special tokens (truncated to ``max_length``).
        token_word: word index of each token, ``-1`` for special tokens.
        words: ``(start, end)`` character range of each word that survived truncation whole (a word cut by
            ``max_length`` is not a word of the encoding; its pieces have ``token_word`` -1).
        first_token: index of the first sub-word token of each word.
        truncated: True when words were cut off by ``max_length``.
    """

    input_ids: tuple[int, ...]
    token_word: tuple[int, ...]
    words: tuple[tuple[int, int], ...]
    first_token: tuple[int, ...]
    truncated: bool

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class AlignStats:
    """Counts of what happened to spans on their way to word tags (nothing is dropped silently)."""

    spans: int = 0
    exact: int = 0
    snapped: int = 0
    lost: int = 0
    conflict: int = 0

    def add(self, other: AlignStats) -> None:
        for k in ("spans", "exact", "snapped", "lost", "conflict"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("spans", "exact", "snapped", "lost", "conflict")}


_BACKENDS: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()


def truncating_backend(tokenizer: Any, max_length: int) -> Any:
    """A private copy of a fast tokenizer's Rust tokenizer, set as ``tokenizer(texts, truncation=True,
    max_length=max_length)`` sets it (truncation side and special-token splitting included; no padding), made once
    per tokenizer and length.

    :func:`encode_texts` reads its ``Encoding`` objects directly: the Python wrapper first turns every encoding
    into lists and dicts (through it, the 2,000 sentences of ``benchmarks/predict_overheads.py`` took 1.29x as long).
    The copy leaves the wrapper's own settings alone (the wrapper resets them on every call anyway).
    """
    from tokenizers import Tokenizer

    per_length = _BACKENDS.setdefault(tokenizer, {})
    if max_length not in per_length:
        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.no_padding()
        backend.enable_truncation(max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side)
        backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
        per_length[max_length] = backend
    return per_length[max_length]


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[Encoding]:
    """Tokenize texts with a fast tokenizer, keeping word boundaries and character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("the student needs a fast (Rust) tokenizer for offsets and word ids")
    if not texts:
        return []
    enc = truncating_backend(tokenizer, max_length).encode_batch(list(texts), add_special_tokens=True)
    # Texts that reached max_length are tokenized once more, untruncated, to tell a cut text from one that fits
    # exactly and to find a word cut mid-way (only those: the second pass costs as much as the first).
    at_limit = [i for i in range(len(texts)) if len(enc[i]) >= max_length]
    full = tokenizer([texts[i] for i in at_limit], truncation=False, add_special_tokens=True) if at_limit else None
    row_of = {i: r for r, i in enumerate(at_limit)}
    out: list[Encoding] = []
    for i in range(len(texts)):
        ids = enc[i].ids
        offsets = enc[i].offsets
        wids = enc[i].word_ids
        token_word: list[int] = []
        words: list[list[int]] = []
        first: list[int] = []
        remap: dict[int, int] = {}
        for t, w in enumerate(wids):
            if w is None:
                token_word.append(-1)
                continue
            s, e = offsets[t]
            if w not in remap:
                remap[w] = len(words)
                words.append([s, e])
                first.append(t)
            else:
                cur = words[remap[w]]
                cur[0], cur[1] = min(cur[0], s), max(cur[1], e)
            token_word.append(remap[w])
        truncated = False
        if i in row_of:
            assert full is not None
            r = row_of[i]
            truncated = len(full["input_ids"][r]) > len(ids)
            if truncated and words:
                # A word cut mid-way (its first pieces kept) would pose as a shorter word: a span on it would be
                # trained, and predicted, with an end inside the word. Drop it; its pieces carry no label.
                full_words = [w for w in full.word_ids(r) if w is not None]
                kept = [w for w in wids if w is not None]
                if len(kept) < len(full_words) and full_words[len(kept)] == kept[-1]:
                    cut = len(words) - 1
                    del words[cut], first[cut]
                    token_word = [-1 if x == cut else x for x in token_word]
        out.append(
            Encoding(
                input_ids=tuple(ids),
                token_word=tuple(token_word),
                words=tuple((s, e) for s, e in words),
                first_token=tuple(first),
                truncated=truncated,
            )
        )
    return out


def char_to_words(words: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Word range ``[ws, we)`` of the words overlapping ``[start, end)``, or None if none does."""
    ws = we = None
    for w, (s, e) in enumerate(words):
        if s < end and start < e:
            if ws is None:
                ws = w
            we = w + 1
        elif ws is not None and s >= end:
            break
    if ws is None or we is None:
        return None
    return ws, we


@dataclass
class TaggedSpans:
    tags: list[int]
    ranges: list[tuple[int, int] | None]  # word range of each input span (None when lost or in conflict)
    stats: AlignStats = field(default_factory=AlignStats)


def spans_to_word_tags(
    words: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], *, tag_offset: int = 0,
    tags: list[int] | None = None,
) -> TaggedSpans:
    """BIO tags over words for character spans (see the module docstring for snapping and conflicts).

    ``tag_offset`` shifts B/I (for a joint tag set: B-X = 1 + offset, I-X = 2 + offset); ``tags`` continues an
    existing sequence (spans overlapping already tagged words are conflicts).
    """
    out = list(tags) if tags is not None else [O] * len(words)
    stats = AlignStats()
    ranges: list[tuple[int, int] | None] = []
    for start, end in spans:
        stats.spans += 1
        rng = char_to_words(words, start, end)
        if rng is None:
            stats.lost += 1
            ranges.append(None)
            continue
        ws, we = rng
        if any(out[w] != O for w in range(ws, we)):
            stats.conflict += 1
            ranges.append(None)
            continue
        if words[ws][0] == start and words[we - 1][1] == end:
            stats.exact += 1
        else:
            stats.snapped += 1
        out[ws] = B + tag_offset
        for w in range(ws + 1, we):
            out[w] = I + tag_offset
        ranges.append((ws, we))
    return TaggedSpans(out, ranges, stats)


def word_values_to_tokens(enc: Encoding, values: Sequence[Any], fill: Any = IGNORE) -> list[Any]:
    """Token-level sequence holding each word's value at its first sub-word token and ``fill`` elsewhere."""
    out = [fill] * len(enc.input_ids)
    for w, t in enumerate(enc.first_token):
        out[t] = values[w]
    return out


def decode_bio(
    inside: Sequence[float], begin: Sequence[float], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Word spans ``(ws, we, score)`` from per-word probabilities.

    A word is inside an entity when ``P(B) + P(I) >= threshold`` (``inside``); it starts a new entity when the
    previous word is outside or when ``P(B) > P(I)`` (``begin`` is ``P(B) - P(I)``, positive means B). The score
    is the mean inside-probability of the span's words.
    """
    out: list[tuple[int, int, float]] = []
    ws = None
    acc = 0.0
    for w, p in enumerate(inside):
        if p >= threshold:
            if ws is not None and begin[w] > 0:
                out.append((ws, w, acc / (w - ws)))
                ws = None
            if ws is None:
                ws, acc = w, 0.0
            acc += p
        elif ws is not None:
            out.append((ws, w, acc / (w - ws)))
            ws = None
    if ws is not None:
        out.append((ws, len(inside), acc / (len(inside) - ws)))
    return out


def word_range_to_chars(words: Sequence[tuple[int, int]], ws: int, we: int) -> tuple[int, int]:
    return words[ws][0], words[we - 1][1]
