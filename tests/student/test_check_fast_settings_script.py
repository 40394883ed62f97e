"""scripts/check_fast_settings.sh: a fold's model predicts the fold's scored sentences in fp32, bf16 and bf16 +
compile, scored beside the fold's committed predictions; its fp32 row equals them. Runs the real CLI on a scratch
copy of the repository layout with a tiny trained student and 12 real ADE sentences; nothing of the corpus is
left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ade_distill.experiments.protocol import strip_labels
from ade_distill.records import Example, write_examples
from ade_distill.student.model import StudentExtractor

ROOT = Path(__file__).resolve().parents[2]


def _run(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           **(env or {})}
    return subprocess.run(["bash", str(repo / "scripts" / "check_fast_settings.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=900)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "check_fast_settings.sh", repo / "scripts")
    return repo


def test_usage_and_missing_inputs_are_named(repo: Path, trained_dir: Path) -> None:
    res = _run(repo, "x", "0")
    assert res.returncode == 2 and "usage: bash scripts/check_fast_settings.sh" in res.stderr
    res = _run(repo, "nope", "3", "compressed", str(trained_dir), "out")
    assert res.returncode == 2 and "no reports/nope/folds/fold3/result/fold.json" in res.stderr
    result = repo / "reports" / "run" / "folds" / "fold0" / "result"
    (result / "predictions").mkdir(parents=True)
    (result / "fold.json").write_text(json.dumps({"fold": 0, "gold_ids": []}))
    (result / "predictions" / "student.jsonl").write_text("")
    res = _run(repo, "run", "0", "student", str(trained_dir), "out", "0")
    assert res.returncode == 2 and "CHECK_FOLD must differ from FOLD" in res.stderr
    res = _run(repo, "run", "0", "student", str(trained_dir), "out", "9")
    assert res.returncode == 2 and "no reports/run/folds/fold9/result/fold.json" in res.stderr


@pytest.mark.slow
def test_fp32_row_equals_the_committed_predictions(repo: Path, trained_dir: Path,
                                                   ade_gold: list[Example]) -> None:
    gold = [e for e in ade_gold if e.relations][:12]
    result = repo / "reports" / "run" / "folds" / "fold0" / "result"
    (result / "predictions").mkdir(parents=True)
    (result / "fold.json").write_text(json.dumps({"fold": 0, "gold_ids": [e.id for e in gold]}))
    committed = StudentExtractor.from_pretrained(trained_dir).predict(strip_labels(gold))
    write_examples(result / "predictions" / "student.jsonl", committed)
    out = repo / "check"
    res = _run(repo, "run", "0", "student", str(trained_dir), str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    scores = json.loads((out / "scores" / "results.json").read_text())["results"]
    f1 = {name: scores[name]["strict"]["relation"]["micro"]["f1"] for name in scores}
    assert set(f1) == {"reproduce (student)", "fp32", "bf16", "bf16+compile"}
    assert f1["fp32"] == f1["reproduce (student)"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["scores", "scores.md"]  # no copy of the gold records


@pytest.mark.slow
def test_check_fold_guards_torch_int8_on_a_copy(repo: Path, trained_dir: Path, ade_gold: list[Example],
                                               tiny_train: list[Example]) -> None:
    gold = [e for e in ade_gold if e.relations][:12]
    folds = repo / "reports" / "run" / "folds"
    for k, ids in ((0, [e.id for e in gold]), (9, [e.id for e in tiny_train])):
        (folds / f"fold{k}" / "result" / "predictions").mkdir(parents=True)
        (folds / f"fold{k}" / "result" / "fold.json").write_text(json.dumps({"fold": k, "gold_ids": ids}))
    committed = StudentExtractor.from_pretrained(trained_dir).predict(strip_labels(gold))
    write_examples(folds / "fold0" / "result" / "predictions" / "student.jsonl", committed)
    for limit, accepted in (("100", True), ("0", None)):  # a generous guard accepts; a strict one may refuse
        out = repo / f"check{limit}"
        res = _run(repo, "run", "0", "student", str(trained_dir), str(out), "9", env={"INT8_MAX_F1_LOSS": limit})
        assert res.returncode == 0, res.stderr[-3000:]
        verdict = json.loads((out / "int8.json").read_text())
        assert verdict["check_examples"] == len(tiny_train) and verdict["runtime"] == "torch"
        assert accepted is None or verdict["accepted"] is accepted
        scores = json.loads((out / "scores" / "results.json").read_text())["results"]
        assert ("int8" in scores) == verdict["accepted"]  # a refused int8 gets no row
        if verdict["accepted"]:
            assert scores["int8"]["strict"]["relation"]["micro"]["f1"] > 0
        else:
            assert "int8 refused by its guard on fold 9" in res.stderr
    assert not (trained_dir / "int8.json").exists()  # the model folder itself is only read
