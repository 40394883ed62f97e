"""Benchmark: score a system on the full ADE corpus (positive + ADE-NEG sentences) with 1,000 bootstrap samples.

The system is the gold perturbed deterministically (a fifth of the relations dropped, a tenth of the spans
shortened by one character, so strict and lenient differ). Prints:

* the time of ``score_systems`` for strict, lenient and text modes × entity and relation levels, 1,000 samples
  (matching + CIs + error analysis);
* for the bootstrap alone on one mode/level (strict relations): the vectorized time and the time of a naive
  per-sample Python loop over the same per-example counts and the same draws, and their ratio.

Run: ``python benchmarks/bench_scoring.py``
"""

from __future__ import annotations

import random
import time

import numpy as np

from ade_distill.data.corpora import load_corpus
from ade_distill.evaluation import score_systems
from ade_distill.evaluation.bootstrap import bootstrap_prf, naive_bootstrap_prf, resample_weights
from ade_distill.evaluation.metrics import count_matrix, pair_by_id
from ade_distill.records import Example, Span

N_BOOT = 1000


def perturb(gold: list[Example], seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for e in gold:
        spans = []
        for s in e.spans:
            if rng.random() < 0.1 and s.end - s.start > 1:
                spans.append(Span(id=s.id, label=s.label, start=s.start, end=s.end - 1, text=e.text[s.start:s.end - 1]))
            else:
                spans.append(s)
        rels = tuple(r for r in e.relations if rng.random() >= 0.2)
        out.append(Example(id=e.id, text=e.text, spans=tuple(spans), relations=rels))
    return out


def main() -> None:
    gold = load_corpus("ade")
    pred = perturb(gold)
    print(f"ADE corpus: {len(gold):,} examples, {sum(len(e.relations) for e in gold):,} gold relations")

    t0 = time.perf_counter()
    rep = score_systems(gold, {"perturbed": pred}, modes=("strict", "lenient", "text"), n_boot=N_BOOT, seed=0)
    t_all = time.perf_counter() - t0
    for m in rep.modes:
        sc = rep.results["perturbed"][m]["relation"].micro
        print(f"  {m:8s} relation F1 {sc.f1:.3f} [{sc.f1_ci[0]:.3f}, {sc.f1_ci[1]:.3f}]")
    print(f"score_systems (3 modes x 2 levels, {N_BOOT} bootstrap samples, error analysis): {t_all:.2f} s")

    counts = count_matrix(gold, pair_by_id(gold, pred), "strict", "relation").micro
    t0 = time.perf_counter()
    w = resample_weights(len(gold), N_BOOT, seed=0)
    fast = bootstrap_prf(counts, w)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = naive_bootstrap_prf(counts, N_BOOT, seed=0)
    t_slow = time.perf_counter() - t0
    assert all(np.allclose(fast[k], slow[k]) for k in fast), "vectorized and naive CIs differ"
    print(f"bootstrap CIs, strict relations, {N_BOOT} samples x {len(gold):,} examples:")
    print(f"  vectorized (numpy)        {t_fast:8.3f} s")
    print(f"  naive per-sample loop     {t_slow:8.3f} s")
    print(f"  ratio naive / vectorized  {t_slow / t_fast:8.1f}x (identical intervals)")


if __name__ == "__main__":
    main()
