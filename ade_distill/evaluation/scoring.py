"""The library entry point: score several systems against one gold set (modes × levels, CIs, paired tests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ade_distill.errors import ConfigError
from ade_distill.evaluation.bootstrap import (
    PairedResult,
    ci_from_samples,
    paired_test,
    resample_weights,
    sample_counts,
)
from ade_distill.evaluation.errors_analysis import analyze_errors
from ade_distill.evaluation.matching import ADE_MODES, LEVELS, MODES, has_concepts
from ade_distill.evaluation.metrics import PerExampleCounts, count_matrix, pair_by_id, prf
from ade_distill.evaluation.report import LevelScores, Score, ScoreReport
from ade_distill.records import Example

__all__ = ["score_systems", "write_report_dir", "resolve_modes", "check_mode_level"]

log = logging.getLogger(__name__)


def check_mode_level(mode: str, level: str, gold: Sequence[Example]) -> None:
    """Raise :class:`ConfigError` for an unknown mode/level, or ``concept`` on gold without concept ids."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; expected one of {list(MODES)} (or 'all' on the CLI)")
    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r}; expected one of {list(LEVELS)}")
    if mode == "concept" and not has_concepts(gold):
        raise ConfigError(
            "mode 'concept' needs gold with concept ids (span meta['concepts'], relation meta['head_concept']/"
            "['tail_concept'], as in BC5CDR); this gold has none — use strict, boundaries, lenient or text"
        )


def resolve_modes(mode: str | Sequence[str], gold: Sequence[Example]) -> tuple[str, ...]:
    """Modes in the order given (repeated or comma-separated), duplicates removed; ``all`` → the four ADE modes,
    plus ``concept`` when gold carries concept ids."""
    names = [mode] if isinstance(mode, str) else list(mode)
    out: list[str] = []
    for name in (n.strip() for item in names for n in item.split(",")):
        if not name:
            continue
        expanded = ((*ADE_MODES, "concept") if has_concepts(gold) else ADE_MODES) if name == "all" else (name,)
        for m in expanded:
            check_mode_level(m, "entity", gold)
            if m not in out:
                out.append(m)
    return tuple(out)


def score_systems(
    gold: Sequence[Example],
    systems: Mapping[str, Sequence[Example]],
    *,
    modes: Sequence[str] = ADE_MODES,
    levels: Sequence[str] = LEVELS,
    n_boot: int = 1000,
    seed: int = 0,
    missing_as_empty: bool = False,
    error_examples: int = 5,
) -> ScoreReport:
    """Score each system against ``gold`` in every mode and level, with bootstrap CIs and paired tests.

    Predictions are paired with gold by example id (see :func:`ade_distill.evaluation.metrics.pair_by_id`). For each
    system × mode × level: micro and per-label tp/fp/fn, P/R/F1 and 95 % percentile bootstrap CIs (examples
    resampled with replacement, ``n_boot`` samples, seeded). Every pair of systems gets a paired bootstrap
    test of micro F1 per mode and level, on the same samples. Deterministic for a given ``seed``.

    Raises:
        ConfigError: no system, an unknown mode/level, ``concept`` without gold concepts, ``n_boot < 0``.
        DataError: predictions for ids absent from gold, texts that differ, missing ids (unless
            ``missing_as_empty``), duplicate ids.
    """
    if not systems:
        raise ConfigError("no system to score: give at least one prediction set")
    if n_boot < 0:
        raise ConfigError(f"n_boot must be >= 0, got {n_boot}")
    modes = tuple(modes)
    levels = tuple(levels)
    for m in modes:
        for lv in levels:
            check_mode_level(m, lv, gold)
    names = tuple(systems)
    gold_ids = {g.id for g in gold}
    aligned = {}
    missing: dict[str, int] = {}
    for name in names:
        aligned[name] = pair_by_id(gold, systems[name], missing_as_empty=missing_as_empty, name=name)
        n_missing = sum(1 for p in systems[name] if p.id in gold_ids)
        if n_missing != len(gold):
            missing[name] = len(gold) - n_missing
            log.warning("%s: %d gold ids without prediction scored as empty", name, missing[name])
    weights = resample_weights(len(gold), n_boot, seed) if n_boot and gold else None  # no examples: nothing to resample
    results: dict[str, dict[str, dict[str, LevelScores]]] = {s: {m: {} for m in modes} for s in names}
    paired: list[PairedResult] = []
    for m in modes:
        for lv in levels:
            mats = {s: count_matrix(gold, aligned[s], m, lv) for s in names}
            labels = sorted({lab for pc in mats.values() for lab in pc.labels})
            mats = {s: count_matrix_relabel(pc, labels) for s, pc in mats.items()}
            for s in names:
                results[s][m][lv] = _level_scores(mats[s].counts, labels, weights)
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    if weights is None:
                        continue
                    paired.append(paired_test(mats[a].micro, mats[b].micro, weights, names=(a, b), mode=m, level=lv))
    errors = {s: analyze_errors(gold, aligned[s], s, error_examples) for s in names}
    return ScoreReport(names, modes, levels, len(gold), n_boot, seed, results, paired, errors, missing)


def count_matrix_relabel(pc: PerExampleCounts, labels: Sequence[str]) -> PerExampleCounts:
    """The same counts on a shared label axis (zeros for labels this system never met)."""
    if tuple(labels) == pc.labels:
        return pc
    arr = np.zeros((pc.counts.shape[0], len(labels), 3), dtype=np.int64)
    index = {lab: k for k, lab in enumerate(labels)}
    for k, lab in enumerate(pc.labels):
        arr[:, index[lab]] = pc.counts[:, k]
    return PerExampleCounts(tuple(labels), arr)


def _score(tot: np.ndarray, ci: dict | None, k: int | None) -> Score:
    tp, fp, fn = (int(x) for x in tot)
    p, r, f = prf(tp, fp, fn)
    if ci is None:
        return Score(tp, fp, fn, p, r, f)

    def get(name: str) -> tuple[float, float]:
        lo, hi = ci[name]
        return (float(lo), float(hi)) if k is None else (float(lo[k]), float(hi[k]))

    return Score(tp, fp, fn, p, r, f, get("precision"), get("recall"), get("f1"))


def _level_scores(counts: np.ndarray, labels: Sequence[str], weights: np.ndarray | None) -> LevelScores:
    micro = counts.sum(axis=1)
    ci_micro = ci_lab = None
    if weights is not None:
        samples = sample_counts(weights, counts)  # (B, labels, 3): one matrix product per system × mode × level
        ci_micro = ci_from_samples(samples.sum(axis=1))
        ci_lab = ci_from_samples(samples) if labels else None
    tot = counts.sum(axis=0)
    per = {lab: _score(tot[k], ci_lab, k) for k, lab in enumerate(labels)}
    return LevelScores(_score(micro.sum(axis=0), ci_micro, None), per)


def write_report_dir(report: ScoreReport, out_dir: str | Path) -> list[Path]:
    """Write ``results.json`` (with the code that made it: ``software``), ``report.md``, ``errors.md`` and
    ``errors.json`` into ``out_dir``; return paths."""
    from ade_distill.provenance import software_provenance

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "results.json": json.dumps({**report.to_dict(), "software": software_provenance()}, indent=2,
                                   ensure_ascii=False) + "\n",
        "report.md": report.to_markdown(),
        "errors.md": report.errors_markdown(),
        "errors.json": json.dumps(report.errors_dict(), indent=2, ensure_ascii=False) + "\n",
    }
    paths = []
    for name, content in files.items():
        p = out / name
        p.write_text(content, encoding="utf-8")
        paths.append(p)
    return paths
