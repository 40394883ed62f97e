"""Counts → precision, recall, F1; and the pairing of predictions with gold examples by id.

Scores are always computed from summed counts (micro: sum over examples and labels, then divide once). An
undefined ratio (no prediction, or no gold item) is 0.0, as in seqeval and the CoNLL script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ade_distill.errors import DataError
from ade_distill.evaluation.matching import LabelCounts, match_example
from ade_distill.records import Example

__all__ = ["prf", "prf_arrays", "PerExampleCounts", "pair_by_id", "count_matrix", "MAX_LISTED"]

MAX_LISTED = 10


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0.0 where a denominator is zero)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return p, r, f


def prf_arrays(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized :func:`prf` over arrays of counts (same shapes)."""
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = np.asarray(fn, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return p, r, f


def _listing(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:MAX_LISTED])
    more = f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else ""
    return f"{len(ids)} id(s): {shown}{more}"


def pair_by_id(
    gold: Sequence[Example],
    pred: Sequence[Example],
    *,
    missing_as_empty: bool = False,
    name: str = "predictions",
) -> list[Example]:
    """Return the predictions in gold order, paired by example id.

    Raises:
        DataError: duplicate ids in gold or predictions; predictions for ids absent from gold; predictions
            whose text differs from gold's; gold ids without a prediction unless ``missing_as_empty`` (then an
            empty prediction — no spans, no relations — stands for each). Each message lists the first ten
            offending ids and their count.
    """
    gold_ids = [g.id for g in gold]
    if len(set(gold_ids)) != len(gold_ids):
        dup = sorted({i for i in gold_ids if gold_ids.count(i) > 1}) if len(gold_ids) < 50_000 else []
        raise DataError(f"gold has duplicate example ids: {_listing(dup)}")
    by_id: dict[str, Example] = {}
    dups: list[str] = []
    for p in pred:
        if p.id in by_id:
            dups.append(p.id)
        by_id[p.id] = p
    if dups:
        raise DataError(f"{name}: duplicate example ids: {_listing(dups)}")
    gold_set = set(gold_ids)
    extra = [i for i in by_id if i not in gold_set]
    if extra:
        raise DataError(f"{name}: predictions for ids that are not in gold: {_listing(extra)}")
    mismatch = [g.id for g in gold if g.id in by_id and by_id[g.id].text != g.text]
    if mismatch:
        raise DataError(f"{name}: text differs from gold's for {_listing(mismatch)}")
    missing = [g.id for g in gold if g.id not in by_id]
    if missing and not missing_as_empty:
        raise DataError(
            f"{name}: no prediction for {_listing(missing)} (use --missing-as-empty / missing_as_empty=True "
            f"to score them as empty predictions)"
        )
    return [by_id[g.id] if g.id in by_id else Example(id=g.id, text=g.text, meta={"missing": True}) for g in gold]


@dataclass
class PerExampleCounts:
    """Counts of one system, one mode and one level, per example and per label.

    ``counts[i, k]`` holds ``(tp, fp, fn)`` of example ``i`` and label ``labels[k]``; micro counts of example
    ``i`` are ``counts[i].sum(axis=0)``. This is what the bootstrap resamples.
    """

    labels: tuple[str, ...]
    counts: np.ndarray  # (n_examples, n_labels, 3) int64

    @property
    def micro(self) -> np.ndarray:
        """(n_examples, 3) micro counts per example."""
        return self.counts.sum(axis=1)

    def totals(self) -> LabelCounts:
        tot = self.counts.sum(axis=0)
        lc = LabelCounts()
        for k, lab in enumerate(self.labels):
            lc.tp[lab], lc.fp[lab], lc.fn[lab] = (int(x) for x in tot[k])
        return lc


def count_matrix(
    gold: Sequence[Example], aligned_pred: Sequence[Example], mode: str, level: str,
    labels: Sequence[str] = (),
) -> PerExampleCounts:
    """Match every (gold, prediction) pair and return the per-example, per-label counts.

    ``aligned_pred`` must be in gold order (see :func:`pair_by_id`). ``labels`` fixes (and orders) the label axis;
    labels met in the data are appended in sorted order.
    """
    empty = LabelCounts()
    per = [
        empty if (mode != "concept" and not (g.spans or p.spans or g.relations or p.relations))  # fast path
        else match_example(g, p, mode, level).counts
        for g, p in zip(gold, aligned_pred, strict=True)
    ]
    seen = set(labels)
    extra = sorted({lab for c in per for lab in c.labels()} - seen)
    labs = tuple(labels) + tuple(extra)
    index = {lab: k for k, lab in enumerate(labs)}
    arr = np.zeros((len(per), len(labs), 3), dtype=np.int64)
    for i, c in enumerate(per):
        for j, cnt in enumerate((c.tp, c.fp, c.fn)):
            for lab, v in cnt.items():
                arr[i, index[lab], j] = v
    return PerExampleCounts(labs, arr)
