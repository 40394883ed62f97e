"""notebooks/walkthrough.ipynb executes top to bottom on a tiny budget, and is in sync with its builder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "walkthrough.ipynb"

pytestmark = pytest.mark.slow


def test_notebook_matches_its_builder(tmp_path: Path) -> None:
    import nbformat

    built = tmp_path / "walkthrough.ipynb"
    subprocess.run([sys.executable, str(ROOT / "notebooks" / "build_walkthrough.py"), str(built)], check=True,
                   capture_output=True)
    committed = nbformat.read(NB, as_version=4)
    rebuilt = nbformat.read(built, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in rebuilt.cells], (
        "notebooks/walkthrough.ipynb is out of date: run python notebooks/build_walkthrough.py")


def test_walkthrough_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("ADE_NOTEBOOK_BUDGET", "tiny")
    monkeypatch.setenv("ADE_NOTEBOOK_WORKDIR", str(tmp_path))
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "teacher (GPT-4)" in outputs and "supervised" in outputs and "strict F1" in outputs
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert (tmp_path / "f1_by_system.png").stat().st_size > 1000
