"""The human-readable report of a reproduction run (``reports/<name>/README.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ade_distill.provenance import describe


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal; "–" when missing (None) or undefined (NaN)."""
    return "–" if x is None or x != x else f"{100 * x:.1f}"


def _ci(row: Mapping[str, Any], metric: str = "f1") -> str:
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if lo is None or hi is None or lo != lo:
        return pct(row[metric])
    return f"{pct(row[metric])} [{pct(lo)}, {pct(hi)}]"


def pooled_table(pooled: Mapping[str, Any], systems: list[str], modes: list[str], level: str = "relation") -> str:
    head = "| system | " + " | ".join(f"{m} P | {m} R | {m} F1 [95% CI]" for m in modes) + " |"
    sep = "|---|" + "---|---|---|" * len(modes)
    lines = [head, sep]
    for s in systems:
        cells = []
        for m in modes:
            r = pooled["results"][s][m][level]["micro"]
            cells += [pct(r["precision"]), pct(r["recall"]), _ci(r)]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_mean_table(fm: Mapping[str, Any], systems: list[str], modes: list[str]) -> str:
    head = "| system | " + " | ".join(f"{m} F1 mean ± sd [95% t-CI]" for m in modes) + " |"
    lines = [head, "|---|" + "---|" * len(modes)]
    for s in systems:
        cells = []
        for m in modes:
            r = fm[s][m]
            cells.append(f"{pct(r['f1'])} ± {pct(r['f1_sd'])} [{pct(r['f1_ci_low'])}, {pct(r['f1_ci_high'])}]")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(comparisons: Mapping[str, Any], modes: list[str]) -> str:
    lines = ["| comparison | mode | ΔF1 pooled [95% CI] | p (paired bootstrap) | ΔF1 fold mean [95% t-CI] | p (paired t, folds) |",
             "|---|---|---|---|---|---|"]
    for name, comp in comparisons.items():
        for m in modes:
            pb = comp["pooled"].get(m)
            ft = comp["folds"].get(m)
            if pb is None:
                continue
            pooled = f"{100 * pb['delta_f1']:+.1f} [{100 * pb['ci_low']:+.1f}, {100 * pb['ci_high']:+.1f}]"
            if ft and ft.get("n_folds", 0) >= 2:
                folds = f"{100 * ft['delta_mean']:+.1f} [{100 * ft['ci_low']:+.1f}, {100 * ft['ci_high']:+.1f}]"
                fp = f"{ft['p_value']:.3g}"
            else:
                folds, fp = "–", "–"
            lines.append(f"| {name} | {m} | {pooled} | {pb['p_value']:.3g} | {folds} | {fp} |")
    return "\n".join(lines)


def render_report(res: Mapping[str, Any], analysis: str = "") -> str:
    """Markdown for a results dictionary written by :func:`ade_distill.experiments.results.build_results`."""
    systems, modes = list(res["systems"]), list(res["modes"])
    cfg = res["config"]
    n_done = len(res["folds_done"])
    out = [f"# {res['config_name']}", ""]
    if cfg.get("description"):
        out += [str(cfg["description"]).strip(), ""]
    status = "complete" if n_done == cfg["folds"]["k"] else f"**partial: {n_done} of {cfg['folds']['k']} folds**"
    out += [
        "## How this was made",
        "",
        f"- Command: `{res['command']}`",
        f"- Folds: {n_done} of {cfg['folds']['k']} ({status}); folds file seed {cfg['folds']['seed']}, grouped by PubMed ID",
        f"- Run time: {res['run_seconds'] / 60:.1f} min for this invocation (finished stages are reused from `runs/`); "
        f"student training summed over folds: "
        f"{sum(sum(f['timings_seconds'].values()) for f in res['per_fold']) / 60:.1f} min",
        f"- Machine: {res['machine']}",
        *([f"- Code: {describe(res['software'])}"] if res.get("software") else []),
        f"- Task `{cfg['task']}`, gold corpus `{cfg['corpus']}`, scored subset: {cfg['scoring']['subset']} "
        f"({res['n_scored']:,} test examples over the folds)",
        f"- Student: `{res['student_config']}`",
        f"- Rescore the committed predictions: `{res['rescore_command']}`",
        "",
        "## Results (relation level, pooled over folds)",
        "",
        "Predictions of all test folds scored together; 95% percentile-bootstrap CIs over examples "
        f"({cfg['scoring']['n_boot']} samples, seed {cfg['scoring']['seed']}). Scores in %.",
        "",
        pooled_table(res["pooled"], systems, modes),
        "",
        "Entity level (pooled):",
        "",
        pooled_table(res["pooled"], systems, modes, level="entity"),
        "",
    ]
    if n_done >= 2:
        out += ["## Per-fold mean (relation F1)", "", fold_mean_table(res["fold_mean"], systems, modes), ""]
    if res.get("comparisons"):
        out += ["## Paired tests", "", paired_table(res["comparisons"], modes), ""]
    if res.get("errors_strict"):
        cats = ["boundary", "label", "wrong_pairing", "miss", "spurious", "ungrounded"]
        out += ["## Errors (strict, relation level, pooled)", "",
                "Every strict relation error, by cause: an argument with the wrong extent (`boundary`), the wrong "
                "label, a right pair of mentions wrongly paired, a gold relation with no overlapping prediction "
                "(`miss`), a prediction overlapping no gold relation (`spurious`), a string the teacher returned "
                "that is not in the text (`ungrounded`).", "",
                "| system | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
        for sname, counts in res["errors_strict"].items():
            rel = counts.get("relation", {})
            out.append(f"| {sname} | " + " | ".join(f"{rel.get(c, 0):,}" for c in cats) + " |")
        out.append("")
    if analysis:
        out += ["## Analysis", "", analysis.strip(), ""]
    out += ["## Silver data and protocol guards", ""]
    for f in res["per_fold"]:
        c = f["contamination"]
        guards = "; ".join(
            f"{t}: {v['silver_in']} in, {v['removed_by_pmid']} removed by PMID, {v['removed_by_text']} by text, "
            f"clean={v['clean']}" for t, v in c.items()
        )
        s = f["silver"]
        out.append(
            f"- fold {f['fold']}: silver {s['records_out']:,} records ({s['relations_out']:,} relations, "
            f"{s['records_without_relations']:,} without relations; unusable {s['unusable_by_status']}; "
            f"ungrounded relations dropped {s['relations_ungrounded_dropped']}); guard — {guards}"
        )
    out += [
        "",
        "The distilled student never sees gold labels: the teacher receives the text of the training folds with "
        "all gold spans and relations stripped, and silver comes from the teacher alone. Silver records sharing a "
        "PubMed ID or a normalized sentence with the test fold are removed before training (counts above); the "
        "check after filtering found no overlap in any fold (`clean=True`).",
        "",
    ]
    if res.get("cost"):
        out += ["## Cost and speed", ""]
        out += ["| system | tokens / 1,000 sentences | USD / 1,000 sentences | sentences / s | how measured |",
                "|---|---|---|---|---|"]
        for name, c in res["cost"]["systems"].items():
            tok = c.get("tokens_per_1000")
            usd = c.get("usd_per_1000")
            sps = c.get("sentences_per_second")
            out.append(f"| {name} | {'–' if tok is None else f'{tok:,.0f}'} | {'–' if usd is None else f'{usd:.2f}'} | "
                       f"{'–' if not sps else f'{sps:.1f}'} | {c.get('how', '')} |")
        out.append("")
    if res.get("learning_curve"):
        out += ["## Student F1 vs silver-set size", "", "| fold | fraction | silver examples | strict F1 | lenient F1 |",
                "|---|---|---|---|---|"]
        for r in res["learning_curve"]:
            out.append(f"| {r['fold']} | {r['fraction']:g} | {r['silver_examples']:,} | {pct(r['strict']['f1'])} | "
                       f"{pct(r['lenient']['f1'])} |")
        out.append("")
    if res.get("figures"):
        out += ["## Figures", ""] + [f"![{name}]({path})" for name, path in res["figures"].items()] + [""]
    out += ["## Data and citations", ""] + [f"- {c}" for c in res["citations"]] + [""]
    return "\n".join(out)
