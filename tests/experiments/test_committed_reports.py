"""The committed full reports: rescoring their prediction files with the report's own rescore command gives the
committed pooled results and paired tests exactly (issue 6's must-show), for every report under reports/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted(p.parent for p in (ROOT / "reports").glob("*/results.json")
                 if "rescore_command" in json.loads(p.read_text(encoding="utf-8")))


@pytest.mark.slow
@pytest.mark.parametrize("report", REPORTS, ids=[p.name for p in REPORTS])
def test_rescore_command_reproduces_committed_results(report: Path, tmp_path: Path) -> None:
    results = json.loads((report / "results.json").read_text(encoding="utf-8"))
    if len(results["folds_done"]) != results["config"]["folds"]["k"]:
        pytest.skip("partial report")
    cmd = results["rescore_command"].replace("/tmp/gold_", f"{tmp_path}/gold_")
    assert "ade-distill score" in cmd
    r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rescored = json.loads(r.stdout[r.stdout.index("\n{") + 1 if not r.stdout.startswith("{") else 0:])
    assert rescored["results"] == results["pooled"]["results"]
    assert rescored["paired"] == results["pooled"]["paired"]


def test_there_are_committed_reports_to_check() -> None:
    assert {p.name for p in REPORTS} >= {"ade_gpt4_replay", "ade_multi_teacher"}
