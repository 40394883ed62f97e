"""Provenance: the code that made an output (package version, git commit and dirty flag, source hash, library
versions), and the warning — never an invalidation — when ``reproduce`` reuses a stage made by other code."""

from __future__ import annotations

import json
import logging
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from ade_distill import provenance
from ade_distill.experiments.stages import Stage
from ade_distill.provenance import LIBRARIES, describe, differences, software_provenance, source_hash

ROOT = Path(__file__).resolve().parents[1]


def test_software_provenance_names_the_code_and_the_libraries() -> None:
    p = software_provenance()
    assert p["ade_distill"] == metadata.version("ade-distill")
    assert set(p["libraries"]) == set(LIBRARIES) == {"torch", "transformers", "tokenizers", "datasets", "openai"}
    import torch
    import transformers

    assert p["libraries"]["torch"] == torch.__version__ and p["libraries"]["transformers"] == transformers.__version__
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (the development machines, CI's clone)
        assert p["git_commit"] == head.stdout.strip() and isinstance(p["git_dirty"], bool)
    assert p["source_sha256"] == source_hash() and len(p["source_sha256"]) == 16
    assert "ade-distill" in describe(p) and p["libraries"]["torch"] in describe(p)


def test_the_source_hash_follows_the_code(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "t.yaml").write_text("k: v\n")
    (pkg / "notes.txt").write_text("ignored\n")
    h = source_hash(pkg)
    (pkg / "notes.txt").write_text("changed, not code\n")
    assert source_hash(pkg) == h
    (pkg / "sub" / "t.yaml").write_text("k: w\n")
    assert source_hash(pkg) != h


def test_git_state_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path / "pkg") == {"git_commit": None, "git_dirty": None}


def test_differences_name_what_changed() -> None:
    now = software_provenance()
    assert differences(now) == [] and differences(None) == [] and differences({}) == []
    other = json.loads(json.dumps(now))
    other["libraries"]["transformers"] = "4.44.0"
    other["source_sha256"] = "0" * 16
    other["git_commit"] = "f" * 40
    diff = differences(other)
    assert len(diff) == 2 and diff[0].startswith("ade-distill source 0000") and "ffffffffff" in diff[0]
    assert diff[1] == f"transformers 4.44.0 → {now['libraries']['transformers']}"
    same_code = {**now, "git_commit": "f" * 40}  # another commit, the same source: the same code
    assert differences(same_code) == []


def test_a_stage_made_by_other_code_is_reused_with_one_warning(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr("ade_distill.experiments.stages._WARNED", set())
    stages = [Stage(tmp_path / f"s{i}", f"key{i}") for i in range(3)]
    for st in stages:
        st.start()
        st.finish({"n": 1})
    marker = json.loads(stages[0].marker.read_text())
    assert marker["software"] == software_provenance()
    with caplog.at_level(logging.WARNING, logger="ade_distill.experiments.stages"):
        assert all(st.done for st in stages)
    assert not caplog.records  # made by this code: silent

    for st in stages[:2]:  # made by another transformers
        m = json.loads(st.marker.read_text())
        m["software"]["libraries"]["transformers"] = "4.44.0"
        st.marker.write_text(json.dumps(m))
    del_marker = json.loads(stages[2].marker.read_text())
    del del_marker["software"]  # made before provenance was recorded: nothing to compare, no warning
    stages[2].marker.write_text(json.dumps(del_marker))
    with caplog.at_level(logging.WARNING, logger="ade_distill.experiments.stages"):
        assert all(Stage(st.folder, st.key).done for st in stages)  # reused: never invalidated
        assert Stage(stages[0].folder, "other-key").done is False  # keys still decide
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per distinct difference, not once per stage
    assert "made by other code" in warnings[0] and "transformers 4.44.0 →" in warnings[0]
    assert str(stages[0].folder) in warnings[0]


def test_score_results_json_records_the_code(tmp_path: Path, ade_gold) -> None:
    from ade_distill.evaluation import score_systems
    from ade_distill.evaluation.scoring import write_report_dir

    gold = [e for e in ade_gold if e.relations][:20]
    write_report_dir(score_systems(gold, {"copy": gold}, modes=("strict",), n_boot=10, seed=0), tmp_path)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["software"] == software_provenance()


@pytest.mark.parametrize("name", ["ade_multi_teacher"])
def test_reports_render_the_code_line_only_when_recorded(name: str) -> None:
    """Committed results made before provenance was recorded render as before (no Code line)."""
    from ade_distill.reports.markdown import render_report

    res = json.loads((ROOT / "reports" / name / "results.json").read_text())
    assert "software" not in res and "- Code:" not in render_report(res)
    res["software"] = software_provenance()
    assert f"- Code: {describe(res['software'])}" in render_report(res)
