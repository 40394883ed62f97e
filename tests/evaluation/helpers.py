"""Small builders for hand-worked evaluation cases."""

from __future__ import annotations

from ade_distill.records import Example, Relation, Span


def span(sid: str, text: str, sub: str, label: str, occurrence: int = 0) -> Span:
    """A span over the ``occurrence``-th occurrence of ``sub`` in ``text``."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(sub, start + 1)
    return Span(id=sid, label=label, start=start, end=start + len(sub), text=sub)


def off(sid: str, text: str, start: int, end: int, label: str) -> Span:
    return Span(id=sid, label=label, start=start, end=end, text=text[start:end])


def unaligned(sid: str, s: str, label: str) -> Span:
    return Span(id=sid, label=label, text=s, alignment="unaligned")


def ex(eid: str, text: str, spans=(), rels=()) -> Example:
    """``rels``: (head id, tail id) pairs or (head, tail, label) triples; label defaults to ADE."""
    relations = tuple(Relation(head=r[0], tail=r[1], label=r[2] if len(r) > 2 else "ADE") for r in rels)
    return Example(id=eid, text=text, spans=tuple(spans), relations=relations)


T = "Intravenous azithromycin-induced ototoxicity."
U = "Cisplatin caused renal failure."


def two_ade_sentences() -> list[Example]:
    """Gold of two one-relation ADE sentences (texts ``T`` and ``U``), for the ``score`` CLI tests."""
    return [
        ex("1", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE")], [("T1", "T2")]),
        ex("2", U, [span("T1", U, "Cisplatin", "DRUG"), span("T2", U, "renal failure", "ADE")], [("T1", "T2")]),
    ]
