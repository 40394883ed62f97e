"""scripts/run_folds.sh: one `reproduce --only-fold K` per fold, each finished fold copied under
reports/<name>/folds/ for committing; committed folds skipped; a failing fold reported without stopping the rest.
The script runs in a scratch copy of the repository layout with a stand-in for `python -m ade_distill reproduce`
(the real command is what the experiment tests cover); the config name comes from the real config loader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE = """#!/usr/bin/env bash
if [[ "$1" == "-c" ]]; then exec {real} "$@"; fi
# -m ade_distill reproduce CONFIG --only-fold K --report-dir DIR --quiet
echo "$*" >> "{log}"
k=$6; dir=$8
if [[ "$k" == 2 ]]; then echo "fold 2 broke" >&2; exit 3; fi
mkdir -p "$dir/folds/fold$k/result" && echo '{{"fold": '"$k"'}}' > "$dir/folds/fold$k/result/stage.json"
"""


def _layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "configs").mkdir()
    shutil.copy(ROOT / "scripts" / "run_folds.sh", repo / "scripts")
    shutil.copy(ROOT / "configs" / "demo.yaml", repo / "configs")
    log = tmp_path / "calls.log"
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE.format(real=sys.executable, log=log), encoding="utf-8")
    fake.chmod(0o755)
    return repo, fake, log


def _run(repo: Path, fake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / "scripts" / "run_folds.sh"), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "PYTHONPATH": str(ROOT)}, timeout=120)


def test_each_fold_is_copied_for_committing_and_a_failure_does_not_stop_the_rest(tmp_path: Path) -> None:
    repo, fake, log = _layout(tmp_path)
    r = _run(repo, fake, "configs/demo.yaml", "0", "2", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    folds = repo / "reports" / "demo" / "folds"
    assert json.loads((folds / "fold0" / "result" / "stage.json").read_text()) == {"fold": 0}
    assert json.loads((folds / "fold1" / "result" / "stage.json").read_text()) == {"fold": 1}
    assert not (folds / "fold2").exists()
    assert "fold 2: failed" in r.stderr and "git add -f reports/demo/folds/fold1/result" in r.stdout
    calls = log.read_text().splitlines()
    assert calls[0] == "-m ade_distill reproduce configs/demo.yaml --only-fold 0 --report-dir runs/demo/report-partial-0 --quiet"
    assert len(calls) == 3
    r = _run(repo, fake, "configs/demo.yaml", "0", "1")  # committed folds are not rerun
    assert r.returncode == 0 and r.stdout.count("skipped") == 2
    assert len(log.read_text().splitlines()) == 3


def test_usage_and_a_missing_config_exit_2(tmp_path: Path) -> None:
    repo, fake, _ = _layout(tmp_path)
    assert _run(repo, fake, "configs/demo.yaml").returncode == 2
    r = _run(repo, fake, "configs/nope.yaml", "0")
    assert r.returncode == 2 and "no config file configs/nope.yaml" in r.stderr
