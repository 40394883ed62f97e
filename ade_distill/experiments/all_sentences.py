"""Score the students of a reproduction run on *all* held-out sentences: the test fold's sentences with an
adverse event (what the run scores, the only ones the recorded teachers cover) plus its ADE-NEG sentences, the
ones a user's PubMed text is mostly made of.

For each finished fold, each single-model student system (the distilled student — the last self-training round
when there are rounds —, earlier rounds, the supervised student) predicts the fold's relation-free test sentences
with its cached model (a predict stage inside the model folder); those predictions join the fold result's own
predictions on the positive sentences, and the union is scored against the gold of every test sentence. The
teachers are not scored here: they have no recording on ADE-NEG sentences (scoring them as predicting nothing
would credit them with perfect precision there).

Output, in ``<report>/all_sentences/``: ``predictions/<system>.jsonl`` (all folds, positives and negatives),
``results.json`` (pooled scores with CIs, per-fold P/R/F1, the command) and ``README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.experiments.reproduce import (
    STUDENT,
    SUPERVISED,
    Reproduction,
    file_name,
    folder_name,
    load_fold_result,
    round_folder,
)
from ade_distill.experiments.stages import Stage
from ade_distill.records import Example, read_examples, write_examples

MODES = ("strict", "lenient")


def model_folders(rep: Reproduction, fold: int) -> dict[str, Path]:
    """System name → trained model folder of ``fold``, for the single-model systems of the run."""
    fold_dir = rep.run_dir / f"fold{fold}"

    def model(sub: str) -> Path:
        f = fold_dir / sub / "model.txt"
        if not f.is_file():
            raise ConfigError(f"{f} not found: run `ade-distill reproduce` for fold {fold} first (the models are "
                              "needed to predict the ADE-NEG sentences)")
        return Path(f.read_text(encoding="utf-8").strip())

    out: dict[str, Path] = {}
    st = rep.cfg.self_training
    if rep.cfg.ensemble.seeds > 1:  # single models only: the compact student and the supervised one
        if rep.cfg.compress is None:
            raise ConfigError("all-sentence scoring covers single students; this config's student is an ensemble")
    elif st is None:
        out[STUDENT] = model(STUDENT)
    else:
        out[f"{STUDENT}:round0"] = model(STUDENT)
        for r in range(1, st.rounds):
            out[f"{STUDENT}:round{r}"] = model(round_folder(r))
        out[STUDENT] = model(round_folder(st.rounds))
    if rep.cfg.compress is not None:
        for system, _ in rep.cfg.compress.hop_options():
            out[system] = model(folder_name(system))
    if rep.cfg.supervised.enabled:
        out[SUPERVISED] = model(SUPERVISED)
    return out


def score_all_sentences(rep: Reproduction, folds: list[int], out_dir: Path, command: str) -> dict[str, Any]:
    """Predict and score (see the module docstring); returns the results written to ``out_dir``."""
    from ade_distill.evaluation import micro_prf, score_systems

    if rep.cfg.scoring.subset != "positive":
        raise ConfigError("all-sentence scoring extends a run scored on positive sentences (scoring.subset: positive)")
    fold_obj = rep.make_folds()
    gold: list[Example] = []
    preds: dict[str, list[Example]] = {}
    per_fold = []
    for k in folds:
        stage = Stage(rep.run_dir / f"fold{k}" / "result", rep.result_key(fold_obj, "fold", k))
        if not stage.done:
            raise ConfigError(f"fold {k} of {rep.cfg.name} has no finished result under {rep.run_dir}; run it first")
        fr = load_fold_result(stage.folder, rep.by_id)
        test_all = [rep.by_id[i] for i in sorted(fold_obj.test_ids(k))]
        negatives = [e for e in test_all if not e.relations]
        row: dict[str, Any] = {"fold": k, "positive": len(fr.gold), "negative": len(negatives)}
        for system, folder in model_folders(rep, k).items():
            neg_preds, speed = rep._predict(folder, negatives)
            both = fr.predictions[system] + neg_preds
            preds.setdefault(system, []).extend(both)
            p, r, f = micro_prf(fr.gold + negatives, both, mode="strict")
            row[system] = {"precision": p, "recall": r, "f1": f, "sentences_per_second": round(speed, 1)}
        gold.extend(fr.gold + negatives)
        per_fold.append(row)
    sc = rep.cfg.scoring
    report = score_systems(gold, preds, modes=MODES, n_boot=sc.n_boot, seed=sc.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "predictions").mkdir(exist_ok=True)
    for system, ps in preds.items():
        write_examples(out_dir / "predictions" / file_name(system), ps)
    write_examples(out_dir / "gold_ids.jsonl", [Example(id=e.id, text=e.text) for e in gold])
    res = {"config_name": rep.cfg.name, "command": command, "folds": folds, "n_scored": len(gold),
           "n_negative": sum(r["negative"] for r in per_fold), "scores": report.to_dict(), "per_fold": per_fold}
    (out_dir / "results.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(render(res), encoding="utf-8")
    return res


def pooled(res: dict[str, Any], system: str, mode: str) -> dict[str, Any]:
    return res["scores"]["results"][system][mode]["relation"]["micro"]


def render(res: dict[str, Any]) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    lines = [f"# {res['config_name']}: students on all held-out sentences", "",
             f"Folds {', '.join(map(str, res['folds']))}: {res['n_scored']:,} test sentences, "
             f"{res['n_negative']:,} of them ADE-NEG (no adverse event). Relation F1 % [95% CI], precision / recall.",
             "The recorded teachers have no response on ADE-NEG sentences, so they are not scored here.", "",
             "| system | strict F1 | strict P / R | lenient F1 | lenient P / R |", "|---|---|---|---|---|"]
    for system in res["scores"]["results"]:
        cells = []
        for mode in MODES:
            m = pooled(res, system, mode)
            ci = "" if m["f1_ci_low"] is None else f" [{pct(m['f1_ci_low'])}, {pct(m['f1_ci_high'])}]"
            cells += [f"{pct(m['f1'])}{ci}", f"{pct(m['precision'])} / {pct(m['recall'])}"]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(lines)


def rescore(out_dir: Path, gold_by_id: dict[str, Example]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Strict and lenient P/R/F1 recomputed from the files in ``out_dir`` (for checks of a committed report)."""
    from ade_distill.evaluation import micro_prf

    ids = [e.id for e in read_examples(out_dir / "gold_ids.jsonl")]
    gold = [gold_by_id[i] for i in ids]
    res = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    out = {}
    for system in res["scores"]["results"]:
        preds = list(read_examples(out_dir / "predictions" / file_name(system)))
        out[system] = {m: micro_prf(gold, preds, mode=m) for m in MODES}
    return out
