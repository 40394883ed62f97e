import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

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


# -- issue 15: lower-casing that changes a string's length ('İ' → 'i' + combining dot) -----------------------------
@pytest.mark.parametrize(
    ("text", "needle", "status", "span"),
    [
        ("İ hepatotoxicity-induced rash", "hepatotoxicity induced", A.NORMALIZED, "hepatotoxicity-induced"),
        ("İİİİİİ liver hepatotoxicity and rash", "hepatotoxicty", A.FUZZY, "hepatotoxicity"),
        ("İİİİ hepatotoxicity", "hepatotoxicty", A.FUZZY, "hepatotoxicity"),  # was an IndexError
        ("İİ HEPATOTOXICITY rash", "hepatotoxicity", A.CASE_INSENSITIVE, "HEPATOTOXICITY"),
        ("İstanbul: İSONIAZID hepatitis", "i̇soniazid", A.CASE_INSENSITIVE, "İSONIAZID"),
    ],
)
def test_offsets_survive_lowercase_expanding_characters(text, needle, status, span):
    al = align(text, needle)
    assert al.status is status
    s, e = al.occurrences[0]
    assert text[s:e] == span


def test_fuzzy_match_score_is_not_a_confidence(ade_task):
    g = ground_items(TEXT, [{"drug": "propranolol", "ade": "hypotensoin"}], ade_task)
    ade = next(s for s in g.spans if s.label == "ADE")
    assert ade.alignment is A.FUZZY and ade.text == "hypotension"
    assert ade.score is None  # Span.score is the teacher's confidence to training; a match score is not
    assert 0.9 <= ade.meta["match_score"] < 1.0


def _lower(s: str) -> str:
    return "".join(c.lower() for c in s)


def _recase(c: str, upper: bool) -> str:
    """``c`` in the other case when that keeps one character and the same lower case, else ``c``."""
    other = c.upper() if upper else c.lower()
    return other if len(other) == 1 and other.lower() == c.lower() else c


# any character, and often one whose case mapping changes length or is not one-to-one
_CHARS = st.one_of(st.characters(), st.sampled_from("İıßẞΣσςſKÅǅﬃ\u0307 -"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.text(_CHARS, max_size=30), needle=st.text(_CHARS, min_size=1, max_size=20),
       suffix=st.text(_CHARS, max_size=30), flips=st.lists(st.booleans(), max_size=20), recase=st.booleans())
def test_planted_substring_is_grounded_to_its_own_slice(prefix, needle, suffix, flips, recase):
    """Any string planted in any text (verbatim, or with letters in another case) is found, and the offsets
    found slice out that string, exactly or case-insensitively."""
    target = needle.strip()
    assume(target)
    flips = (flips + [False] * len(needle))[: len(needle)]
    planted = "".join(_recase(c, f) for c, f in zip(needle, flips, strict=True)) if recase else needle
    text = prefix + planted + suffix
    al = align(text, needle)
    assert al.status in (A.EXACT, A.CASE_INSENSITIVE), al
    for s, e in al.occurrences:
        got = text[s:e]
        assert got == target if al.status is A.EXACT else _lower(got) == _lower(target)
