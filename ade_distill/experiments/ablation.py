"""An ablation report over reproduction configs: levers chosen on one dev fold, the winner confirmed on the rest.

Rules of evidence it enforces:

* **choice on a dev fold** — every lever is a reproduction config run with ``--only-fold D``; the lever table
  scores each lever's student on fold D's gold, side by side with the teacher and the baseline student, with
  95% bootstrap CIs and paired bootstrap tests (same resamples for every system);
* **confirmation on the other folds** — the chosen configs are run on all folds; the final table pools the
  folds *other than* D (never used for a choice), with CIs, a paired bootstrap test against the teacher and a
  paired t-test over those folds. The all-fold numbers are shown too, marked as including the dev fold.

Every fold result is looked up under ``runs/<name>/`` then ``reports/<name>/folds/`` and used only if its stage
key matches the config as it is now, so the table cannot silently mix in results of an edited config.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ade_distill.data.folds import Folds
from ade_distill.errors import ConfigError
from ade_distill.experiments.reproduce import (
    COMPRESSED,
    STUDENT,
    SUPERVISED,
    FoldResult,
    Reproduction,
    folder_name,
    load_fold_result,
)
from ade_distill.experiments.stages import Stage
from ade_distill.records import Example
from ade_distill.reports.aggregate import paired_t, pooled_paired
from ade_distill.reports.markdown import pct
from ade_distill.yamlio import read_yaml_mapping


class LeverRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lever: str
    config: str
    note: str = ""
    system: str = Field(
        default="student", pattern=r"^(student|supervised|compressed(:[A-Za-z0-9_.-]+)?)$",
        description="the config's system this row scores: its distilled student, its supervised student (the "
        "ceiling of the same encoder and recipe on gold labels), its compressed student, or compressed:<name>, "
        "the student of a further compression hop")


class FinalRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    config: str
    supervised: bool = Field(default=False, description="also show this run's supervised student")
    supervised_label: str = Field(default="", description="its row label (default: 'supervised (<label>)')")
    student: bool = Field(default=True, description="show this run's distilled student (false: only its "
                          "supervised student, for a run that supplies the ceiling of an encoder)")
    system: str = Field(
        default="student", pattern=r"^(student|compressed(:[A-Za-z0-9_.-]+)?)$",
        description="the system shown under `label`: the run's distilled student, the compact student its "
        "`compress` stage made, or compressed:<name>, that of a further hop")

    @model_validator(mode="after")
    def _shows_something(self) -> FinalRun:
        if not (self.student or self.supervised):
            raise ValueError(f"final run {self.label!r}: student: false needs supervised: true")
        return self

    @property
    def supervised_name(self) -> str:
        """The system name of this run's supervised student in the final comparison."""
        return self.supervised_label or f"{SUPERVISED} ({self.label})"


class AblationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = ""
    dev_fold: int = Field(ge=0)
    teacher: str = Field(description="the teacher system name, e.g. teacher:gpt-4-json")
    modes: tuple[str, ...] = ("strict", "boundaries", "lenient", "text")
    n_boot: int = Field(default=1000, ge=0)
    seed: int = 0
    rows: tuple[LeverRow, ...] = Field(min_length=1)
    final: tuple[FinalRun, ...] = ()

    @model_validator(mode="after")
    def _unique_systems(self) -> AblationSpec:
        """Every system of the final comparison needs its own name (a repeated one would replace the other's
        predictions)."""
        names = [self.teacher]
        for f in self.final:
            names += [*([f.label] if f.student else []), *([f.supervised_name] if f.supervised else [])]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"final: system names must be unique (and differ from the teacher), repeated: {repeated}")
        return self


def load_spec(path: str | Path) -> AblationSpec:
    p = Path(path)
    raw = read_yaml_mapping(p, not_found=f"ablation spec {p} not found", not_mapping="expected a mapping")
    try:
        return AblationSpec.model_validate(raw)
    except ValidationError as err:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{p}: {msgs}") from None


@dataclass
class _Run:
    config_path: str
    rep: Reproduction

    @cached_property
    def folds(self) -> Folds:
        return self.rep.make_folds()

    def fold(self, k: int) -> FoldResult | None:
        """The finished result of fold ``k`` for the config as it is now, or None."""
        key = self.rep.result_key(self.folds, "fold", k)
        name = self.rep.cfg.name
        for folder in (self.rep.run_dir / f"fold{k}" / "result",
                       Path(self.rep.cfg.report_dir) / name / "folds" / f"fold{k}" / "result"):
            if Stage(folder, key).done:
                return load_fold_result(folder, self.rep.by_id)
        return None

    def model_metrics(self, k: int, system: str = STUDENT) -> dict[str, Any] | None:
        """Training metrics of fold ``k``'s distilled (or supervised) student (best dev F1 — on silver for the
        distilled one —, epochs, calibration), when its model is in the local stage cache; None on a machine that
        only has the report."""
        ref = self.rep.run_dir / f"fold{k}" / folder_name(system) / "model.txt"
        try:
            model_dir = Path(ref.read_text(encoding="utf-8").strip())
            return json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def system_seconds(timings: dict[str, float], system: str) -> float | None:
    """Training seconds of a system: every model it took (its self-training rounds and seed members included);
    a further compression hop (``compressed:<name>``) is a system of its own, not part of ``compressed``."""
    total = sum(v for k, v in timings.items() if k == system or (k.split(":")[0] == system != COMPRESSED))
    return total or None


def _open(config_path: str, cache: dict[str, _Run]) -> _Run:
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import RunOptions

    if config_path not in cache:
        cache[config_path] = _Run(config_path, Reproduction(load_config(config_path), RunOptions(progress=False)))
    return cache[config_path]


def _micro(scores: dict[str, Any], system: str, mode: str) -> dict[str, float]:
    return dict(scores["results"][system][mode]["relation"]["micro"])


def _score(gold: list[Example], systems: dict[str, list[Example]], spec: AblationSpec) -> dict[str, Any]:
    from ade_distill.evaluation import score_systems

    return score_systems(gold, systems, modes=spec.modes, n_boot=spec.n_boot, seed=spec.seed).to_dict()


def build(spec: AblationSpec) -> dict[str, Any]:
    """Compute the lever table (dev fold) and the final table (other folds). Missing results are listed, not
    guessed: a lever without its dev-fold result is reported as pending."""
    from ade_distill.provenance import software_provenance

    cache: dict[str, _Run] = {}
    d = spec.dev_fold
    names: dict[str, str] = {}
    for row in spec.rows:
        run = _open(row.config, cache)
        if d >= run.rep.cfg.folds.k:
            raise ConfigError(f"dev_fold {d} is not a fold of {row.config} (k={run.rep.cfg.folds.k})")
        other = names.setdefault(run.rep.cfg.name, row.config)
        if other != row.config:
            raise ConfigError(f"{row.config} and {other} share the run name {run.rep.cfg.name!r}; names must differ")
    # -- lever table on the dev fold ---------------------------------------------------------------------------
    dev_systems: dict[str, list[Example]] = {}
    dev_gold: list[Example] | None = None
    rows: list[dict[str, Any]] = []
    for row in spec.rows:
        run = _open(row.config, cache)
        fr = run.fold(d)
        cmd = f"ade-distill reproduce {shlex.quote(row.config)} --only-fold {d}"
        entry: dict[str, Any] = {"lever": row.lever, "config": row.config, "name": run.rep.cfg.name,
                                 "note": row.note, "command": cmd, "status": "pending"}
        rows.append(entry)
        if fr is None:
            continue
        if dev_gold is None:
            dev_gold = fr.gold
            if spec.teacher not in fr.predictions:
                raise ConfigError(f"{row.config}: fold {d} has no system {spec.teacher!r} ({list(fr.predictions)})")
            dev_systems[spec.teacher] = fr.predictions[spec.teacher]
        elif [g.id for g in fr.gold] != [g.id for g in dev_gold]:
            raise ConfigError(f"{row.config}: fold {d} test set differs from the first row's (other folds?)")
        if row.system not in fr.predictions:
            raise ConfigError(f"{row.config}: fold {d} has no {row.system} system ({list(fr.predictions)})")
        entry["status"] = "done"
        entry["system"] = f"{row.system}:{run.rep.cfg.name}"
        dev_systems[entry["system"]] = fr.predictions[row.system]
        entry["silver"] = fr.silver
        entry["train_seconds"] = system_seconds(fr.timings, row.system)
        m = run.model_metrics(d, row.system)
        if m is not None:
            entry["student_training"] = {"best_silver_dev_f1": (m.get("best_dev") or {}).get("f1"),
                                         "best_epoch": (m.get("best_dev") or {}).get("epoch"),
                                         "epochs_run": m.get("epochs_run"), "calibration": m.get("calibration")}
    dev_scores = _score(dev_gold, dev_systems, spec) if dev_gold is not None else None
    baseline = rows[0].get("system")  # the first row is the baseline; "–" while it is pending
    if dev_scores is not None:
        for r in rows:
            if r["status"] != "done":
                continue
            s = r["system"]
            r["scores"] = {m: _micro(dev_scores, s, m) for m in spec.modes}
            r["vs_teacher"] = pooled_paired(dev_scores, s, spec.teacher)
            r["vs_baseline"] = pooled_paired(dev_scores, s, baseline) if baseline and s != baseline else None
    # -- final comparison on the reported folds --------------------------------------------------------------
    final: dict[str, Any] | None = None
    if spec.final:
        runs = [(f, _open(f.config, cache)) for f in spec.final]
        k = runs[0][1].rep.cfg.folds.k
        reported = [i for i in range(k) if i != d]
        per_fold: dict[int, dict[str, list[Example]]] = {}
        gold_by_fold: dict[int, list[Example]] = {}
        missing: list[str] = []
        for i in range(k):
            for f, run in runs:
                fr = run.fold(i)
                if fr is None:
                    missing.append(f"{f.config} fold {i}")
                    continue
                gold_by_fold.setdefault(i, fr.gold)
                systems = per_fold.setdefault(i, {})
                systems.setdefault(spec.teacher, fr.predictions[spec.teacher])
                if f.student:
                    if f.system not in fr.predictions:
                        raise ConfigError(f"{f.config}: fold {i} has no {f.system} system ({list(fr.predictions)})")
                    systems[f.label] = fr.predictions[f.system]
                if f.supervised and SUPERVISED in fr.predictions:
                    systems[f.supervised_name] = fr.predictions[SUPERVISED]
        final = {"reported_folds": reported, "dev_fold": d, "missing": missing}
        if not missing:
            names = list(per_fold[reported[0]])
            for tag, fold_ids in (("reported", reported), ("all", list(range(k)))):
                gold = [g for i in fold_ids for g in gold_by_fold[i]]
                systems = {n: [p for i in fold_ids for p in per_fold[i][n]] for n in names}
                sc = _score(gold, systems, spec)
                fold_scores = {i: _score(gold_by_fold[i], per_fold[i], spec.model_copy(update={"n_boot": 0}))
                               for i in fold_ids}
                final[tag] = {
                    "n_examples": len(gold),
                    "systems": names,
                    "scores": {n: {m: _micro(sc, n, m) for m in spec.modes} for n in names},
                    "vs_teacher": {n: pooled_paired(sc, n, spec.teacher) for n in names if n != spec.teacher},
                    "first_final": spec.final[0].label,
                    "vs_first_final": {n: pooled_paired(sc, n, spec.final[0].label) for n in names
                                       if n not in (spec.teacher, spec.final[0].label)},
                    "fold_paired_vs_teacher": {
                        n: {m: paired_t([_micro(fold_scores[i], n, m)["f1"] for i in fold_ids],
                                        [_micro(fold_scores[i], spec.teacher, m)["f1"] for i in fold_ids])
                            for m in spec.modes}
                        for n in names if n != spec.teacher
                    },
                    "per_fold_f1": {n: {m: [_micro(fold_scores[i], n, m)["f1"] for i in fold_ids]
                                        for m in spec.modes} for n in names},
                }
        final["commands"] = {f.label: f"ade-distill reproduce {shlex.quote(f.config)}" for f, _ in runs}
    return {"name": spec.name, "title": spec.title, "dev_fold": d, "teacher": spec.teacher, "modes": list(spec.modes),
            "n_boot": spec.n_boot, "seed": spec.seed, "dev_n_examples": len(dev_gold) if dev_gold else 0,
            "dev_teacher": {m: _micro(dev_scores, spec.teacher, m) for m in spec.modes} if dev_scores else None,
            "rows": rows, "final": final, "software": software_provenance()}


def _f1ci(s: dict[str, float]) -> str:
    return f"{pct(s['f1'])} [{pct(s['f1_ci_low'])}, {pct(s['f1_ci_high'])}]"


def _delta(p: dict[str, float] | None) -> str:
    if not p:
        return "–"
    return f"{100 * p['delta_f1'] + 0.0:+.1f} (p={p['p_value']:.3f})"  # + 0.0: no "-0.0"


def _silver_dev(t: dict[str, Any] | None) -> str:
    if not t or t.get("best_silver_dev_f1") is None:
        return "–"
    return f"{pct(t['best_silver_dev_f1'])} (epoch {t.get('best_epoch')} of {t.get('epochs_run')})"


def _secs(x: float | None) -> str:
    return "–" if not x else f"{x:,.0f}"


def _json_safe(obj: Any) -> Any:
    """NaN (e.g. a t-interval over one fold) → null, so results.json stays valid JSON."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def render(res: dict[str, Any], spec_path: str, analysis: str = "") -> str:
    modes = res["modes"]
    d = res["dev_fold"]
    t = res["teacher"]
    lines = [f"# {res['title'] or res['name']}", ""]
    lines += [f"Made by `ade-distill ablation {spec_path}` on {time.strftime('%Y-%m-%d', time.gmtime())}; every "
              "number below comes from the fold results of the listed commands (95% percentile bootstrap CIs over "
              f"test sentences, {res['n_boot']} resamples, seed {res['seed']}; paired bootstrap p-values on the same "
              "resamples).", ""]
    if analysis.strip():
        lines += [analysis.strip(), ""]
    lines += [f"## Levers, compared on dev fold {d} ({res['dev_n_examples']:,} sentences; excluded from the claim "
              "below)", ""]
    if res["dev_teacher"]:
        lines += ["Relation F1 % [95% CI]; strict precision/recall; Δ strict F1 against the teacher and against "
                  "the baseline student (paired bootstrap).", ""]
        head = ("| lever | " + " | ".join(modes) + " | strict P / R | Δ vs teacher | Δ vs baseline "
                "| student vs its silver (dev F1) | train s | command |")
        lines += [head, "|" + "---|" * (len(modes) + 7)]
        tt = res["dev_teacher"]
        lines.append(f"| **teacher** `{t}` | " + " | ".join(_f1ci(tt[m]) for m in modes)
                     + f" | {pct(tt['strict']['precision'])} / {pct(tt['strict']['recall'])} | | | | | (recorded) |")
        for r in res["rows"]:
            if r["status"] != "done":
                lines.append(f"| {r['lever']} | " + " | ".join("pending" for _ in modes)
                             + f" | | | | | | `{r['command']}` |")
                continue
            sc = r["scores"]
            lines.append(
                f"| {r['lever']} | " + " | ".join(_f1ci(sc[m]) for m in modes)
                + f" | {pct(sc['strict']['precision'])} / {pct(sc['strict']['recall'])}"
                + f" | {_delta(r['vs_teacher'].get('strict'))} | {_delta((r['vs_baseline'] or {}).get('strict'))}"
                + f" | {_silver_dev(r.get('student_training'))} | {_secs(r.get('train_seconds'))} | `{r['command']}` |")
        lines += ["", "*Student vs its silver*: strict relation F1 of the distilled student against its own silver labels on "
                  "the silver dev split of the training folds (best epoch, before calibration; read from the model "
                  "in the local stage cache, so it is blank on a machine that only has the committed report)."]
        lines.append("")
        notes = [r for r in res["rows"] if r.get("note")]
        if notes:
            lines += ["Notes:", ""] + [f"- **{r['lever']}** — {r['note']}" for r in notes] + [""]
    fin = res["final"]
    if fin is not None:
        rep = fin["reported_folds"]
        lines += [f"## Final comparison on the {len(rep)} reported folds (all but dev fold {d})", ""]
        if fin["missing"]:
            lines += ["Pending — fold results not yet computed: " + ", ".join(fin["missing"]), ""]
        else:
            for tag, title in (("reported", f"the {len(rep)} folds other than dev fold {d}"),
                               ("all", "all folds, including the dev fold (for reference only)")):
                block = fin[tag]
                lines += [f"### Pooled over {title}: {block['n_examples']:,} sentences", ""]
                lines += ["| system | " + " | ".join(modes) + " | strict P / R | Δ strict vs teacher (bootstrap) "
                          "| Δ strict vs teacher (paired t over folds) |", "|" + "---|" * (len(modes) + 4)]
                for n in block["systems"]:
                    sc = block["scores"][n]
                    vt = block["vs_teacher"].get(n, {}).get("strict")
                    ft = block["fold_paired_vs_teacher"].get(n, {}).get("strict")
                    fts = "–" if not ft or len(rep) < 2 else (
                        f"{100 * ft['delta_mean']:+.1f} [{100 * ft['ci_low']:+.1f}, {100 * ft['ci_high']:+.1f}] "
                        f"(p={ft['p_value']:.3f})")
                    lines.append(f"| {n} | " + " | ".join(_f1ci(sc[m]) for m in modes)
                                 + f" | {pct(sc['strict']['precision'])} / {pct(sc['strict']['recall'])}"
                                 + f" | {_delta(vt)} | {fts} |")
                lines.append("")
                others = [n for n in block["systems"] if n != t]
                lines += ["Δ F1 against the teacher in every mode (paired bootstrap):", "",
                          "| system | " + " | ".join(modes) + " |", "|" + "---|" * (len(modes) + 1)]
                for n in others:
                    lines.append(f"| {n} | " + " | ".join(_delta(block["vs_teacher"][n].get(m)) for m in modes) + " |")
                lines.append("")
                if block.get("vs_first_final"):
                    lines += [f"Δ F1 against `{block['first_final']}` in every mode (paired bootstrap):", "",
                              "| system | " + " | ".join(modes) + " |", "|" + "---|" * (len(modes) + 1)]
                    for n, d in block["vs_first_final"].items():
                        lines.append(f"| {n} | " + " | ".join(_delta(d.get(m)) for m in modes) + " |")
                    lines.append("")
        lines += ["Commands:", ""] + [f"- {k}: `{v}`" for k, v in fin["commands"].items()] + [""]
    return "\n".join(lines)


def write(res: dict[str, Any], out_dir: Path, spec_path: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(_json_safe(res), indent=1, sort_keys=True, allow_nan=False)
                                          + "\n", encoding="utf-8")
    analysis_file = out_dir / "analysis.md"
    analysis = analysis_file.read_text(encoding="utf-8") if analysis_file.is_file() else ""
    readme = out_dir / "README.md"
    readme.write_text(render(res, spec_path, analysis) + "\n", encoding="utf-8")
    return readme
