"""Long texts as windows of whole sentences that fit the encoder (document-level tasks such as BC5CDR).

A text longer than ``max_length`` sub-word tokens is split into sentences, and consecutive sentences are packed
greedily into windows of at most ``max_length`` tokens (special tokens included). Training examples are cut
into one example per window — spans inside the window shifted to it, relations kept when both arguments lie in
the same window — and prediction runs per window and maps offsets back, so training and prediction see the
same units. Relations whose arguments never share a window cannot be learned or predicted; the counts say how
many (nothing is dropped silently). A single sentence longer than the limit stays one (truncated) window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ade_distill.records import Example, Span


def pack_sentences(
    sentences: Sequence[tuple[int, int]], n_tokens: Sequence[int], budget: int
) -> list[tuple[int, int]]:
    """Greedily join consecutive sentences ``(start, end)`` while their summed token counts fit ``budget``.

    A sentence that alone exceeds the budget becomes its own window. Returns ``(start, end)`` windows in order.
    """
    if len(sentences) != len(n_tokens):
        raise ValueError("one token count per sentence is needed")
    out: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    used = 0
    for (s, e), n in zip(sentences, n_tokens, strict=True):
        if cur is not None and used + n <= budget:
            cur, used = (cur[0], e), used + n
            continue
        if cur is not None:
            out.append(cur)
        cur, used = (s, e), n
    if cur is not None:
        out.append(cur)
    return out


def _budget(tokenizer: Any, max_length: int) -> int:
    """Sub-word tokens left for the text once the special tokens are added."""
    return max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))


def sentence_windows(tokenizer: Any, text: str, max_length: int) -> list[tuple[int, int]]:
    """The sentences of ``text`` packed into windows of at most ``max_length`` tokens (special tokens included)."""
    from ade_distill.data.sentences import split_sentences

    sents = split_sentences(text) or [(0, len(text))]
    counts = tokenizer([text[s:e] for s, e in sents], add_special_tokens=False)["input_ids"]
    return pack_sentences(sents, [len(c) for c in counts], _budget(tokenizer, max_length))


def text_windows(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[tuple[int, int]]]:
    """Windows of each text: ``[(0, len(text))]`` when it fits ``max_length`` tokens, else packed sentences."""
    lengths = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
    budget = _budget(tokenizer, max_length)
    return [[(0, len(text))] if len(ids) <= budget else sentence_windows(tokenizer, text, max_length)
            for text, ids in zip(texts, lengths, strict=True)]


@dataclass
class WindowStats:
    texts_split: int = 0
    windows: int = 0
    spans_cut: int = 0
    relations_across_windows: int = 0
    relations_with_cut_span: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def window_example(ex: Example, windows: Sequence[tuple[int, int]], stats: WindowStats | None = None) -> list[Example]:
    """One example per window (ids ``<id>#w<k>``; ``meta.window`` = ``[parent id, offset]``).

    Unaligned spans (no offsets) are left out of every window, as training ignores them anyway.
    """
    stats = stats if stats is not None else WindowStats()
    if len(windows) == 1:  # fits, or one over-long sentence (truncated as before)
        return [ex]
    stats.texts_split += 1
    placed: dict[str, int] = {}
    for s in ex.spans:
        if s.start is None or s.end is None:
            continue
        k = next((i for i, (ws, we) in enumerate(windows) if ws <= s.start and s.end <= we), None)
        if k is None:
            stats.spans_cut += 1
        else:
            placed[s.id] = k
    out: list[Example] = []
    for k, (ws, we) in enumerate(windows):
        spans = tuple(
            Span(id=s.id, label=s.label, start=s.start - ws, end=s.end - ws, text=s.text, score=s.score,
                 alignment=s.alignment, meta=s.meta)
            for s in ex.spans if placed.get(s.id) == k and s.start is not None and s.end is not None
        )
        rels = tuple(r for r in ex.relations if placed.get(r.head) == k and placed.get(r.tail) == k)
        out.append(Example(id=f"{ex.id}#w{k}", text=ex.text[ws:we], spans=spans, relations=rels,
                           meta={**ex.meta, "window": [ex.id, ws]}))
    stats.windows += len(out)
    kept = sum(len(w.relations) for w in out)
    both_placed = sum(1 for r in ex.relations if r.head in placed and r.tail in placed)
    stats.relations_across_windows += both_placed - kept
    stats.relations_with_cut_span += len(ex.relations) - both_placed  # an argument cut by a window or unaligned
    return out


def window_examples(
    tokenizer: Any, examples: Sequence[Example], max_length: int
) -> tuple[list[Example], WindowStats]:
    """Cut every example longer than ``max_length`` tokens into sentence windows (see the module docstring)."""
    stats = WindowStats()
    out: list[Example] = []
    for ex, wins in zip(examples, text_windows(tokenizer, [e.text for e in examples], max_length), strict=True):
        out.extend(window_example(ex, wins, stats))
    return out, stats


__all__ = ["pack_sentences", "sentence_windows", "text_windows", "window_example", "window_examples", "WindowStats"]
