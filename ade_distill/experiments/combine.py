"""Turn teacher output into student training data: one teacher as is, or several teachers by vote.

Only grounded spans enter training data. A teacher record whose status is not ``ok`` or ``truncated``
(refused by a content filter, unparseable, no recording, error) says nothing about the text — it is *not* a
"no relations" label — so it is left out (single teacher) or counted as an abstention (vote), never silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ade_distill.records import Example, Relation, Span

USABLE = ("ok", "truncated")


@dataclass
class SilverStats:
    records_in: int = 0
    records_out: int = 0
    unusable: dict[str, int] = field(default_factory=dict)
    relations_out: int = 0
    relations_ungrounded_dropped: int = 0
    relations_below_votes: int = 0
    empty_records: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "unusable_by_status": dict(sorted(self.unusable.items())),
            "relations_out": self.relations_out,
            "relations_ungrounded_dropped": self.relations_ungrounded_dropped,
            "relations_below_votes": self.relations_below_votes,
            "records_without_relations": self.empty_records,
        }


def _status(ex: Example) -> str:
    return str(ex.meta.get("status", "ok"))


_Key = tuple[str, int, int]


def _grounded_relations(ex: Example) -> tuple[list[tuple[_Key, _Key, str]], int]:
    spans = ex.span_by_id()
    out, dropped = [], 0
    seen = set()
    for r in ex.relations:
        h, t = spans[r.head], spans[r.tail]
        if h.start is None or t.start is None:
            dropped += 1
            continue
        assert h.end is not None and t.end is not None
        key = ((h.label, h.start, h.end), (t.label, t.start, t.end), r.label)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out, dropped


def _build(ex: Example, rels: Sequence[tuple[_Key, _Key, str, float | None]], meta: dict) -> Example:
    keys: dict[_Key, float | None] = {}
    for h, t, _label, score in rels:
        for k in (h, t):
            keys[k] = max(keys.get(k) or 0.0, score) if score is not None else keys.get(k)
    ordered = sorted(keys, key=lambda k: (k[1], k[2], k[0]))
    ids = {k: f"T{i + 1}" for i, k in enumerate(ordered)}
    spans = tuple(
        Span(id=ids[k], label=k[0], start=k[1], end=k[2], text=ex.text[k[1]:k[2]], score=keys[k]) for k in ordered
    )
    relations = tuple(Relation(head=ids[h], tail=ids[t], label=lab, score=s) for h, t, lab, s in rels)
    return Example(id=ex.id, text=ex.text, spans=spans, relations=relations, meta=meta)


def single_teacher(records: Sequence[Example]) -> tuple[list[Example], SilverStats]:
    """Training examples from one teacher's silver: usable records, grounded relations only."""
    st = SilverStats(records_in=len(records))
    out = []
    for ex in records:
        status = _status(ex)
        if status not in USABLE:
            st.unusable[status] = st.unusable.get(status, 0) + 1
            continue
        rels, dropped = _grounded_relations(ex)
        st.relations_ungrounded_dropped += dropped
        built = _build(ex, [(h, t, lab, None) for h, t, lab in rels], {**ex.meta})
        st.relations_out += len(built.relations)
        st.empty_records += not built.relations
        out.append(built)
    st.records_out = len(out)
    return out, st


def boundary_consensus(span_votes: Mapping[_Key, int]) -> dict[_Key, _Key]:
    """Map every span to its consensus variant among the overlapping spans of the same label.

    Spans are taken greedily by (votes desc, length asc, start): a chosen span absorbs every not yet chosen
    span of its label that overlaps it. Boundary variants of one mention ("severe myelosuppression",
    "myelosuppression") thus collapse onto the variant most teachers chose, on a tie the shortest — the part
    the teachers agree on — while non-overlapping mentions stay separate. Learned from the teachers' output
    only; no gold label is read.
    """
    order = sorted(span_votes, key=lambda k: (-span_votes[k], k[2] - k[1], k[1], k[0]))
    chosen: list[_Key] = []
    out: dict[_Key, _Key] = {}
    for k in order:
        target = next((c for c in chosen if c[0] == k[0] and c[1] < k[2] and k[1] < c[2]), None)
        if target is None:
            chosen.append(k)
            target = k
        out[k] = target
    return out


def vote(
    by_teacher: Mapping[str, Sequence[Example]], *, min_votes: int = 1, use_scores: bool = False,
    boundary: str = "exact",
) -> tuple[list[Example], SilverStats]:
    """Combine several teachers' silver for the same texts (matched by text) by voting on grounded relations.

    A relation (same head offsets, tail offsets and label) is kept when at least ``min_votes`` teachers
    proposed it; with ``use_scores`` its score (and its spans' scores) is the fraction of *usable* teachers that
    proposed it. Texts where no teacher was usable are left out. Record ids and order follow the first teacher.

    ``boundary="consensus"`` first maps each span onto its consensus variant (:func:`boundary_consensus`, span
    votes = number of teachers that used the span), so a teacher that chose a longer or shorter variant of the
    same mention still votes for the relation; each teacher votes at most once per relation.
    """
    if boundary not in ("exact", "consensus"):
        raise ValueError(f"boundary must be 'exact' or 'consensus', got {boundary!r}")
    names = list(by_teacher)
    first = by_teacher[names[0]]
    index = {n: {e.text: e for e in by_teacher[n]} for n in names}
    st = SilverStats(records_in=len(first))
    out = []
    for ex in first:
        usable = []
        for n in names:
            rec = index[n].get(ex.text)
            status = _status(rec) if rec is not None else "missing"
            if status in USABLE and rec is not None:
                usable.append(rec)
            else:
                st.unusable[f"{n}:{status}"] = st.unusable.get(f"{n}:{status}", 0) + 1
        if not usable:
            continue
        per_teacher = []
        for rec in usable:
            rels, dropped = _grounded_relations(rec)
            st.relations_ungrounded_dropped += dropped
            per_teacher.append(rels)
        if boundary == "consensus":
            span_votes: Counter[_Key] = Counter()
            for rels in per_teacher:
                span_votes.update({k for h, t, _ in rels for k in (h, t)})
            canon = boundary_consensus(span_votes)
            # (a head and a tail of the same entity label may merge into one span: no relation to itself)
            per_teacher = [[(canon[h], canon[t], lab) for h, t, lab in rels if canon[h] != canon[t]]
                           for rels in per_teacher]
        votes: Counter[tuple[_Key, _Key, str]] = Counter()
        for rels in per_teacher:
            votes.update(set(rels))
        kept = []
        for key, v in sorted(votes.items(), key=lambda kv: (kv[0][0][1], kv[0][1][1], kv[0])):
            if v < min_votes:
                st.relations_below_votes += 1
                continue
            kept.append((key[0], key[1], key[2], round(v / len(usable), 4) if use_scores else None))
        meta = {**ex.meta, "teachers": names, "usable_teachers": len(usable), "status": "ok"}
        built = _build(ex, kept, meta)
        st.relations_out += len(built.relations)
        st.empty_records += not built.relations
        out.append(built)
    st.records_out = len(out)
    return out, st


def _occurrences(text: str, needle: str) -> list[int]:
    """Case-insensitive occurrences of ``needle`` that start and end at word boundaries."""
    import re

    pat = re.compile(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", re.IGNORECASE)
    return [m.start() for m in pat.finditer(text) if m.end() - m.start() == len(needle)]


def expand_document_relations(ex: Example) -> Example:
    """For document-level tasks: link every mention of a related pair, not just the one pair grounded.

    CDR relations hold between *concepts*; training the student on one representative mention pair would teach
    it that the other mentions of the same two concepts are unrelated. Gold spans with ``meta["concepts"]``
    are linked by concept id (``relation.meta["head_concept"/"tail_concept"]``); silver spans (no concept ids)
    by case-insensitive whole-word string identity with the grounded mention. Existing spans are reused; new
    spans are added for further occurrences that overlap no span of the same label.
    """
    if not ex.relations:
        return ex
    spans = list(ex.spans)
    by_id = {s.id: s for s in spans}
    taken: dict[str, list[tuple[int, int]]] = {}
    for s in spans:
        if s.start is not None and s.end is not None:
            taken.setdefault(s.label, []).append((s.start, s.end))

    def mentions_like(span: Span, concept: str | None) -> list[str]:
        if concept is not None:
            return [s.id for s in spans if s.label == span.label and concept in (s.meta.get("concepts") or [])]
        ids = [s.id for s in spans if s.label == span.label and s.start is not None and s.text.lower() == span.text.lower()]
        for start in _occurrences(ex.text, span.text):
            end = start + len(span.text)
            if any(a < end and start < b for a, b in taken.get(span.label, [])):
                continue
            new = Span(id=f"X{len(spans) + 1}", label=span.label, start=start, end=end, text=ex.text[start:end],
                       score=span.score)
            spans.append(new)
            by_id[new.id] = new
            taken.setdefault(span.label, []).append((start, end))
            ids.append(new.id)
        return ids

    rels: dict[tuple[str, str, str], Relation] = {}
    for r in ex.relations:
        h, t = by_id[r.head], by_id[r.tail]
        if h.start is None or t.start is None:
            continue
        for hid in mentions_like(h, r.meta.get("head_concept")) or [h.id]:
            for tid in mentions_like(t, r.meta.get("tail_concept")) or [t.id]:
                rels.setdefault((hid, tid, r.label), Relation(head=hid, tail=tid, label=r.label, score=r.score))
    return ex.model_copy(update={"spans": tuple(spans), "relations": tuple(rels.values())})
