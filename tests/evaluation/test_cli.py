"""`ade-distill score` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import write_examples

from .helpers import U, ex, span
from .helpers import two_ade_sentences as _gold


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    gold = _gold()
    partial = [gold[0], ex("2", U, [span("P1", U, "Cisplatin", "DRUG"), span("P2", U, "failure", "ADE")],
                           [("P1", "P2")])]
    paths = {"gold": tmp_path / "gold.jsonl", "a": tmp_path / "a.jsonl", "b": tmp_path / "b.jsonl",
             "missing": tmp_path / "missing.jsonl", "extra": tmp_path / "extra.jsonl",
             "mismatch": tmp_path / "mismatch.jsonl"}
    write_examples(paths["gold"], gold)
    write_examples(paths["a"], gold)
    write_examples(paths["b"], partial)
    write_examples(paths["missing"], gold[:1])
    write_examples(paths["extra"], [*gold, ex("3", "other")])
    write_examples(paths["mismatch"], [gold[0], ex("2", U + " changed")])
    return paths


runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["score", *args])


def test_table(files):
    r = _run("--gold", str(files["gold"]), "--pred", f"gold={files['a']}", "--pred", f"sys={files['b']}",
             "--n-boot", "50")
    assert r.exit_code == 0, r.output
    assert "Scores on 2 examples" in r.output and "Paired bootstrap" in r.output
    assert "lenient" in r.output and "text" in r.output


def test_json_and_markdown(files):
    r = _run("--gold", str(files["gold"]), "--pred", f"sys={files['b']}", "--mode", "strict", "--format", "json",
             "--n-boot", "20")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["modes"] == ["strict"]
    micro = d["results"]["sys"]["strict"]["relation"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 1, 1)
    r = _run("--gold", str(files["gold"]), "--pred", f"sys={files['b']}", "--mode", "lenient",
             "--format", "markdown", "--n-boot", "0")
    assert r.exit_code == 0, r.output
    assert "| sys | lenient | relation | 1.000 | 1.000 | 1.000 | 2 | 0 | 0 |" in r.stdout


def test_out_dir(files, tmp_path):
    out = tmp_path / "report"
    r = _run("--gold", str(files["gold"]), "--pred", f"a={files['a']}", "--pred", f"b={files['b']}",
             "--out", str(out), "--n-boot", "20")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["errors.json", "errors.md", "report.md", "results.json"]
    res = json.loads((out / "results.json").read_text())
    assert res["paired"][0]["system_a"] == "a"
    errs = json.loads((out / "errors.json").read_text())
    assert errs["b"]["counts"]["entity"]["boundary"] == 1


def test_missing_ids_error_and_missing_as_empty(files):
    r = _run("--gold", str(files["gold"]), "--pred", f"s={files['missing']}", "--n-boot", "0")
    assert isinstance(r.exception, DataError) and "no prediction for 1 id(s): '2'" in str(r.exception)
    r = _run("--gold", str(files["gold"]), "--pred", f"s={files['missing']}", "--n-boot", "0",
             "--missing-as-empty", "--mode", "strict", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["results"]["s"]["strict"]["relation"]["micro"]["fn"] == 1
    assert d["missing_predictions_scored_empty"] == {"s": 1}


def test_extra_ids_and_text_mismatch_errors(files):
    r = _run("--gold", str(files["gold"]), "--pred", f"s={files['extra']}")
    assert isinstance(r.exception, DataError) and "not in gold: 1 id(s): '3'" in str(r.exception)
    r = _run("--gold", str(files["gold"]), "--pred", f"s={files['mismatch']}")
    assert isinstance(r.exception, DataError) and "text differs" in str(r.exception)


def test_bad_options(files):
    r = _run("--gold", str(files["gold"]), "--pred", str(files["a"]))
    assert isinstance(r.exception, ConfigError) and "NAME=PATH" in str(r.exception)
    r = _run("--gold", str(files["gold"]), "--pred", f"a={files['a']}", "--mode", "concept")
    assert isinstance(r.exception, ConfigError)
    r = _run("--gold", str(files["gold"]), "--pred", f"a={files['a']}", "--format", "xml")
    assert isinstance(r.exception, ConfigError)
