"""scripts/fold_margins.py: per-fold differences read from committed fold results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fold_margins_reads_committed_fold_results(tmp_path: Path) -> None:
    src = ROOT / "reports" / "ade_mpnet" / "folds"
    for k in (0, 9):
        (tmp_path / "folds" / f"fold{k}" / "result").mkdir(parents=True)
        shutil.copy(src / f"fold{k}" / "result" / "fold.json", tmp_path / "folds" / f"fold{k}" / "result")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "fold_margins.py"), str(tmp_path), "--dev-fold",
                          "9"], capture_output=True, text=True, check=True).stdout.splitlines()
    fold0 = json.loads((src / "fold0" / "result" / "fold.json").read_text())["scores"]["results"]
    d = 100 * (fold0["student"]["strict"]["relation"]["micro"]["f1"]
               - fold0["teacher:gpt-4-json"]["strict"]["relation"]["micro"]["f1"])
    assert out[2].startswith("| 0 |") and f"{d:+.1f} /" in out[2]
    assert out[3].startswith("| 9 (dev) |")
    assert out[4].startswith("| mean of 1 |") and f"{d:+.1f} /" in out[4]  # the dev fold is not averaged
    missing = subprocess.run([sys.executable, str(ROOT / "scripts" / "fold_margins.py"), str(tmp_path / "none")],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "no fold results" in missing.stderr
