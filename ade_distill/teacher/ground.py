"""Relation items (strings) → spans with character offsets and an :class:`AlignmentStatus`. Pure; never calls
an LLM.

Each argument string is aligned to the input text by the first strategy that finds it:

1. ``exact`` — every occurrence of the string;
2. ``case_insensitive`` — every occurrence ignoring case, i.e. whose slice lower-cases (character by
   character) to the lower-cased string;
3. ``normalized`` — both sides lower-cased with each run of whitespace/punctuation collapsed to one space
   (``"beta blocker"`` matches ``"beta-blocker"``, ``"rash ,"`` matches ``"rash,"``); the span is the original text
   from the first to the last matched alphanumeric character;
4. ``fuzzy`` — :func:`rapidfuzz.fuzz.partial_ratio_alignment` on lower-cased text, score ≥ ``fuzzy_threshold``
   (default 90) and string ≥ ``fuzzy_min_len`` characters; the span is widened to whole words. The match score
   goes to the span's ``meta["match_score"]``, never to ``Span.score``, which means teacher confidence to training;
5. otherwise ``unaligned``: the span keeps only its text (no offsets) and is counted as a hallucination.

Lower-casing may change a string's length ('İ' becomes 'i' + a combining dot): every lower-cased text is built
with a map from each of its characters to the original character it came from, and offsets found in it are
mapped back through it, so they always index the original text.

Occurrences on word boundaries are preferred to occurrences inside a word. Rules, all deterministic:

* repeated mentions: of the candidate occurrences, the head/tail pair with the smallest character gap between
  the two spans is chosen (ties: earliest head, then earliest tail); an argument whose partner is unaligned
  takes its first occurrence;
* one span per (label, start, end) — items sharing a mention share the span; unaligned spans are shared per
  (label, text);
* the same string returned as both head and tail (e.g. DRUG and ADE) gives two spans with different labels
  and may have identical offsets; overlapping spans are kept as returned. Nothing is merged or dropped here;
* span ids are ``T1, T2, ...`` in order of first use (items in answer order, head before tail).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ade_distill.records import AlignmentStatus, Relation, Span
from ade_distill.tasks.spec import TaskSpec

__all__ = ["Alignment", "align", "ground_items", "GroundingResult"]

Occurrence = tuple[int, int]


@dataclass(frozen=True)
class Alignment:
    """All candidate occurrences of one string at the strongest matching level."""

    status: AlignmentStatus
    occurrences: tuple[Occurrence, ...] = ()
    score: float | None = None


def _is_word(c: str) -> bool:
    return c.isalnum()


def _on_boundary(text: str, s: int, e: int) -> bool:
    left = s == 0 or not (_is_word(text[s - 1]) and _is_word(text[s]))
    right = e == len(text) or not (_is_word(text[e - 1]) and _is_word(text[e]))
    return left and right


def _prefer_boundaries(text: str, occ: list[Occurrence]) -> tuple[Occurrence, ...]:
    good = [o for o in occ if _on_boundary(text, *o)]
    return tuple(good or occ)


def _lower_with_map(text: str) -> tuple[str, list[int]]:
    """Lower-case character by character; map each output char to the index of the char it came from."""
    out: list[str] = []
    idx: list[int] = []
    for i, c in enumerate(text):
        low = c.lower()
        out.append(low)
        idx.extend([i] * len(low))
    return "".join(out), idx


def _lower(text: str) -> str:
    return "".join(c.lower() for c in text)


def _to_source(idx: list[int], s: int, e: int) -> Occurrence:
    """Offsets ``[s, e)`` of a derived text (lower-cased or normalized) → offsets into the original text."""
    return idx[s], idx[e - 1] + 1


def _find_all(hay: str, needle: str) -> list[Occurrence]:
    out, i = [], hay.find(needle)
    while i >= 0:
        out.append((i, i + len(needle)))
        i = hay.find(needle, i + 1)
    return out


def _normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Lower-case, collapse runs of non-alphanumerics into one space; map each output char to its source."""
    out: list[str] = []
    idx: list[int] = []
    gap = False
    for i, c in enumerate(text):
        if c.isalnum():
            if gap and out:
                out.append(" ")
                idx.append(i - 1)
            gap = False
            low = c.lower()
            out.append(low)
            idx.extend([i] * len(low))
        else:
            gap = True
    return "".join(out), idx


_WORD_EDGE = re.compile(r"\w")


def _widen(text: str, s: int, e: int) -> Occurrence:
    while s > 0 and _is_word(text[s - 1]) and _is_word(text[s]):
        s -= 1
    while e < len(text) and _is_word(text[e - 1]) and _is_word(text[e]):
        e += 1
    while s < e and (text[s].isspace() or text[s] in ".,;:"):
        s += 1
    while e > s and (text[e - 1].isspace() or text[e - 1] in ".,;:"):
        e -= 1
    return s, e


def align(
    text: str, needle: str, *, fuzzy_threshold: float = 90.0, fuzzy_min_len: int = 4, norm: tuple[str, list[int]] | None = None
) -> Alignment:
    """Find ``needle`` in ``text`` at the strongest level (see the module docstring)."""
    needle = needle.strip()
    if not needle:
        return Alignment(AlignmentStatus.UNALIGNED)
    occ = _find_all(text, needle)
    if occ:
        return Alignment(AlignmentStatus.EXACT, _prefer_boundaries(text, occ))
    ltext, lmap = _lower_with_map(text)
    lneedle = _lower(needle)
    # a match may begin or end inside one character's lower-case expansion; keep only whole-character matches
    occ = [o for o in (_to_source(lmap, s, e) for s, e in _find_all(ltext, lneedle))
           if _lower(text[o[0]:o[1]]) == lneedle]
    if occ:
        return Alignment(AlignmentStatus.CASE_INSENSITIVE, _prefer_boundaries(text, occ))
    ntext, nmap = norm or _normalize_with_map(text)
    nneedle, _ = _normalize_with_map(needle)
    if nneedle:
        found = [_to_source(nmap, s, e) for s, e in _find_all(ntext, nneedle)]
        if found:
            return Alignment(AlignmentStatus.NORMALIZED, _prefer_boundaries(text, found))
    if len(needle) >= fuzzy_min_len and len(text) > 0:
        return _fuzzy(text, ltext, lmap, lneedle, fuzzy_threshold)
    return Alignment(AlignmentStatus.UNALIGNED)


def _fuzzy(text: str, ltext: str, lmap: list[int], lneedle: str, threshold: float) -> Alignment:
    """Best partial-ratio window of ``lneedle`` in the lower-cased text ``ltext``, mapped back to ``text``."""
    from rapidfuzz import fuzz

    res = fuzz.partial_ratio_alignment(lneedle, ltext, score_cutoff=threshold)
    if res is not None and res.dest_end > res.dest_start:
        s, e = _widen(text, *_to_source(lmap, res.dest_start, res.dest_end))
        if e > s:
            return Alignment(AlignmentStatus.FUZZY, ((s, e),), round(res.score / 100.0, 4))
    return Alignment(AlignmentStatus.UNALIGNED)


def _gap(a: Occurrence, b: Occurrence) -> int:
    if a[1] <= b[0]:
        return b[0] - a[1]
    if b[1] <= a[0]:
        return a[0] - b[1]
    return 0


def _choose(h: Alignment, t: Alignment) -> tuple[Occurrence | None, Occurrence | None]:
    if not h.occurrences or not t.occurrences:
        return (h.occurrences[0] if h.occurrences else None, t.occurrences[0] if t.occurrences else None)
    best = min((_gap(a, b), a[0], b[0], a, b) for a in h.occurrences for b in t.occurrences)
    return best[3], best[4]


@dataclass(frozen=True)
class GroundingResult:
    spans: tuple[Span, ...]
    relations: tuple[Relation, ...]
    counts: dict[str, int]  # arguments per alignment status (each argument of each item counted once)


def ground_items(
    text: str,
    items: Sequence[dict[str, str]],
    task: TaskSpec,
    *,
    fuzzy_threshold: float = 90.0,
    fuzzy_min_len: int = 4,
) -> GroundingResult:
    """Turn parsed items ``{head_key: str, tail_key: str}`` into spans and relations of ``task.primary``.

    Returns:
        spans (grounded ones with offsets and ``alignment``; ungrounded ones with ``alignment='unaligned'`` and
        no offsets), relations between span ids, and per-status argument counts.
    """
    rel = task.primary
    hk, tk = task.entity(rel.head).key, task.entity(rel.tail).key
    norm = _normalize_with_map(text)
    cache: dict[str, Alignment] = {}

    def _al(s: str) -> Alignment:
        if s not in cache:
            cache[s] = align(text, s, fuzzy_threshold=fuzzy_threshold, fuzzy_min_len=fuzzy_min_len, norm=norm)
        return cache[s]

    spans: list[Span] = []
    index: dict[tuple, str] = {}
    relations: list[Relation] = []
    seen_rel: set[tuple[str, str]] = set()
    counts = {s.value: 0 for s in AlignmentStatus}

    def _span(label: str, raw: str, al: Alignment, occ: Occurrence | None) -> str:
        counts[al.status.value] += 1
        if occ is None:
            key: tuple = (label, None, raw.strip())
        else:
            key = (label, occ[0], occ[1])
        if key in index:
            return index[key]
        sid = f"T{len(spans) + 1}"
        meta = {} if occ is None or text[occ[0] : occ[1]] == raw else {"returned": raw}
        if al.score is not None:
            meta["match_score"] = al.score  # how well the string matched, not the teacher's confidence
        if occ is None:
            sp = Span(id=sid, label=label, text=raw.strip(), alignment=AlignmentStatus.UNALIGNED)
        else:
            sp = Span(
                id=sid, label=label, start=occ[0], end=occ[1], text=text[occ[0] : occ[1]],
                alignment=al.status, meta=meta,
            )
        spans.append(sp)
        index[key] = sid
        return sid

    for item in items:
        ha, ta = _al(item[hk]), _al(item[tk])
        ho, to = _choose(ha, ta)
        h_id = _span(rel.head, item[hk], ha, ho)
        t_id = _span(rel.tail, item[tk], ta, to)
        if (h_id, t_id) in seen_rel:
            continue
        seen_rel.add((h_id, t_id))
        relations.append(Relation(head=h_id, tail=t_id, label=rel.label))
    return GroundingResult(tuple(spans), tuple(relations), counts)
