"""Hand-worked cases for every matching mode (counts computed by hand in the comments)."""

from __future__ import annotations

import itertools
import random

import pytest

from ade_distill.errors import ConfigError, DataError
from ade_distill.evaluation import micro_prf
from ade_distill.evaluation.matching import match_example, normalize_text

from .helpers import ex, off, span, unaligned

T = "Intravenous azithromycin-induced ototoxicity and renal failure."


def counts(g, p, mode, level="entity"):
    return match_example(g, p, mode, level).counts.micro()


def test_perfect_and_empty_documents():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE")], [("T1", "T2")])
    for mode in ("strict", "boundaries", "lenient", "text"):
        assert counts(g, g, mode) == (2, 0, 0)
        assert counts(g, g, mode, "relation") == (1, 0, 0)
    empty_gold = ex("a", T)
    empty_pred = ex("a", T)
    for mode in ("strict", "boundaries", "lenient", "text"):
        assert counts(empty_gold, empty_pred, mode) == (0, 0, 0)
        assert counts(g, empty_pred, mode, "relation") == (0, 0, 1)
        assert counts(empty_gold, g, mode, "relation") == (0, 1, 0)
    # Nothing at all predicted or expected: P = R = F1 = 0 by convention, never a division error.
    assert micro_prf([empty_gold], [empty_pred]) == (0.0, 0.0, 0.0)


def test_strict_duplicates_are_false_positives():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG")])
    p = ex("a", T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "azithromycin", "DRUG")])
    assert counts(g, p, "strict") == (1, 1, 0)  # one-to-one: the duplicate is an FP
    assert counts(g, p, "lenient") == (1, 1, 0)
    assert counts(g, p, "text") == (1, 0, 0)  # text mode compares sets: duplicates collapse


def test_boundaries_ignores_label_and_attributes_per_label():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE")])
    p = ex("a", T, [span("P1", T, "azithromycin", "ADE"), span("P2", T, "ototoxicity", "ADE")])
    assert counts(g, p, "strict") == (1, 1, 1)
    m = match_example(g, p, "boundaries", "entity")
    assert m.counts.micro() == (2, 0, 0)
    assert m.counts.tp == {"DRUG": 1, "ADE": 1}  # TP attributed to the gold label


def test_boundaries_prefers_same_label_among_equal_offsets():
    # Same offsets annotated twice (DRUG and ADE, e.g. "insulin" as drug and as part of an effect).
    g = ex("a", T, [off("G1", T, 12, 24, "DRUG"), off("G2", T, 12, 24, "ADE")])
    p = ex("a", T, [off("P1", T, 12, 24, "ADE")])
    m = match_example(g, p, "boundaries", "entity")
    assert m.counts.micro() == (1, 0, 1)
    assert m.counts.tp == {"ADE": 1} and m.counts.fn == {"DRUG": 1}


def test_lenient_overlap_and_label():
    g = ex("a", T, [span("T1", T, "renal failure", "ADE")])
    p_ok = ex("a", T, [span("P1", T, "failure", "ADE")])
    p_lab = ex("a", T, [span("P1", T, "failure", "DRUG")])
    p_touch = ex("a", T, [span("P1", T, "and", "ADE")])  # adjacent, no shared character
    assert counts(g, p_ok, "lenient") == (1, 0, 0)
    assert counts(g, p_ok, "strict") == (0, 1, 1)
    assert counts(g, p_lab, "lenient") == (0, 1, 1)
    assert counts(g, p_touch, "lenient") == (0, 1, 1)


def test_lenient_one_prediction_over_two_gold_spans():
    # Prediction "ototoxicity and renal failure" overlaps both gold ADE spans: it may match only one.
    g = ex("a", T, [span("T1", T, "ototoxicity", "ADE"), span("T2", T, "renal failure", "ADE")])
    p = ex("a", T, [span("P1", T, "ototoxicity and renal failure", "ADE")])
    assert counts(g, p, "lenient") == (1, 0, 1)
    # It is matched with the larger overlap (Jaccard): "renal failure" (13/29 > 11/29).
    m = match_example(g, p, "lenient", "entity")
    assert m.matched[0][1].text == "renal failure"


def test_lenient_maximum_not_greedy():
    # P1 overlaps G1 and G2, P2 overlaps only G1. Greedy first-come (P1→G1) leaves P2 unmatched: 1 TP.
    # Maximum matching: P1→G2, P2→G1: 2 TP, whatever the input order.
    text = "aaaa bbbb cccc"
    g1, g2 = off("G1", text, 0, 4, "ADE"), off("G2", text, 5, 9, "ADE")
    p1, p2 = off("P1", text, 2, 7, "ADE"), off("P2", text, 0, 2, "ADE")
    for gs in itertools.permutations([g1, g2]):
        for ps in itertools.permutations([p1, p2]):
            assert counts(ex("a", text, gs), ex("a", text, ps), "lenient") == (2, 0, 0)


def test_nested_spans():
    text = "acute renal failure"
    g = ex("a", text, [off("G1", text, 0, 19, "ADE"), off("G2", text, 6, 19, "ADE")])  # nested gold
    p = ex("a", text, [off("P1", text, 6, 19, "ADE")])
    assert counts(g, p, "strict") == (1, 0, 1)
    assert counts(g, p, "lenient") == (1, 0, 1)  # one prediction, one match
    p2 = ex("a", text, [off("P1", text, 6, 19, "ADE"), off("P2", text, 0, 5, "ADE")])
    assert counts(g, p2, "lenient") == (2, 0, 0)  # P2 "acute" takes G1, P1 takes G2


def test_order_independence_random():
    rng = random.Random(7)
    text = "x" * 60
    for _ in range(200):
        def rand_spans(prefix, k):
            out = []
            for i in range(k):
                a = rng.randrange(0, 55)
                out.append(off(f"{prefix}{i}", text, a, a + rng.randrange(1, 6), rng.choice(["DRUG", "ADE"])))
            return out
        gs, ps = rand_spans("G", rng.randrange(0, 6)), rand_spans("P", rng.randrange(0, 6))
        ref = {m: counts(ex("a", text, gs), ex("a", text, ps), m) for m in ("strict", "boundaries", "lenient")}
        rng.shuffle(gs)
        rng.shuffle(ps)
        for m, c in ref.items():
            assert counts(ex("a", text, gs), ex("a", text, ps), m) == c


def test_relations_per_mode():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE"),
                   span("T3", T, "renal failure", "ADE")], [("T1", "T2"), ("T1", "T3")])
    # Boundary error on the tail of the second relation, and a label error on the head of the first.
    p = ex("a", T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "ototoxicity", "ADE"),
                   span("P3", T, "failure", "ADE"), span("P4", T, "Intravenous azithromycin", "DRUG")],
           [("P1", "P2"), ("P1", "P3")])
    assert counts(g, p, "strict", "relation") == (1, 1, 1)
    assert counts(g, p, "boundaries", "relation") == (1, 1, 1)
    assert counts(g, p, "lenient", "relation") == (2, 0, 0)
    assert counts(g, p, "text", "relation") == (1, 1, 1)
    # Argument label ignored in boundaries mode, not in strict mode.
    p_lab = ex("a", T, [span("P1", T, "azithromycin", "ADE"), span("P2", T, "ototoxicity", "ADE")], [("P1", "P2")])
    assert counts(g, p_lab, "strict", "relation") == (0, 1, 2)
    assert counts(g, p_lab, "boundaries", "relation") == (1, 0, 1)
    # Relation label always counts.
    p_rl = ex("a", T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "ototoxicity", "ADE")],
              [("P1", "P2", "OTHER")])
    for mode in ("strict", "boundaries", "lenient", "text"):
        assert counts(g, p_rl, mode, "relation") == (0, 1, 2)


def test_relation_direction_matters():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "DRUG")], [("T1", "T2")])
    p = ex("a", T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "ototoxicity", "DRUG")], [("P2", "P1")])
    assert counts(g, p, "strict", "relation") == (0, 1, 1)


def test_unaligned_only_in_text_mode():
    g = ex("a", T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE")], [("T1", "T2")])
    p = ex("a", T, [unaligned("P1", "Azithromycin ", "DRUG"), unaligned("P2", "OTOTOXICITY", "ADE")], [("P1", "P2")])
    for mode in ("strict", "boundaries", "lenient"):
        assert counts(g, p, mode) == (0, 2, 2)
        assert counts(g, p, mode, "relation") == (0, 1, 1)
    assert counts(g, p, "text") == (2, 0, 0)
    assert counts(g, p, "text", "relation") == (1, 0, 0)


def test_text_mode_normalization_and_sets():
    assert normalize_text("  Renal\n  FAILURE ") == "renal failure"
    text = "Renal failure after cisplatin; renal  failure again."
    g = ex("a", text, [span("T1", text, "Renal failure", "ADE"), span("T2", text, "cisplatin", "DRUG")],
           [("T2", "T1")])
    p = ex("a", text, [span("P1", text, "renal  failure", "ADE"), span("P2", text, "cisplatin", "DRUG"),
                      span("P3", text, "Renal failure", "ADE")], [("P2", "P1"), ("P2", "P3")])
    assert counts(g, p, "text") == (2, 0, 0)
    assert counts(g, p, "text", "relation") == (1, 0, 0)


def test_micro_over_examples_sums_counts():
    g1 = ex("1", T, [span("T1", T, "azithromycin", "DRUG")])
    g2 = ex("2", T, [span("T1", T, "ototoxicity", "ADE"), span("T2", T, "renal failure", "ADE")])
    p1 = ex("1", T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "renal failure", "DRUG")])
    p2 = ex("2", T, [span("P1", T, "ototoxicity", "ADE")])
    # tp 2, fp 1, fn 1 → P = R = F1 = 2/3 (not the mean of per-example scores).
    p, r, f = micro_prf([g1, g2], [p2, p1], mode="strict", level="entity")  # any order, paired by id
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_micro_prf_errors():
    g = [ex("1", T), ex("2", T)]
    with pytest.raises(DataError, match="no prediction for 1 id"):
        micro_prf(g, [ex("1", T)])
    assert micro_prf(g, [ex("1", T)], missing_as_empty=True) == (0.0, 0.0, 0.0)
    with pytest.raises(DataError, match="not in gold"):
        micro_prf(g, [ex("1", T), ex("2", T), ex("3", T)])
    with pytest.raises(DataError, match="text differs"):
        micro_prf(g, [ex("1", T), ex("2", T + " ")])
    with pytest.raises(ConfigError, match="unknown mode"):
        micro_prf(g, g, mode="fuzzy")
    with pytest.raises(ConfigError, match="concept"):
        micro_prf(g, g, mode="concept")
