"""Issue 15: `score` input checks — an empty gold is a clear error (not a traceback, not a table of zeros),
and predicted labels the gold does not use are named with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import DataError
from ade_distill.records import write_examples

from .helpers import U, ex, span
from .helpers import two_ade_sentences as _gold


@pytest.mark.parametrize("n_boot", ["0", "20"])
def test_empty_gold_is_a_clear_error(tmp_path: Path, n_boot: str):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_bytes(b"")
    pred.write_bytes(b"")
    r = CliRunner().invoke(app, ["score", "--gold", str(gold), "--pred", f"a={pred}", "--n-boot", n_boot])
    assert isinstance(r.exception, DataError), r.output
    assert str(gold) in str(r.exception) and "nothing to score" in str(r.exception)


def test_library_scores_empty_gold_without_crashing():
    from ade_distill.evaluation.scoring import score_systems

    report = score_systems([], {"a": []}, n_boot=20)
    assert report.results["a"]["strict"]["relation"].micro.f1 == 0.0


def test_unknown_prediction_labels_are_named_with_file_and_line(tmp_path: Path):
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    write_examples(gold, _gold())
    write_examples(pred, [
        _gold()[0],
        ex("2", U, [span("P1", U, "Cisplatin", "Drug"), span("P2", U, "renal failure", "adverse_effect")],
           [("P1", "P2")]),
    ])
    args = ["score", "--gold", str(gold), "--pred", f"a={pred}", "--n-boot", "0"]
    r = CliRunner().invoke(app, args)
    assert isinstance(r.exception, DataError), r.output
    msg = str(r.exception)
    assert msg.startswith(f"{pred}:2 (record '2')") and "'Drug'" in msg and "'adverse_effect'" in msg
    r = CliRunner().invoke(app, [*args, "--allow-unknown-labels"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and "'Drug'" in r.output
