"""The ablation report (ade_distill.experiments.ablation, `ade-distill ablation SPEC`): spec validation, rendering
of a hand-made result, and a tiny end-to-end run over two reproduction configs run with --only-fold."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.experiments.ablation import AblationSpec, build, load_spec, render, write

ROOT = Path(__file__).resolve().parents[2]
MODES = ["strict", "boundaries", "lenient", "text"]
SPEC = {
    "name": "tiny_ablation",
    "title": "Tiny ablation",
    "dev_fold": 0,
    "teacher": "teacher:gpt-4-json",
    "rows": [{"lever": "baseline", "config": "a.yaml"}, {"lever": "more epochs", "config": "b.yaml", "note": "n"}],
}


def _write_spec(tmp_path: Path, spec: dict) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return p


# -- load_spec -----------------------------------------------------------------------------------------------------
def test_load_spec_valid_and_shipped(tmp_path: Path) -> None:
    sp = load_spec(_write_spec(tmp_path, SPEC))
    assert isinstance(sp, AblationSpec) and sp.dev_fold == 0 and sp.modes == tuple(MODES)
    assert [r.lever for r in sp.rows] == ["baseline", "more epochs"] and sp.final == ()
    shipped = load_spec(ROOT / "configs" / "ablations" / "beat_the_teacher.yaml")
    assert shipped.name == "beat_the_teacher" and shipped.rows and shipped.final
    for row in (*shipped.rows, *shipped.final):  # every config a shipped spec names exists
        assert (ROOT / row.config).is_file(), row.config


def test_load_spec_unknown_key_names_the_file(tmp_path: Path) -> None:
    p = _write_spec(tmp_path, {**SPEC, "dev_folds": 3})
    with pytest.raises(ConfigError) as err:
        load_spec(p)
    assert str(p) in str(err.value) and "dev_folds" in str(err.value)
    p = _write_spec(tmp_path, {**SPEC, "rows": [{"lever": "x", "config": "a.yaml", "epochs": 3}]})
    with pytest.raises(ConfigError, match="rows.0.epochs"):
        load_spec(p)


@pytest.mark.parametrize("change", [
    {"rows": []}, {"dev_fold": -1}, {"name": "bad name/"}, {"teacher": None},
    {"final": [{"label": "x", "config": "a.yaml"}, {"label": "x", "config": "b.yaml"}]},
    {"final": [{"label": "teacher:gpt-4-json", "config": "a.yaml"}]},
    {"final": [{"label": "x", "config": "a.yaml", "supervised": True, "supervised_label": "y"},
               {"label": "y", "config": "b.yaml"}]},
])
def test_load_spec_rejects_bad_values(tmp_path: Path, change: dict) -> None:
    with pytest.raises(ConfigError, match="spec.yaml"):
        load_spec(_write_spec(tmp_path, {**SPEC, **change}))


def test_final_supervised_names(tmp_path: Path) -> None:
    final = [{"label": "student: a", "config": "a.yaml", "supervised": True},
             {"label": "student: b", "config": "b.yaml", "supervised": True, "supervised_label": "supervised: b"},
             # c shows no supervised student: its name is only the default, never a row
             {"label": "student: c", "config": "c.yaml"}]
    sp = load_spec(_write_spec(tmp_path, {**SPEC, "final": final}))
    assert [f.supervised_name for f in sp.final] == [
        "supervised (student: a)", "supervised: b", "supervised (student: c)"]


def test_final_run_for_its_supervised_student_only(tmp_path: Path) -> None:
    """A final run may supply only its supervised student (the ceiling of another encoder): its label is then
    not a system name, so it cannot clash with the run whose distilled student it shares."""
    final = [{"label": "student: mpnet", "config": "m.yaml"},
             {"label": "student: mpnet", "config": "m_sup.yaml", "student": False, "supervised": True,
              "supervised_label": "supervised: mpnet"}]
    sp = load_spec(_write_spec(tmp_path, {**SPEC, "final": final}))
    assert [f.student for f in sp.final] == [True, False]
    with pytest.raises(ConfigError, match="student: false needs supervised: true"):
        load_spec(_write_spec(tmp_path, {**SPEC, "final": [{"label": "x", "config": "a.yaml", "student": False}]}))


def test_load_spec_missing_or_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_spec(p)


# -- render / write on a hand-made result ---------------------------------------------------------------------------
def _micro(f1: float) -> dict[str, float]:
    return {"precision": f1 + 0.01, "recall": f1 - 0.01, "f1": f1, "f1_ci_low": f1 - 0.05, "f1_ci_high": f1 + 0.05}


def _paired(delta: float, p: float) -> dict[str, dict[str, float]]:
    return {m: {"delta_f1": delta, "ci_low": delta - 0.02, "ci_high": delta + 0.02, "p_value": p} for m in MODES}


def _res(final_missing: list[str] | None) -> dict:
    rows = [
        {"lever": "baseline", "config": "a.yaml", "name": "a", "note": "", "command": "ade-distill reproduce a.yaml "
         "--only-fold 0", "status": "done", "system": "student:a", "silver": {}, "train_seconds": 1.0,
         "scores": {m: _micro(0.80) for m in MODES}, "vs_teacher": _paired(-0.031, 0.04), "vs_baseline": None},
        {"lever": "more epochs", "config": "b.yaml", "name": "b", "note": "six epochs", "command":
         "ade-distill reproduce b.yaml --only-fold 0", "status": "done", "system": "student:b", "silver": {},
         "train_seconds": 2.0, "scores": {m: _micro(0.85) for m in MODES}, "vs_teacher": _paired(0.012, 0.3),
         "vs_baseline": _paired(0.05, 0.001)},
        {"lever": "interaction", "config": "c.yaml", "name": "c", "note": "", "command":
         "ade-distill reproduce c.yaml --only-fold 0", "status": "pending"},
    ]
    final = None
    if final_missing is not None:
        final = {"reported_folds": [1, 2], "dev_fold": 0, "missing": final_missing,
                 "commands": {"student: baseline": "ade-distill reproduce a.yaml"}}
        if not final_missing:
            names = ["teacher:gpt-4-json", "student: baseline"]
            for tag in ("reported", "all"):
                final[tag] = {
                    "n_examples": 1234, "systems": names,
                    "scores": {"teacher:gpt-4-json": {m: _micro(0.83) for m in MODES},
                               "student: baseline": {m: _micro(0.81) for m in MODES}},
                    "vs_teacher": {"student: baseline": _paired(-0.02, 0.2)},
                    "fold_paired_vs_teacher": {"student: baseline": {m: {
                        "delta_mean": -0.02, "delta_sd": 0.01, "ci_low": -0.05, "ci_high": 0.01, "p_value": 0.25,
                        "n_folds": 2} for m in MODES}},
                    "per_fold_f1": {n: {m: [0.8, 0.82] for m in MODES} for n in names},
                }
    return {"name": "tiny_ablation", "title": "Tiny ablation", "dev_fold": 0, "teacher": "teacher:gpt-4-json",
            "modes": MODES, "n_boot": 100, "seed": 0, "dev_n_examples": 4321,
            "dev_teacher": {m: _micro(0.83) for m in MODES}, "rows": rows, "final": final}


def _row(md: str, lever: str) -> str:
    """The first table row of ``lever``."""
    return next(ln for ln in md.splitlines() if ln.startswith(f"| {lever} |"))


def test_render_lever_table_with_pending_row() -> None:
    md = render(_res(None), "spec.yaml")
    assert md.startswith("# Tiny ablation\n")
    assert "`ade-distill ablation spec.yaml`" in md and "100 resamples" in md
    assert "dev fold 0 (4,321 sentences" in md
    head = _row(md, "lever")
    assert head.count("|") == len(MODES) + 8  # lever, modes, P/R, two deltas, silver dev F1, train s, command
    teacher = _row(md, "**teacher** `teacher:gpt-4-json`")
    assert "83.0 [78.0, 88.0]" in teacher and "84.0 / 82.0" in teacher
    base = _row(md, "baseline")
    assert base.count("80.0 [75.0, 85.0]") == len(MODES) and "-3.1 (p=0.040)" in base
    assert base.count("|") == head.count("|") and "| – |" in base  # no Δ vs itself
    more = _row(md, "more epochs")
    assert "+1.2 (p=0.300)" in more and "+5.0 (p=0.001)" in more
    assert "| 2 |" in more and "| 1 |" in base  # training seconds of the row's model(s)
    pend = _row(md, "interaction")
    assert pend.count("pending") == len(MODES) and "`ade-distill reproduce c.yaml --only-fold 0`" in pend
    assert pend.count("|") == head.count("|")
    assert "- **more epochs** — six epochs" in md
    assert "Final comparison" not in md


def test_render_without_any_finished_lever() -> None:
    res = _res(None)
    res.update(dev_teacher=None, dev_n_examples=0)
    for r in res["rows"]:
        r["status"] = "pending"
    md = render(res, "spec.yaml")
    assert "## Levers" in md and "| lever |" not in md  # nothing to tabulate yet


def test_render_final_pending_and_done() -> None:
    md = render(_res(["a.yaml fold 1", "a.yaml fold 2"]), "spec.yaml")
    assert "## Final comparison on the 2 reported folds (all but dev fold 0)" in md
    assert "Pending — fold results not yet computed: a.yaml fold 1, a.yaml fold 2" in md
    assert "### Pooled" not in md
    assert "- student: baseline: `ade-distill reproduce a.yaml`" in md

    md = render(_res([]), "spec.yaml")
    assert "Pending" not in md
    assert "### Pooled over the 2 folds other than dev fold 0: 1,234 sentences" in md
    assert "### Pooled over all folds, including the dev fold (for reference only)" in md
    row = _row(md, "student: baseline")
    assert "-2.0 (p=0.200)" in row and "-2.0 [-5.0, +1.0] (p=0.250)" in row
    t_row = _row(md, "teacher:gpt-4-json")
    assert t_row.endswith("| – | – |")


def test_write_includes_analysis_and_results(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = _res(["a.yaml fold 1"])
    readme = write(res, out, "spec.yaml")
    assert readme == out / "README.md"
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(res))
    assert "Our reading" not in readme.read_text()
    (out / "analysis.md").write_text("## Our reading\n\nThe levers do not beat the teacher.\n\n")
    write(res, out, "spec.yaml")
    md = readme.read_text()
    assert "## Our reading\n\nThe levers do not beat the teacher.\n" in md
    assert md.index("Our reading") < md.index("## Levers")  # analysis above the tables
    assert (out / "analysis.md").read_text().startswith("## Our reading")  # left as written


# -- end to end on tiny real runs -----------------------------------------------------------------------------------
TINY_STUDENT = {"encoder": "minilm", "epochs": 1, "batch_size": 8, "max_length": 64, "lr": 1e-4,
                "head_lr": 1e-3, "patience": 0, "threads": 2}


def _config(tmp_path: Path, gold_path: Path, name: str, **student: object) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "ade_gpt4_replay.yaml").read_text())
    raw.update({"name": name, "corpus": str(gold_path), "student": {**TINY_STUDENT, **student},
                "folds": {"k": 2, "seed": 13}, "supervised": {"enabled": False},
                "runs_dir": str(tmp_path / "runs"), "report_dir": str(tmp_path / "reports")})
    raw["scoring"]["n_boot"] = 20
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.slow
def test_ablation_end_to_end_on_tiny_runs(tmp_path: Path, ade_first_pmids: Callable) -> None:
    from ade_distill.cli import app
    from ade_distill.records import write_examples

    gold_path = tmp_path / "gold.jsonl"
    write_examples(gold_path, ade_first_pmids(12))
    # b differs from a only in its name: it reuses a's trained model (same key) but keeps its own fold results
    a, b = _config(tmp_path, gold_path, "lever_a"), _config(tmp_path, gold_path, "lever_b")
    spec_path = _write_spec(tmp_path, {
        **SPEC, "n_boot": 20,
        "rows": [{"lever": "baseline", "config": str(a)}, {"lever": "renamed", "config": str(b)}],
        "final": [{"label": "student: a", "config": str(a), "supervised": True}],
    })
    runner = CliRunner()
    out_dir = tmp_path / "ablation"

    # nothing run yet: every row pending, no dev table, the final comparison pending
    r = runner.invoke(app, ["ablation", str(spec_path), "--out", str(out_dir)])
    assert r.exit_code == 0, r.output
    assert "0/2 lever(s) done" in r.output
    res = json.loads((out_dir / "results.json").read_text())
    assert [x["status"] for x in res["rows"]] == ["pending", "pending"] and res["dev_teacher"] is None
    assert res["final"]["missing"] == [f"{a} fold 0", f"{a} fold 1"]

    for cfg in (a, b):
        r = runner.invoke(app, ["reproduce", str(cfg), "--only-fold", "0", "--quiet"])
        assert r.exit_code == 0, r.output

    r = runner.invoke(app, ["ablation", str(spec_path), "--out", str(out_dir)])
    assert r.exit_code == 0, r.output
    assert "2/2 lever(s) done" in r.output
    res = json.loads((out_dir / "results.json").read_text())
    rows = res["rows"]
    assert [x["status"] for x in rows] == ["done", "done"]
    assert [x["system"] for x in rows] == ["student:lever_a", "student:lever_b"]
    assert rows[0]["vs_baseline"] is None and rows[1]["vs_baseline"] is not None
    for x in rows:
        assert set(x["scores"]) == set(MODES) and 0.0 <= x["scores"]["strict"]["f1"] <= 1.0
        assert set(x["vs_teacher"]) == set(MODES)
        assert x["command"] == f"ade-distill reproduce {x['config']} --only-fold 0"
    # same model, same test fold: identical scores, a zero difference
    assert rows[0]["scores"] == rows[1]["scores"]
    assert rows[1]["vs_baseline"]["strict"]["delta_f1"] == 0.0
    assert res["dev_n_examples"] > 0 and res["dev_teacher"]["strict"]["f1"] > 0.0
    assert res["final"]["missing"] == [f"{a} fold 1"] and res["final"]["reported_folds"] == [1]
    md = (out_dir / "README.md").read_text()
    assert "| baseline |" in md and "pending" not in md.split("## Final")[0]
    assert f"Pending — fold results not yet computed: {a} fold 1" in md

    # A fold result kept only in the report folder (another machine's run, committed) is found there too.
    import shutil

    kept = tmp_path / "reports" / "lever_b" / "folds" / "fold0" / "result"
    kept.parent.mkdir(parents=True)
    shutil.move(str(tmp_path / "runs" / "lever_b" / "fold0" / "result"), str(kept))
    res = build(load_spec(spec_path))
    assert [x["status"] for x in res["rows"]] == ["done", "done"]
    assert res["rows"][1]["scores"] == rows[1]["scores"]

    # Editing a config after its run makes its result stale: the row is pending again (stage key mismatch).
    raw = yaml.safe_load(b.read_text())
    raw["student"]["epochs"] = 2
    b.write_text(yaml.safe_dump(raw))
    res = build(load_spec(spec_path))
    assert [x["status"] for x in res["rows"]] == ["done", "pending"]
    assert "scores" not in res["rows"][1]
    md = render(res, str(spec_path))
    assert _row(md, "renamed").count("pending") == len(MODES)
    # ... and a description edit does not (it is not part of the key)
    raw["student"]["epochs"] = 1
    raw["description"] = "edited prose only"
    b.write_text(yaml.safe_dump(raw))
    assert [x["status"] for x in build(load_spec(spec_path))["rows"]] == ["done", "done"]

    # Run the final config's other fold: the final comparison is computed on fold 1 only (the dev fold is shown
    # only in the "all folds" block).
    r = runner.invoke(app, ["reproduce", str(a), "--only-fold", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ablation", str(spec_path), "--out", str(out_dir)])
    assert r.exit_code == 0, r.output
    res = json.loads((out_dir / "results.json").read_text())
    fin = res["final"]
    assert fin["missing"] == []
    assert fin["reported"]["systems"] == ["teacher:gpt-4-json", "student: a"]
    assert fin["all"]["n_examples"] > fin["reported"]["n_examples"] > 0
    assert fin["all"]["n_examples"] == fin["reported"]["n_examples"] + res["dev_n_examples"]
    assert len(fin["reported"]["per_fold_f1"]["student: a"]["strict"]) == 1
    assert len(fin["all"]["per_fold_f1"]["student: a"]["strict"]) == 2
    # the dev-fold student of the lever table is the same model as the final run's fold 0
    assert fin["all"]["per_fold_f1"]["student: a"]["strict"][0] == pytest.approx(rows[0]["scores"]["strict"]["f1"])
    md = (out_dir / "README.md").read_text()
    assert "Pending" not in md
    assert "### Pooled over the 1 folds other than dev fold 0" in md
    assert _row(md.split("### Pooled over all folds")[0].split("### Pooled over the 1 folds")[1], "student: a")
