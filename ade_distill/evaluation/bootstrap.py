"""Bootstrap confidence intervals and the paired bootstrap test, vectorized over per-example counts.

Resampling unit: the example (document or sentence) — the unit whose errors are correlated. A bootstrap sample
draws ``n`` examples with replacement; its micro counts are ``weights @ counts`` where ``weights[b, i]`` is how
often example ``i`` was drawn in sample ``b``. Every system scored against the same gold uses the *same*
samples (same seed → same weights), which is what makes the paired test paired.

* CIs: percentile intervals (2.5 %, 97.5 % by default) of P, R and F1 over the samples.
* Paired test: ``delta = F1(A) - F1(B)`` on the full data; ``delta_b`` on each sample. Two-sided p-value of the
  null "no difference", from the bootstrap distribution shifted to the null (Efron & Tibshirani 1993, §16.4;
  Berg-Kirkpatrick et al. 2012): ``p = (1 + #{b : |delta_b - delta| >= |delta|}) / (B + 1)``. Identical
  systems give ``p = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ade_distill.evaluation.metrics import prf_arrays

__all__ = ["resample_weights", "sample_counts", "ci_from_samples", "bootstrap_prf", "paired_test", "PairedResult", "naive_bootstrap_prf"]

_CHUNK = 128


def resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` matrix: how often each example is drawn in each bootstrap sample (seeded).

    Stored as float32, ready for the matrix product: sums of integer counts stay exact below 2**24.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, n), dtype=np.float32)
    if n == 0:
        return out
    for lo in range(0, n_boot, _CHUNK):
        hi = min(n_boot, lo + _CHUNK)
        idx = rng.integers(0, n, size=(hi - lo, n))
        flat = idx + (np.arange(hi - lo)[:, None] * n)
        out[lo:hi] = np.bincount(flat.ravel(), minlength=(hi - lo) * n).reshape(hi - lo, n)
    return out


def sample_counts(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Counts of each bootstrap sample: ``weights (B, n) @ counts (n, ...)`` → ``(B, ...)``."""
    flat = counts.reshape(counts.shape[0], -1).astype(weights.dtype)
    if flat.shape[1] and flat.max(initial=0) * counts.shape[0] >= 2**24 and weights.dtype == np.float32:
        weights, flat = weights.astype(np.float64), flat.astype(np.float64)  # keep the sums exact
    out = weights @ flat
    return np.rint(out).astype(np.int64).reshape((weights.shape[0], *counts.shape[1:]))


def bootstrap_prf(
    counts: np.ndarray, weights: np.ndarray, alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of precision, recall and F1 for per-example counts.

    Args:
        counts: ``(n, 3)`` per-example (tp, fp, fn), or ``(n, k, 3)`` for ``k`` labels at once.
        weights: from :func:`resample_weights`.
        alpha: 0.05 for 95 % intervals.

    Returns:
        ``{"precision": (lo, hi), "recall": ..., "f1": ...}``; with ``k`` labels each bound is an array of ``k``.
    """
    return ci_from_samples(sample_counts(weights, counts), alpha)


def ci_from_samples(s: np.ndarray, alpha: float = 0.05) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentile CIs of P, R, F1 from bootstrap-sample counts ``(B, ..., 3)``."""
    p, r, f = prf_arrays(s[..., 0], s[..., 1], s[..., 2])
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    out = {}
    for name, v in (("precision", p), ("recall", r), ("f1", f)):
        lo, hi = np.percentile(v, q, axis=0)
        out[name] = (lo, hi)
    return out


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap comparison of two systems on the same gold, same mode and level."""

    system_a: str
    system_b: str
    mode: str
    level: str
    f1_a: float
    f1_b: float
    delta_f1: float  # F1(A) - F1(B)
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def paired_test(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    weights: np.ndarray,
    *,
    names: tuple[str, str] = ("A", "B"),
    mode: str = "",
    level: str = "",
    alpha: float = 0.05,
) -> PairedResult:
    """Paired bootstrap test of micro F1 for two systems' ``(n, 3)`` per-example counts on the same examples."""
    fa = prf_arrays(*counts_a.sum(axis=0))[2]
    fb = prf_arrays(*counts_b.sum(axis=0))[2]
    delta = float(fa - fb)
    sa = sample_counts(weights, counts_a)
    sb = sample_counts(weights, counts_b)
    da = prf_arrays(sa[:, 0], sa[:, 1], sa[:, 2])[2]
    db = prf_arrays(sb[:, 0], sb[:, 1], sb[:, 2])[2]
    d = da - db
    n_boot = weights.shape[0]
    # Tolerance: identical systems give exactly 0 differences; float noise must not turn >= into <.
    extreme = np.abs(d - delta) >= abs(delta) - 1e-12
    p = (1 + int(extreme.sum())) / (n_boot + 1)
    lo, hi = (np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if n_boot else (delta, delta))
    return PairedResult(names[0], names[1], mode, level, float(fa), float(fb), delta, float(lo), float(hi),
                        float(p), n_boot)


def naive_bootstrap_prf(counts: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05) -> dict[str, tuple]:
    """Reference implementation: one Python loop per sample and per drawn example (for tests and benchmarks).

    Draws the same indices as :func:`resample_weights` with the same seed, so results agree exactly.
    """
    rng = np.random.default_rng(seed)
    n = counts.shape[0]
    rows = counts.tolist()
    ps, rs, fs = [], [], []
    for lo in range(0, n_boot, _CHUNK):
        hi = min(n_boot, lo + _CHUNK)
        idx = rng.integers(0, n, size=(hi - lo, n)).tolist()
        for sample in idx:
            tp = fp = fn = 0
            for i in sample:
                a, b, c = rows[i]
                tp += a
                fp += b
                fn += c
            ps.append(tp / (tp + fp) if tp + fp else 0.0)
            rs.append(tp / (tp + fn) if tp + fn else 0.0)
            fs.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    return {k: tuple(np.percentile(v, q)) for k, v in (("precision", ps), ("recall", rs), ("f1", fs))}
