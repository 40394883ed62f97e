import pytest

from ade_distill.records import AlignmentStatus, Example
from ade_distill.teacher.ground import align, ground_items

A = AlignmentStatus
TEXT = "Rash after beta-blocker use. Later propranolol caused a RASH and hypotension; propranolol was stopped."


@pytest.mark.parametrize(
    ("needle", "status", "span"),
    [
        ("propranolol", A.EXACT, "propranolol"),
        ("rash", A.CASE_INSENSITIVE, "Rash"),
        ("beta blocker", A.NORMALIZED, "beta-blocker"),
        ("hypotensoin", A.FUZZY, "hypotension"),
        ("hypotension due to aspirin", A.UNALIGNED, None),
        ("aspirin", A.UNALIGNED, None),
    ],
)
def test_alignment_levels(needle, status, span):
    al = align(TEXT, needle)
    assert al.status is status
    if span is None:
        assert al.occurrences == ()
    else:
        s, e = al.occurrences[0]
        assert TEXT[s:e] == span


def test_word_boundary_preferred():
    al = align("thrash and rash", "rash")
    assert al.occurrences == ((11, 15),)


def test_repeated_mentions_take_occurrence_nearest_partner(ade_task):
    g = ground_items(TEXT, [{"drug": "propranolol", "ade": "hypotension"}, {"drug": "propranolol", "ade": "Rash"}], ade_task)
    spans = {s.id: s for s in g.spans}
    r1, r2 = g.relations
    # hypotension (66) is nearer the second propranolol (79) than the first (35)
    assert spans[r1.head].start == TEXT.index("propranolol", 40)
    # Rash (exact, at 0) is nearer the first propranolol
    assert spans[r2.head].start == TEXT.index("propranolol")
    ex = Example(id="x", text=TEXT, spans=g.spans, relations=g.relations)  # offsets validate
    assert len(ex.relations) == 2


def test_unaligned_kept_without_offsets_and_counted(ade_task):
    g = ground_items(TEXT, [{"drug": "aspirin", "ade": "hypotension"}], ade_task)
    drug = next(s for s in g.spans if s.label == "DRUG")
    assert drug.start is None and drug.alignment is A.UNALIGNED and drug.text == "aspirin"
    assert g.counts["unaligned"] == 1 and g.counts["exact"] == 1
    assert len(g.relations) == 1  # the relation keeps pointing at the unaligned span, for inspection


def test_same_string_as_drug_and_ade_gives_two_labeled_spans(ade_task):
    g = ground_items("Insulin allergy.", [{"drug": "Insulin", "ade": "Insulin"}], ade_task)
    assert [(s.label, s.start, s.end) for s in g.spans] == [("DRUG", 0, 7), ("ADE", 0, 7)]


def test_shared_mentions_share_span_ids_and_duplicates_merge(ade_task):
    g = ground_items(TEXT, [{"drug": "propranolol", "ade": "hypotension"},
                            {"drug": "propranolol", "ade": "hypotension"},
                            {"drug": "propranolol", "ade": "RASH"}], ade_task)
    assert len(g.relations) == 2  # the repeated item merged
    # RASH lies nearer the first propranolol, so that mention gets its own span; ids follow first use
    assert [(s.id, s.label, s.start) for s in g.spans] == [
        ("T1", "DRUG", TEXT.index("propranolol", 40)), ("T2", "ADE", TEXT.index("hypotension")),
        ("T3", "DRUG", TEXT.index("propranolol")), ("T4", "ADE", TEXT.index("RASH")),
    ]


def test_returned_string_recorded_when_span_differs(ade_task):
    g = ground_items(TEXT, [{"drug": "propranolol", "ade": "rash"}], ade_task)
    ade = next(s for s in g.spans if s.label == "ADE")
    assert ade.meta == {"returned": "rash"} and ade.text in ("Rash", "RASH")
