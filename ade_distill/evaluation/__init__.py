"""Evaluation stage: score any system against gold examples (strict, boundaries, lenient, text, concept).

Library entry points:

* :func:`micro_prf` — one system, one mode, one level: micro precision, recall, F1 (e.g. for early stopping);
* :func:`score_systems` — several systems × modes × levels with bootstrap CIs and paired tests → ScoreReport;
* :func:`write_report_dir` — results.json, report.md, errors.md and errors.json in a folder.

Matching rules are documented in :mod:`ade_distill.evaluation.matching`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ade_distill.records import Example

__all__ = ["micro_prf", "score_systems", "write_report_dir", "ScoreReport"]


def micro_prf(
    gold: Sequence[Example],
    pred: Sequence[Example],
    mode: str = "strict",
    level: str = "relation",
    *,
    missing_as_empty: bool = False,
) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of ``pred`` against ``gold`` over all examples, paired by example id.

    Args:
        gold: gold examples (unique ids).
        pred: predictions, one per gold id (any order), with the same texts as gold.
        mode: ``strict``, ``boundaries``, ``lenient``, ``text`` or ``concept``.
        level: ``entity`` or ``relation``.
        missing_as_empty: score a gold id without prediction as an empty prediction instead of raising.

    Raises:
        DataError: ids absent from gold, text mismatches, missing predictions (see :func:`metrics.pair_by_id`).
        ConfigError: unknown mode or level, or ``concept`` mode on gold without concept ids.
    """
    from ade_distill.evaluation.metrics import count_matrix, pair_by_id, prf
    from ade_distill.evaluation.scoring import check_mode_level

    check_mode_level(mode, level, gold)
    aligned = pair_by_id(gold, pred, missing_as_empty=missing_as_empty)
    tp, fp, fn = (int(x) for x in count_matrix(gold, aligned, mode, level).micro.sum(axis=0))
    return prf(tp, fp, fn)


def __getattr__(name: str):  # lazy: keep `import ade_distill.evaluation` light
    if name in ("score_systems", "write_report_dir"):
        from ade_distill.evaluation import scoring

        return getattr(scoring, name)
    if name == "ScoreReport":
        from ade_distill.evaluation.report import ScoreReport

        return ScoreReport
    raise AttributeError(name)
