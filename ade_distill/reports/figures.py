"""Figures of a reproduction report (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, out: Path) -> Path:
    """Lay out, write as PNG (120 dpi) and close the figure; returns ``out``."""
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def f1_by_system(pooled: Mapping[str, Any], systems: Sequence[str], modes: Sequence[str], out: Path) -> Path:
    """Grouped bars: relation F1 per mode and system with 95% bootstrap CIs (pooled over folds)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.9 * len(modes) + 2.5, 3.8))
    width = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        xs, ys, lo, hi = [], [], [], []
        for j, m in enumerate(modes):
            r = pooled["results"][s][m]["relation"]["micro"]
            xs.append(j + (i - (len(systems) - 1) / 2) * width)
            ys.append(r["f1"])
            lo.append(r["f1"] - r["f1_ci_low"])
            hi.append(r["f1_ci_high"] - r["f1"])
        ax.bar(xs, ys, width * 0.95, yerr=[lo, hi], capsize=3, label=s)
    ax.set_xticks(range(len(modes)), list(modes))
    ax.set_ylabel("relation F1 (95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Relation F1 by system and matching mode")
    return _save(plt, fig, out)


def f1_vs_silver_size(curve: Sequence[Mapping[str, Any]], full_points: Sequence[Mapping[str, Any]],
                      teacher_f1: Mapping[str, float], out: Path) -> Path:
    """Student relation F1 (strict, lenient) against the number of silver training examples."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    rows = sorted([*curve, *full_points], key=lambda r: r["silver_examples"])
    for mode, style in (("strict", "o-"), ("lenient", "s--")):
        ax.plot([r["silver_examples"] for r in rows], [r[mode]["f1"] for r in rows], style, label=f"student ({mode})")
        if mode in teacher_f1:
            ax.axhline(teacher_f1[mode], color="grey", linestyle=":" if mode == "strict" else "-.", linewidth=1)
            ax.text(rows[0]["silver_examples"] if rows else 0, teacher_f1[mode], f" teacher {mode}", fontsize=7,
                    va="bottom", color="grey")
    ax.set_xlabel("silver training examples")
    ax.set_ylabel("relation F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Student F1 vs silver-set size")
    return _save(plt, fig, out)


def cost_and_speed(cost: Mapping[str, Any], out: Path) -> Path:
    """Two panels: dollars per 1,000 sentences (teacher vs student) and sentences per second."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4))
    names = list(cost["systems"])
    a1.bar(names, [cost["systems"][n].get("usd_per_1000", 0.0) or 0.0 for n in names], color="tab:red")
    a1.set_ylabel("USD per 1,000 sentences")
    a1.tick_params(axis="x", labelrotation=20, labelsize=7)
    a2.bar(names, [cost["systems"][n].get("sentences_per_second", 0.0) or 0.0 for n in names], color="tab:green")
    a2.set_ylabel("sentences / second")
    a2.set_yscale("log")
    a2.tick_params(axis="x", labelrotation=20, labelsize=7)
    fig.suptitle("Cost and speed: LLM teacher vs distilled student", fontsize=10)
    return _save(plt, fig, out)
