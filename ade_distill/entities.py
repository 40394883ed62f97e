"""Entities over given mentions, shared by the ``pair_classifier`` student and the rule baselines: mentions grouped
into entities by concept id (``span.meta["concepts"]``, e.g. the MeSH ids of BC5CDR gold mentions) else by
normalized text, the sentence of each mention, and the relation record an entity pair becomes. No torch."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from ade_distill.records import Relation, Span

EntityKey = tuple[str, str]  # (label, "c:<concept id>" or "t:<normalized text>")


def normalize_text(s: str) -> str:
    """Lowercase, whitespace runs collapsed (the scorer's ``text`` key)."""
    return " ".join(s.lower().split())


def entity_keys(span: Span) -> list[EntityKey]:
    """The entities a mention belongs to: one per concept id in ``meta["concepts"]``, else its normalized text."""
    concepts = [str(c) for c in (span.meta.get("concepts") or ()) if str(c) and str(c) != "-1"]
    if concepts:
        return [(span.label, f"c:{c}") for c in dict.fromkeys(concepts)]
    return [(span.label, f"t:{normalize_text(span.text)}")]


def group_mentions(spans: Sequence[Span], labels: Sequence[str]) -> dict[EntityKey, list[int]]:
    """Entity key → indices (into ``spans``) of its mentions, for spans with offsets and a label in ``labels``;
    entities in order of first mention."""
    out: dict[EntityKey, list[int]] = {}
    for i, s in enumerate(spans):
        if s.start is None or s.end is None or s.label not in labels:
            continue
        for k in entity_keys(s):
            out.setdefault(k, []).append(i)
    return out


def mention_sentences(text: str, starts: Sequence[int]) -> list[int]:
    """The sentence index (:func:`~ade_distill.data.sentences.split_sentences`) of each character offset."""
    from ade_distill.data.sentences import split_sentences

    firsts = [a for a, _ in split_sentences(text)] or [0]
    return [max(0, bisect.bisect_right(firsts, x) - 1) for x in starts]


def anchor_mention(key: EntityKey, members: Sequence[int], spans: Sequence[Span]) -> Span:
    """The mention a relation names for an entity: its first mention whose only entity is ``key`` (a composite
    mention would map to other concepts too), else its first mention."""
    cands = [spans[i] for i in members]
    for s in cands:
        if entity_keys(s) == [key]:
            return s
    return cands[0]


def entity_pair_relation(head: EntityKey, tail: EntityKey, groups: dict[EntityKey, list[int]],
                         spans: Sequence[Span], label: str, score: float | None = None) -> Relation:
    """The relation record of a related entity pair: between the anchor mention of each entity, carrying
    ``head_concept``/``tail_concept`` where both entities are concepts (what the ``concept`` scorer reads)."""
    h, t = anchor_mention(head, groups[head], spans), anchor_mention(tail, groups[tail], spans)
    meta: dict[str, Any] = {}
    if head[1].startswith("c:") and tail[1].startswith("c:"):
        meta = {"head_concept": head[1][2:], "tail_concept": tail[1][2:]}
    return Relation(head=h.id, tail=t.id, label=label, score=score, meta=meta)


__all__ = ["EntityKey", "anchor_mention", "entity_keys", "entity_pair_relation", "group_mentions",
           "mention_sentences", "normalize_text"]
