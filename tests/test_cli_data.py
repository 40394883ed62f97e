"""`ade-distill data ...` commands: stats numbers, folds via the real console script, export, clean errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app, main
from ade_distill.records import read_examples

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"


def _script() -> list[str]:
    exe = shutil.which("ade-distill")
    return [exe] if exe else [sys.executable, "-m", "ade_distill"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*_script(), *args], capture_output=True, text=True, env=full_env, timeout=120)


@pytest.fixture(scope="module")
def stats_json(data_root: Path) -> dict:
    res = runner.invoke(app, ["data", "stats", "--format", "json", "--data", str(data_root)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_stats_json_numbers(stats_json: dict) -> None:
    a = stats_json["ade"]
    assert (a["relations"], a["positive_examples"], a["distinct_positive_texts"]) == (6821, 4272, 4271)
    assert (a["negative_examples"], a["negative_duplicates_dropped"], a["unlocated_mentions"]) == (16688, 7, 0)
    assert a["negative_policy"] == ("ADE-NEG.txt: exact duplicate (PubMed ID, sentence) lines kept once; a negative "
                                    "sentence equal to a positive sentence of the same PubMed ID dropped")
    assert a["drug_dose_relations"] == 279
    assert a["head_conditioning"] == {"examples_with_relations": 4272, "with_two_or_more_related_heads": 530,
                                      "heads_with_different_tails": 26}
    c = stats_json["cdr"]
    assert [c[s]["documents"] for s in ("train", "dev", "test")] == [500, 500, 500]
    assert [c[s]["cid_relations"] for s in ("train", "dev", "test")] == [1038, 1012, 1066]
    assert [c[s]["head_conditioning"]["heads_with_different_tails"] for s in ("train", "dev", "test")] == [20, 28, 34]
    u = stats_json["unlabeled"]
    assert u["medline16n0902.xml.gz"] == {"citations": 604, "with_abstract": 526}
    assert u["pubmed_abstracts.jsonl"]["abstracts"] == 3500
    t = stats_json["teacher_outputs"]["ade_gpt-4-1106-preview_json.jsonl"]
    assert t == {"responses": 4271, "finish_reason": {"content_filter": 29, "length": 9, "stop": 4233}}


def test_stats_table_runs(data_root: Path) -> None:
    res = runner.invoke(app, ["data", "stats", "--data", str(data_root)])
    assert res.exit_code == 0, res.output
    for s in ("6,821 relations", "4,272", "16,688 negative examples", "(7", "1,038 CID", "BC5CDR", "ADE-NEG policy"):
        assert s in res.stdout


def test_folds_console_script_twice_identical(tmp_path: Path, data_root: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    env = {"ADE_DISTILL_DATA": str(data_root)}
    r1 = _run("data", "folds", "--corpus", "ade", "-k", "10", "--seed", "7", "--out", str(a), env=env)
    assert r1.returncode == 0, r1.stderr
    r2 = _run("data", "folds", "--corpus", "ade", "-k", "10", "--seed", "7", "--out", str(b), env=env)
    assert r2.returncode == 0, r2.stderr
    assert a.read_bytes() == b.read_bytes()
    raw = json.loads(a.read_text())
    assert raw["k"] == 10 and raw["seed"] == 7 and len(raw["folds"]) == 10
    assert sum(len(f["example_ids"]) for f in raw["folds"]) == 4272 + 16688
    assert "10 folds of ade (seed 7)" in r1.stdout


def test_export_cdr(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "cdr.jsonl"
    res = runner.invoke(app, ["data", "export", "--corpus", "cdr", "--out", str(out), "--data", str(data_root)])
    assert res.exit_code == 0, res.output
    assert "wrote 1,500 examples of cdr" in res.stdout
    exs = list(read_examples(out))
    assert len(exs) == 1500 and sum(len(e.relations) for e in exs) == 1038 + 1012 + 1066
    assert {e.meta["split"] for e in exs} == {"train", "dev", "test"}


def test_export_ade_positive(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "ade.jsonl"
    res = runner.invoke(app, ["data", "export", "--corpus", "ade-positive", "--out", str(out),
                              "--data", str(data_root)])
    assert res.exit_code == 0, res.output
    from ade_distill.tasks import load_task

    exs = list(read_examples(out, task=load_task("ade")))
    assert len(exs) == 4272 and sum(len(e.relations) for e in exs) == 6821


def _one_line_error(res: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr


def test_error_k1_console_script(tmp_path: Path, data_root: Path) -> None:
    res = _run("data", "folds", "-k", "1", "--out", str(tmp_path / "f.json"), env={"ADE_DISTILL_DATA": str(data_root)})
    _one_line_error(res, "k must be at least 2, got 1")
    assert not (tmp_path / "f.json").exists()


def test_error_bad_env_console_script(tmp_path: Path) -> None:
    res = _run("data", "stats", env={"ADE_DISTILL_DATA": str(tmp_path / "missing")})
    _one_line_error(res, "$ADE_DISTILL_DATA=")


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ade-distill", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code), capsys.readouterr().err


def test_error_bad_data_option(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    # regression: a wrong --data (or an empty data folder) printed an empty table and exited 0
    code, err = _main(monkeypatch, capsys, "data", "stats", "--data", str(tmp_path / "nope"))
    assert code == 2 and "--data" in err and "is not a folder" in err and "Traceback" not in err
    code, err = _main(monkeypatch, capsys, "data", "stats", "--data", str(tmp_path))
    assert code == 2 and "no corpus found in" in err


def test_error_unknown_corpus_and_bad_format(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path, data_root: Path) -> None:
    code, err = _main(monkeypatch, capsys, "data", "export", "--corpus", "nope", "--out", str(tmp_path / "x.jsonl"),
                      "--data", str(data_root))
    assert code == 2 and "unknown corpus 'nope'" in err
    code, err = _main(monkeypatch, capsys, "data", "stats", "--format", "xml", "--data", str(data_root))
    assert code == 2 and "--format must be table or json, not 'xml'" in err and "Traceback" not in err


def test_usage_error_is_one_line() -> None:
    res = _run("data", "folds")  # --out missing
    assert res.returncode == 2 and "Traceback" not in res.stderr and "Missing" in res.stderr


def test_error_malformed_corpus_names_file_and_line(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = tmp_path / "data" / "ade_corpus_v2"
    shutil.copytree(FIXTURES / "ade_tiny", d)
    with (d / "DRUG-AE.rel").open("ab") as fh:
        fh.write(b"123|broken line\n")
    code, err = _main(monkeypatch, capsys, "data", "export", "--corpus", "ade", "--out", str(tmp_path / "x.jsonl"),
                      "--data", str(tmp_path / "data"))
    assert code == 2 and f"{d / 'DRUG-AE.rel'}:8: expected 8 '|'-separated fields" in err
    assert "Traceback" not in err


def test_error_malformed_teacher_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    # regression: a broken teacher-output line made `data stats` crash with a JSONDecodeError traceback
    t = tmp_path / "teacher_outputs"
    t.mkdir()
    (t / "x.jsonl").write_text('{"finish_reason": "stop"}\n{"finish_reason": \n', encoding="utf-8")
    code, err = _main(monkeypatch, capsys, "data", "stats", "--data", str(tmp_path))
    assert code == 2 and f"{t / 'x.jsonl'}:2: malformed JSON" in err
