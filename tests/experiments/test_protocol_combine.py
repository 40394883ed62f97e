"""Protocol guards and silver combination, on hand-built records with known answers."""

from __future__ import annotations

import pytest

from ade_distill.experiments.combine import single_teacher, vote
from ade_distill.experiments.protocol import contamination, filter_silver, normalize_text, strip_labels
from ade_distill.records import AlignmentStatus, Example, Relation, Span

TEXT = "Cough and angioedema were attributed to enalapril."


def rec(rid: str, rels: list[tuple[str, str]], *, text: str = TEXT, status: str = "ok", pmid: str = "1",
        unaligned: tuple[str, ...] = ()) -> Example:
    spans: dict[str, Span] = {}

    def span(s: str, label: str) -> str:
        key = f"{label}:{s}"
        if key not in spans:
            sid = f"T{len(spans) + 1}"
            if s in unaligned:
                spans[key] = Span(id=sid, label=label, text=s, alignment=AlignmentStatus.UNALIGNED)
            else:
                i = text.index(s)
                spans[key] = Span(id=sid, label=label, start=i, end=i + len(s), text=s,
                                  alignment=AlignmentStatus.EXACT)
        return spans[key].id

    relations = [Relation(head=span(d, "DRUG"), tail=span(a, "ADE"), label="ADE") for d, a in rels]
    return Example(id=rid, text=text, spans=tuple(spans.values()), relations=tuple(relations),
                   meta={"status": status, "pmid": pmid, "source_ids": [rid]})


def pairs(ex: Example) -> set[tuple[str, str]]:
    s = ex.span_by_id()
    return {(s[r.head].text, s[r.tail].text) for r in ex.relations}


def test_strip_labels_removes_gold() -> None:
    g = rec("a", [("enalapril", "Cough")])
    g = g.model_copy(update={"meta": {**g.meta, "has_ade": True}})
    (s,) = strip_labels([g])
    assert s.spans == () and s.relations == () and "has_ade" not in s.meta and s.text == g.text


def test_filter_silver_by_pmid_and_normalized_text() -> None:
    test = [Example(id="t1", text="Drug X caused  RASH.", meta={"pmid": "9"})]
    silver = [
        Example(id="s1", text="Other sentence.", meta={"pmid": "9"}),          # same PMID as test
        Example(id="s2", text="drug x caused rash.", meta={"pmid": "5"}),      # same text after normalization
        Example(id="s3", text="Unrelated.", meta={"pmid": "5", "source_pmids": ["9"]}),  # PMID via source ids
        Example(id="s4", text="Clean.", meta={"pmid": "6"}),
    ]
    kept, rep = filter_silver(silver, test)
    assert [k.id for k in kept] == ["s4"]
    assert (rep.removed_by_pmid, rep.removed_by_text, rep.silver_out) == (2, 1, 1)
    assert rep.clean and contamination(kept, test) == (0, 0)
    assert normalize_text("  A\tB  ") == "a b"


def test_single_teacher_drops_unusable_and_ungrounded() -> None:
    records = [
        rec("ok", [("enalapril", "Cough"), ("enalapril", "swelling")], unaligned=("swelling",)),
        rec("refused", [], status="refused"),
        rec("trunc", [("enalapril", "angioedema")], status="truncated"),
        rec("empty", []),
    ]
    out, st = single_teacher(records)
    assert [e.id for e in out] == ["ok", "trunc", "empty"]
    assert pairs(out[0]) == {("enalapril", "Cough")}
    assert all(s.start is not None for e in out for s in e.spans)
    assert st.unusable == {"refused": 1} and st.relations_ungrounded_dropped == 1
    assert st.relations_out == 2 and st.empty_records == 1


@pytest.mark.parametrize(("min_votes", "expected"), [
    (1, {("enalapril", "Cough"), ("enalapril", "angioedema")}),
    (2, {("enalapril", "Cough")}),
    (3, set()),
])
def test_vote_threshold(min_votes: int, expected: set[tuple[str, str]]) -> None:
    by_teacher = {
        "a": [rec("x", [("enalapril", "Cough"), ("enalapril", "angioedema")])],
        "b": [rec("x", [("enalapril", "Cough")])],
        "c": [rec("x", [], status="refused")],
    }
    out, st = vote(by_teacher, min_votes=min_votes, use_scores=True)
    assert len(out) == 1 and pairs(out[0]) == expected
    assert out[0].meta["usable_teachers"] == 2 and st.unusable == {"c:refused": 1}
    for r in out[0].relations:  # score = share of usable teachers that proposed it
        assert r.score == (1.0 if pairs(Example(id="q", text=TEXT, spans=out[0].spans, relations=(r,))) ==
                           {("enalapril", "Cough")} else 0.5)


def test_vote_skips_texts_no_teacher_could_label() -> None:
    out, st = vote({"a": [rec("x", [], status="refused")], "b": [rec("x", [], status="no_recording")]})
    assert out == [] and st.unusable == {"a:refused": 1, "b:no_recording": 1}
