"""Aggregate per-fold results of a reproduction run (pure functions on score dictionaries).

Two views of "over the folds", both reported:

* **pooled** — the test predictions of all folds concatenated and scored once against the gold (every example
  is in exactly one test fold), with a 95% bootstrap CI over examples and a paired bootstrap test;
* **fold mean** — the mean of the per-fold F1 with a 95% Student-t interval over folds, and a paired t-test of
  the per-fold differences between two systems.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def micro_scores(scores: Mapping[str, Any], system: str, mode: str, level: str = "relation") -> dict[str, float]:
    """The micro scores of one system/mode/level from a ScoreReport dictionary."""
    return dict(scores["results"][system][mode][level]["micro"])


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, standard deviation and the two-sided Student-t confidence interval of the mean."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def paired_t(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired t-test of per-fold values ``a - b``: mean difference, its 95% t-interval and two-sided p."""
    from scipy import stats

    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean, sd, lo, hi = t_interval(diffs)
    if len(diffs) < 2 or sd <= 1e-12:
        p = 1.0 if mean == 0.0 else (0.0 if len(diffs) >= 2 else math.nan)
    else:
        p = float(stats.ttest_rel(a, b).pvalue)
    return {"delta_mean": mean, "delta_sd": sd, "ci_low": lo, "ci_high": hi, "p_value": p, "n_folds": len(diffs)}


def fold_means(
    fold_scores: Sequence[Mapping[str, Any]], systems: Sequence[str], modes: Sequence[str], level: str = "relation"
) -> dict[str, dict[str, dict[str, float]]]:
    """Per system and mode: mean/sd/t-CI over folds of precision, recall and F1."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for s in systems:
        out[s] = {}
        for m in modes:
            row: dict[str, float] = {}
            for metric in ("precision", "recall", "f1"):
                vals = [micro_scores(fs, s, m, level)[metric] for fs in fold_scores]
                mean, sd, lo, hi = t_interval(vals)
                row.update({metric: mean, f"{metric}_sd": sd, f"{metric}_ci_low": lo, f"{metric}_ci_high": hi})
            row["per_fold_f1"] = [micro_scores(fs, s, m, level)["f1"] for fs in fold_scores]  # type: ignore[assignment]
            out[s][m] = row
    return out


def fold_paired(
    fold_scores: Sequence[Mapping[str, Any]], a: str, b: str, modes: Sequence[str], level: str = "relation"
) -> dict[str, dict[str, float]]:
    """Per mode: paired t-test over folds of system ``a`` minus system ``b`` (relation F1)."""
    return {
        m: paired_t([micro_scores(fs, a, m, level)["f1"] for fs in fold_scores],
                    [micro_scores(fs, b, m, level)["f1"] for fs in fold_scores])
        for m in modes
    }


def pooled_paired(scores: Mapping[str, Any], a: str, b: str, level: str = "relation") -> dict[str, dict[str, float]]:
    """Per mode: the paired bootstrap result of ``a`` vs ``b`` from a ScoreReport dictionary (sign: a - b)."""
    out: dict[str, dict[str, float]] = {}
    for row in scores.get("paired", []):
        if row["level"] != level:
            continue
        if row["system_a"] == a and row["system_b"] == b:
            out[row["mode"]] = {k: row[k] for k in ("delta_f1", "ci_low", "ci_high", "p_value")}
        elif row["system_a"] == b and row["system_b"] == a:
            out[row["mode"]] = {"delta_f1": -row["delta_f1"], "ci_low": -row["ci_high"],
                                "ci_high": -row["ci_low"], "p_value": row["p_value"]}
    return out
