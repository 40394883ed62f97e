"""ScoreReport: the result of :func:`ade_distill.evaluation.score_systems` — JSON, markdown and rich tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ade_distill.evaluation.bootstrap import PairedResult
from ade_distill.evaluation.errors_analysis import ErrorAnalysis

__all__ = ["Score", "LevelScores", "ScoreReport"]


@dataclass(frozen=True)
class Score:
    """Counts, the scores derived from them, and bootstrap 95 % CIs (None when ``n_boot == 0``)."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    precision_ci: tuple[float, float] | None = None
    recall_ci: tuple[float, float] | None = None
    f1_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                             "precision": self.precision, "recall": self.recall, "f1": self.f1}
        for name in ("precision", "recall", "f1"):
            ci = getattr(self, f"{name}_ci")
            d[f"{name}_ci_low"] = None if ci is None else ci[0]
            d[f"{name}_ci_high"] = None if ci is None else ci[1]
        return d


@dataclass(frozen=True)
class LevelScores:
    """Micro scores and per-label scores of one system × mode × level."""

    micro: Score
    per_label: dict[str, Score]

    def to_dict(self) -> dict[str, Any]:
        return {"micro": self.micro.to_dict(), "per_label": {k: v.to_dict() for k, v in self.per_label.items()}}


def _fmt(v: float, ci: tuple[float, float] | None) -> str:
    return f"{v:.3f}" if ci is None else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


@dataclass
class ScoreReport:
    """Everything :func:`score_systems` computed.

    ``results[system][mode][level]`` is a :class:`LevelScores`; ``paired`` holds one :class:`PairedResult`
    per pair of systems, mode and level; ``errors[system]`` the error analysis (strict categories).
    """

    systems: tuple[str, ...]
    modes: tuple[str, ...]
    levels: tuple[str, ...]
    n_examples: int
    n_boot: int
    seed: int
    results: dict[str, dict[str, dict[str, LevelScores]]]
    paired: list[PairedResult] = field(default_factory=list)
    errors: dict[str, ErrorAnalysis] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    # -- serialization -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (plain floats, ints, strings, lists, dicts)."""
        return {
            "systems": list(self.systems),
            "modes": list(self.modes),
            "levels": list(self.levels),
            "n_examples": self.n_examples,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "ci": "95% percentile bootstrap over examples" if self.n_boot else None,
            "missing_predictions_scored_empty": dict(self.missing),
            "results": {
                s: {m: {lv: ls.to_dict() for lv, ls in by_l.items()} for m, by_l in by_m.items()}
                for s, by_m in self.results.items()
            },
            "paired": [p.to_dict() for p in self.paired],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def rows(self) -> list[tuple[str, str, str, Score]]:
        return [(s, m, lv, self.results[s][m][lv].micro)
                for s in self.systems for m in self.modes for lv in self.levels]

    def to_markdown(self, per_label: bool = True) -> str:
        ci = f"95% bootstrap CI, {self.n_boot} samples, seed {self.seed}" if self.n_boot else "no CIs"
        out = [f"# Scores ({self.n_examples} examples; {ci})", "",
               "| system | mode | level | P | R | F1 | TP | FP | FN |", "|---|---|---|---|---|---|---:|---:|---:|"]
        for s, m, lv, sc in self.rows():
            out.append(f"| {s} | {m} | {lv} | {_fmt(sc.precision, sc.precision_ci)} | "
                       f"{_fmt(sc.recall, sc.recall_ci)} | {_fmt(sc.f1, sc.f1_ci)} | {sc.tp} | {sc.fp} | {sc.fn} |")
        if per_label:
            out += ["", "## Per label", "", "| system | mode | level | label | P | R | F1 | TP | FP | FN |",
                    "|---|---|---|---|---|---|---|---:|---:|---:|"]
            for s in self.systems:
                for m in self.modes:
                    for lv in self.levels:
                        for lab, sc in self.results[s][m][lv].per_label.items():
                            out.append(f"| {s} | {m} | {lv} | {lab} | {_fmt(sc.precision, sc.precision_ci)} | "
                                       f"{_fmt(sc.recall, sc.recall_ci)} | {_fmt(sc.f1, sc.f1_ci)} | "
                                       f"{sc.tp} | {sc.fp} | {sc.fn} |")
        if self.paired:
            out += ["", "## Paired bootstrap tests (micro F1)", "",
                    "| A | B | mode | level | F1 A | F1 B | ΔF1 (A−B) | 95% CI of Δ | p |",
                    "|---|---|---|---|---:|---:|---:|---|---:|"]
            for p in self.paired:
                out.append(f"| {p.system_a} | {p.system_b} | {p.mode} | {p.level} | {p.f1_a:.3f} | {p.f1_b:.3f} | "
                           f"{p.delta_f1:+.3f} | [{p.ci_low:+.3f}, {p.ci_high:+.3f}] | {p.p_value:.4f} |")
        if self.missing:
            out += ["", "Gold ids without prediction scored as empty: "
                    + ", ".join(f"{k}: {v}" for k, v in self.missing.items())]
        return "\n".join(out) + "\n"

    def errors_markdown(self) -> str:
        return "\n".join(e.to_markdown() for e in self.errors.values()) + "\n"

    def errors_dict(self) -> dict[str, Any]:
        return {name: e.to_dict() for name, e in self.errors.items()}

    # -- rich ---------------------------------------------------------------------------------------------
    def rich_tables(self) -> list[Any]:
        """Rich tables: systems × modes × levels with P/R/F1 and CIs, then the paired tests."""
        from rich.table import Table

        ci = f"95% bootstrap CI, {self.n_boot} samples, seed {self.seed}" if self.n_boot else "no CIs"
        t = Table(title=f"Scores on {self.n_examples} examples ({ci})")
        for col in ("system", "mode", "level", "P", "R", "F1"):
            t.add_column(col)
        for col in ("TP", "FP", "FN"):
            t.add_column(col, justify="right")
        for s, m, lv, sc in self.rows():
            t.add_row(s, m, lv, _fmt(sc.precision, sc.precision_ci), _fmt(sc.recall, sc.recall_ci),
                      _fmt(sc.f1, sc.f1_ci), str(sc.tp), str(sc.fp), str(sc.fn))
        tables = [t]
        if self.paired:
            pt = Table(title="Paired bootstrap tests (micro F1)")
            for col in ("A", "B", "mode", "level", "ΔF1 (A−B)", "95% CI", "p"):
                pt.add_column(col)
            for p in self.paired:
                pt.add_row(p.system_a, p.system_b, p.mode, p.level, f"{p.delta_f1:+.3f}",
                           f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}]", f"{p.p_value:.4f}")
            tables.append(pt)
        return tables
