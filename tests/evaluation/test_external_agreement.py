"""Agreement with seqeval (BIO tags) and nervaluate (strict/partial counts), and where nervaluate is wrong."""

from __future__ import annotations

import random

import pytest

from ade_distill.evaluation import micro_prf
from ade_distill.evaluation.matching import match_entities
from ade_distill.evaluation.tags import bio_tags, seqeval_scores, tokenize
from ade_distill.records import Example, Span

from .helpers import ex, off

WORDS = "the patient on cisplatin had acute renal failure , ototoxicity and rash after 5 mg of drug - x".split()


def _random_docs(rng: random.Random, n: int, prefix: str, base: list[Example] | None = None) -> list[Example]:
    """Token-aligned, non-overlapping random spans (the domain where BIO can represent every span)."""
    docs = []
    for i in range(n):
        text = base[i].text if base else " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 15)))
        toks = tokenize(text)
        spans, j, k = [], 0, 0
        while j < len(toks):
            if rng.random() < 0.3:
                ln = rng.randrange(1, 4)
                a, b = toks[j][0], toks[min(j + ln, len(toks)) - 1][1]
                spans.append(off(f"{prefix}{k}", text, a, b, rng.choice(["DRUG", "ADE"])))
                k += 1
                j += ln
            else:
                j += 1
        docs.append(ex(str(i), text, spans))
    return docs


def test_bio_tags_tokenization():
    text = "azithromycin-induced ototoxicity"
    e = ex("1", text, [off("T1", text, 0, 12, "DRUG"), off("T2", text, 21, 32, "ADE")])
    assert bio_tags(e) == (["B-DRUG", "O", "O", "B-ADE"], 0)
    overlapping = ex("1", text, [off("T1", text, 0, 20, "ADE"), off("T2", text, 0, 12, "DRUG")])
    assert bio_tags(overlapping) == (["B-ADE", "I-ADE", "I-ADE", "O"], 1)  # longest kept, one dropped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seqeval_agrees_with_strict_spans(seed):
    rng = random.Random(seed)
    gold = _random_docs(rng, 60, "G")
    # Predictions: perturb gold (drop, relabel, shift) plus random extra spans.
    pred = _random_docs(rng, 60, "P", base=gold)
    mixed = []
    for g, p in zip(gold, pred, strict=True):
        keep = [s for s in g.spans if rng.random() < 0.6]
        ids = {s.id for s in keep}
        extra = [s for s in p.spans if not any(s.start < k.end and k.start < s.end for k in keep)]
        spans = keep + [s.model_copy(update={"id": "X" + s.id}) for s in extra if "X" + s.id not in ids]
        mixed.append(Example(id=g.id, text=g.text, spans=tuple(spans)))
    sq = seqeval_scores(gold, mixed)
    assert sq.dropped_gold == sq.dropped_pred == 0
    ours = micro_prf(gold, mixed, mode="strict", level="entity")
    assert (sq.precision, sq.recall, sq.f1) == pytest.approx(ours)
    for label in ("DRUG", "ADE"):
        g_l = [e.model_copy(update={"spans": tuple(s for s in e.spans if s.label == label)}) for e in gold]
        p_l = [e.model_copy(update={"spans": tuple(s for s in e.spans if s.label == label)}) for e in mixed]
        assert sq.per_label[label][:3] == pytest.approx(micro_prf(g_l, p_l, "strict", "entity"))


# -- nervaluate -------------------------------------------------------------------------------------------
nervaluate = pytest.importorskip("nervaluate")


def _nerv(gold: list[Span], pred: list[Span]):
    def conv(spans):  # nervaluate uses inclusive ends
        return [[{"label": s.label, "start": s.start, "end": s.end - 1} for s in spans]]

    res = nervaluate.Evaluator(conv(gold), conv(pred), tags=["DRUG", "ADE"], loader="dict").evaluate()
    return res["overall"]["strict"], res["overall"]["partial"]


def _ours(gold: list[Span], pred: list[Span], mode: str):
    return match_entities(gold, pred, mode).counts.micro()


def test_nervaluate_agreement_on_clean_cases():
    """Where each prediction overlaps at most one gold span and vice versa, counts agree exactly:
    strict correct = our strict TP, strict actual/possible = our TP+FP / TP+FN; partial correct+partial = our
    lenient TP (single label) and partial spurious/missed = our lenient FP/FN."""
    text = "x" * 100
    rng = random.Random(3)
    for _ in range(100):
        gold, pred = [], []
        pos = 0
        for i in range(rng.randrange(0, 6)):
            a = pos + rng.randrange(1, 4)
            b = a + rng.randrange(2, 6)
            pos = b + 6
            gold.append(off(f"G{i}", text, a, b, "ADE"))
            r = rng.random()
            if r < 0.3:
                pred.append(off(f"P{i}", text, a, b, "ADE"))  # exact
            elif r < 0.6:
                pred.append(off(f"P{i}", text, a + 1, b + 1, "ADE"))  # partial overlap
            elif r < 0.8:
                pred.append(off(f"P{i}", text, b + 2, b + 4, "ADE"))  # spurious (in the gap)
        strict, partial = _nerv(gold, pred)
        tp, fp, fn = _ours(gold, pred, "strict")
        assert (strict.correct, strict.actual, strict.possible) == (tp, tp + fp, tp + fn)
        tp, fp, fn = _ours(gold, pred, "lenient")
        assert partial.correct + partial.partial == tp
        assert (partial.spurious, partial.missed) == (fp, fn)


def test_nervaluate_disagreement_order_dependence():
    """nervaluate's strict mode lets an earlier overlapping prediction claim a gold span ('incorrect'), so an
    exact prediction that comes later finds it taken: the same predictions score 0 or 1 correct by order."""
    text = "x" * 20
    g = [off("G", text, 0, 4, "DRUG")]
    near, exact = off("P1", text, 0, 2, "DRUG"), off("P2", text, 0, 4, "DRUG")
    s1, _ = _nerv(g, [near, exact])
    s2, _ = _nerv(g, [exact, near])
    assert (s1.correct, s2.correct) == (0, 1)  # nervaluate: order-dependent
    assert _ours(g, [near, exact], "strict") == _ours(g, [exact, near], "strict") == (1, 1, 0)


def test_nervaluate_disagreement_greedy_partial():
    """nervaluate's partial matching is first-come greedy: P1 (overlapping G1 and G2) takes G1, so P2 (which
    overlaps only G1) is 'spurious' and G2 'missed'. Maximum matching pairs P1–G2 and P2–G1."""
    text = "aaaa bbbb cccc"
    g = [off("G1", text, 0, 4, "ADE"), off("G2", text, 5, 9, "ADE")]
    p = [off("P1", text, 2, 7, "ADE"), off("P2", text, 0, 2, "ADE")]
    _, partial = _nerv(g, p)
    assert (partial.partial, partial.spurious, partial.missed) == (1, 1, 1)
    assert _ours(g, p, "lenient") == (2, 0, 0)
