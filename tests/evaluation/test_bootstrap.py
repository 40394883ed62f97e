"""Bootstrap CIs and the paired test: determinism, coverage of the point estimate, sanity of p-values."""

from __future__ import annotations

import numpy as np
import pytest

from ade_distill.evaluation import score_systems
from ade_distill.evaluation.bootstrap import bootstrap_prf, naive_bootstrap_prf, paired_test, resample_weights
from ade_distill.evaluation.metrics import prf

from .helpers import ex, span


def _counts(seed: int, n: int = 300, p_hit: float = 0.7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n)
    tp = rng.binomial(gold, p_hit)
    fp = rng.integers(0, 2, n)
    return np.stack([tp, fp, gold - tp], axis=1)


def test_weights_are_a_resample():
    w = resample_weights(50, 20, seed=3)
    assert w.shape == (20, 50) and (w.sum(axis=1) == 50).all()
    assert (resample_weights(50, 20, seed=3) == w).all()
    assert not (resample_weights(50, 20, seed=4) == w).all()


def test_vectorized_equals_naive_loop():
    c = _counts(0)
    fast = bootstrap_prf(c, resample_weights(len(c), 300, seed=5))
    slow = naive_bootstrap_prf(c, 300, seed=5)
    for k in ("precision", "recall", "f1"):
        assert np.allclose(fast[k], slow[k])


def test_ci_contains_point_estimate():
    c = _counts(1)
    ci = bootstrap_prf(c, resample_weights(len(c), 500, seed=0))
    point = prf(*c.sum(axis=0))
    for k, v in zip(("precision", "recall", "f1"), point, strict=True):
        lo, hi = ci[k]
        assert lo <= v <= hi and hi - lo < 0.2


def test_paired_identical_and_clearly_better():
    c = _counts(2)
    w = resample_weights(len(c), 1000, seed=0)
    same = paired_test(c, c.copy(), w)
    assert same.delta_f1 == 0.0 and same.p_value == pytest.approx(1.0)
    worse = c.copy()
    worse[:, 0] = c[:, 0] // 2  # half the true positives lost …
    worse[:, 2] = c[:, 2] + (c[:, 0] - worse[:, 0])  # … become misses
    res = paired_test(c, worse, w, names=("good", "bad"))
    assert res.delta_f1 > 0.1 and res.p_value < 0.01 and res.ci_low > 0


def test_score_systems_deterministic_by_seed():
    T = "Intravenous azithromycin-induced ototoxicity."
    gold = [ex(str(i), T, [span("T1", T, "azithromycin", "DRUG"), span("T2", T, "ototoxicity", "ADE")],
               [("T1", "T2")]) for i in range(40)]
    pred = [ex(str(i), T, [span("P1", T, "azithromycin", "DRUG"), span("P2", T, "ototoxicity", "ADE")],
               [("P1", "P2")] if i % 3 else []) for i in range(40)]
    a = score_systems(gold, {"a": pred, "gold": gold}, n_boot=200, seed=1).to_dict()
    b = score_systems(gold, {"a": pred, "gold": gold}, n_boot=200, seed=1).to_dict()
    c = score_systems(gold, {"a": pred, "gold": gold}, n_boot=200, seed=2).to_dict()
    assert a == b
    assert a != c
    rel = a["results"]["a"]["strict"]["relation"]
    assert rel["micro"]["tp"] == 26 and rel["micro"]["fn"] == 14
    assert rel["micro"]["f1_ci_low"] <= rel["micro"]["f1"] <= rel["micro"]["f1_ci_high"]
    assert set(rel["per_label"]) == {"ADE"}
    assert len(a["paired"]) == 4 * 2  # one pair × 4 modes × 2 levels
