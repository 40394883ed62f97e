"""Concept mode (BC5CDR-style document scoring) and the error analysis categories."""

from __future__ import annotations

import pytest

from ade_distill.errors import ConfigError
from ade_distill.evaluation import micro_prf
from ade_distill.evaluation.errors_analysis import analyze_errors
from ade_distill.evaluation.matching import match_example
from ade_distill.evaluation.scoring import resolve_modes
from ade_distill.records import Example, Relation, Span

from .helpers import ex, span, unaligned

D = "Cisplatin nephrotoxicity. Renal damage after cisplatin and ototoxicity."


def cdr_gold() -> Example:
    s = [
        Span(id="T1", label="CHEMICAL", start=0, end=9, text="Cisplatin", meta={"concepts": ["D002945"]}),
        Span(id="T2", label="DISEASE", start=10, end=24, text="nephrotoxicity", meta={"concepts": ["D007674"]}),
        Span(id="T3", label="DISEASE", start=26, end=38, text="Renal damage", meta={"concepts": ["D007674"]}),
        Span(id="T4", label="CHEMICAL", start=45, end=54, text="cisplatin", meta={"concepts": ["D002945"]}),
        Span(id="T5", label="DISEASE", start=59, end=70, text="ototoxicity", meta={"concepts": ["D006311"]}),
    ]
    r = [Relation(head="T1", tail="T2", label="CID", meta={"head_concept": "D002945", "tail_concept": "D007674"})]
    return Example(id="d1", text=D, spans=tuple(s), relations=tuple(r),
                   meta={"unanchored_relations": [{"head_concept": "D002945", "tail_concept": "D999", "label": "CID"}]})


def test_concept_mode_document_pairs():
    g = cdr_gold()
    # Two mentions of the same pair (text match + overlap) collapse to one concept pair; an unmapped pair is
    # one FP per distinct normalized string pair; the unanchored gold pair can only be missed.
    p = Example(id="d1", text=D, spans=(
        span("P1", D, "cisplatin", "CHEMICAL"), span("P2", D, "Renal damage", "DISEASE"),
        unaligned("P3", "CISPLATIN", "CHEMICAL"), unaligned("P4", "kidney injury", "DISEASE"),
        unaligned("P5", "Kidney  injury", "DISEASE"), span("P6", D, "ototoxicity", "DISEASE"),
    ), relations=(Relation(head="P1", tail="P2", label="CID"), Relation(head="P3", tail="P2", label="CID"),
                  Relation(head="P3", tail="P4", label="CID"), Relation(head="P1", tail="P5", label="CID"),
                  Relation(head="P1", tail="P6", label="CID")))
    m = match_example(g, p, "concept", "relation")
    # pred pairs {(cis, neph), (cis, oto)} + 1 unmapped ("cisplatin", "kidney injury"); gold {(cis, neph), (cis, D999)}
    assert m.counts.micro() == (1, 2, 1)
    e = match_example(g, p, "concept", "entity")
    # pred concepts {cis, neph, oto} + unmapped ("kidney injury", DISEASE); gold {cis, neph, oto}
    assert e.counts.micro() == (3, 1, 0)


def test_a_named_concept_pair_is_scored_as_named_when_its_mentions_bear_it_out():
    g = cdr_gold()
    # "Renal damage nephrotoxicity" is not in the text; a mention overlapping two disease concepts (here: a span
    # over "nephrotoxicity. Renal damage") maps to both, so without a name it yields two concept pairs
    wide = Span(id="P2", label="DISEASE", start=10, end=38, text=D[10:38])
    chem = span("P1", D, "Cisplatin", "CHEMICAL")
    plain = Example(id="d1", text=D, spans=(chem, wide), relations=(Relation(head="P1", tail="P2", label="CID"),))
    assert match_example(g, plain, "concept", "relation").counts.micro() == (1, 0, 1)  # one concept, same pair
    other = Span(id="P3", label="DISEASE", start=10, end=70, text=D[10:70])  # nephrotoxicity ... ototoxicity
    both = Example(id="d1", text=D, spans=(chem, other), relations=(Relation(head="P1", tail="P3", label="CID"),))
    assert match_example(g, both, "concept", "relation").counts.micro() == (1, 1, 1)  # (cis, neph) + (cis, oto)
    named = Relation(head="P1", tail="P3", label="CID", meta={"head_concept": "D002945", "tail_concept": "D007674"})
    one = both.model_copy(update={"relations": (named,)})
    assert match_example(g, one, "concept", "relation").counts.micro() == (1, 0, 1)  # the named pair only
    # a name the mentions do not bear out is not taken on trust: the mentions' concepts are scored
    claim = Relation(head="P1", tail="P3", label="CID", meta={"head_concept": "D002945", "tail_concept": "D999"})
    bogus = both.model_copy(update={"relations": (claim,)})
    assert match_example(g, bogus, "concept", "relation").counts.micro() == (1, 1, 1)


def test_gold_scores_itself_perfectly_in_concept_mode() -> None:
    from ade_distill.data.corpora import load_corpus

    gold = load_corpus("cdr-test")
    assert micro_prf(gold, gold, mode="concept") == (1.0, 1.0, 1.0)  # composite and nested mentions add no pair


def test_concept_mode_needs_concepts():
    g = [ex("1", D)]
    with pytest.raises(ConfigError, match="concept ids"):
        micro_prf(g, g, mode="concept")
    assert resolve_modes("all", g) == ("strict", "boundaries", "lenient", "text")
    assert resolve_modes("all", [cdr_gold()])[-1] == "concept"


def test_error_categories():
    T = "Azithromycin and rifampicin caused ototoxicity and renal failure."
    g = ex("1", T, [span("G1", T, "Azithromycin", "DRUG"), span("G2", T, "ototoxicity", "ADE"),
                   span("G3", T, "renal failure", "ADE"), span("G4", T, "rifampicin", "DRUG")],
           [("G1", "G2"), ("G4", "G3")])
    p = ex("1", T, [span("P1", T, "Azithromycin", "DRUG"), span("P2", T, "ototoxicity", "ADE"),
                   span("P3", T, "failure", "ADE"), span("P4", T, "rifampicin", "ADE"),
                   span("P5", T, "caused", "ADE"), unaligned("P6", "aspirin", "DRUG")],
           [("P1", "P3"), ("P6", "P2"), ("P1", "P5")])
    a = analyze_errors([g], [p], "sys").to_dict()
    assert a["counts"]["entity"] == {"boundary": 1, "label": 1, "boundary_label": 0, "miss": 0, "spurious": 1,
                                     "ungrounded": 1}
    # (P1,P3): Azithromycin→failure: G1 exact, P3 not a gold span, no lenient gold relation → spurious;
    # (P6,P2) ungrounded; (P1,P5) spurious; gold (G1,G2) missed? P1→P3 no; → miss; (G4,G3): no pred → miss.
    assert a["counts"]["relation"]["ungrounded"] == 1
    assert a["counts"]["relation"]["miss"] == 2
    p2 = ex("1", T, [span("P1", T, "Azithromycin", "DRUG"), span("P3", T, "renal failure", "ADE"),
                    span("P4", T, "rifampicin", "DRUG"), span("P5", T, "ototoxicity", "ADE")],
            [("P1", "P3"), ("P4", "P5")])
    b = analyze_errors([g], [p2], "sys").to_dict()
    assert b["counts"]["relation"]["wrong_pairing"] == 2
    md = analyze_errors([g], [p], "sys").to_markdown()
    assert "| ungrounded | 1 |" in md and "`1`" in md
