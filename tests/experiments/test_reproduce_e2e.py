"""End-to-end reproduction runs on small real subsets: the offline replay protocol through the real CLI
(report, rescoring, resume), and the paper's online config up to the network against the loopback stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.records import read_examples, write_examples

ROOT = Path(__file__).resolve().parents[2]
TINY_STUDENT = {"encoder": "minilm", "epochs": 1, "batch_size": 8, "max_length": 64, "lr": 1e-4,
                "head_lr": 1e-3, "patience": 0, "threads": 2}

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, gold_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "ade_gpt4_replay.yaml").read_text())
    raw.update({"corpus": str(gold_path), "student": TINY_STUDENT, "folds": {"k": 2, "seed": 13},
                "runs_dir": str(tmp_path / "runs"), "report_dir": str(tmp_path / "reports")})
    raw["scoring"]["n_boot"] = 50
    raw.update(changes)
    p = tmp_path / f"{raw['name']}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_replay_reproduction_report_rescore_and_resume(tmp_path: Path, ade_first_pmids: Callable) -> None:
    gold_path = tmp_path / "gold.jsonl"
    write_examples(gold_path, ade_first_pmids(24))
    cfg = _config(tmp_path, gold_path)
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "teacher:gpt-4-json" in res.output and "student" in res.output and "supervised" in res.output

    report = tmp_path / "reports" / "ade_gpt4_replay"
    results = json.loads((report / "results.json").read_text())
    assert results["folds_done"] == [0, 1]
    assert results["systems"] == ["teacher:gpt-4-json", "student", "supervised"]
    n_pos = sum(1 for e in read_examples(gold_path) if e.relations)
    assert results["n_scored"] == n_pos
    for fold in results["per_fold"]:  # protocol guard stated and clean
        assert all(c["clean"] for c in fold["contamination"].values())
    for fig in ("f1_by_system.png", "cost_and_speed.png"):
        assert (report / "figures" / fig).stat().st_size > 1000
    # the error browser of the pooled predictions, its counts those of the report's strict error analysis
    page = (report / "browse.html").read_text(encoding="utf-8")
    data = json.loads(page.split('id="browse-data">', 1)[1].split("</script>", 1)[0])
    assert data["systems"] == results["systems"] and len(data["sentences"]) == n_pos
    assert {s: {lvl: {c: n for c, n in cs.items() if c != "correct"} for lvl, cs in data["counts"][s].items()}
            for s in data["systems"]} == results["errors_strict"]
    md = (report / "README.md").read_text()
    assert "ade-distill reproduce" in md and "Paired tests" in md and "clean=True" in md
    from ade_distill.provenance import describe, software_provenance

    assert results["software"] == software_provenance() and f"- Code: {describe(results['software'])}" in md
    assert set(results["software"]["libraries"]) == {"torch", "transformers", "tokenizers", "datasets", "openai"}
    models = tmp_path / "runs" / "models"
    markers = [*models.glob("*/stage.json"), *report.glob("folds/*/result/stage.json")]
    assert len(markers) >= 6  # 2 folds × (student, supervised, fold result)
    for marker in markers:
        assert json.loads(marker.read_text())["software"] == software_provenance()  # compared on reuse
    cost = results["cost"]["systems"]["teacher:gpt-4-json"]
    assert cost["tokens_per_1000"] > 0 and cost["usd_per_1000"] > 0

    # Rescoring the committed prediction files reproduces the pooled results exactly.
    exported = tmp_path / "gold_pos.jsonl"
    r = runner.invoke(app, ["data", "export", "--corpus", str(gold_path), "--only-with-relations", "--out", str(exported)])
    assert r.exit_code == 0, r.output
    args = ["score", "--gold", str(exported), "--n-boot", "50", "--seed", "0", "--format", "json"]
    for m in results["modes"]:
        args += ["--mode", m]
    for s in results["systems"]:
        args += ["--pred", f"{s}={report / 'predictions' / (s.replace(':', '_') + '.jsonl')}"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    rescored = json.loads(r.stdout)
    assert rescored["results"] == results["pooled"]["results"]
    assert rescored["paired"] == results["pooled"]["paired"]

    # A rerun reuses every finished stage: no model is trained again and the numbers are identical.
    models = sorted(p.name for p in (tmp_path / "runs" / "models").iterdir())
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "runs" / "models").rglob("model.safetensors")}
    res2 = runner.invoke(app, ["reproduce", str(cfg), "--quiet"])
    assert res2.exit_code == 0, res2.output
    assert sorted(p.name for p in (tmp_path / "runs" / "models").iterdir()) == models
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
    again = json.loads((report / "results.json").read_text())
    assert again["pooled"]["results"] == results["pooled"]["results"]

    # A partial run (the README demo's --folds 1) reports under runs/ and leaves the full report alone.
    before = (report / "results.json").read_bytes()
    res3 = runner.invoke(app, ["reproduce", str(cfg), "--folds", "1", "--quiet"])
    assert res3.exit_code == 0, res3.output
    assert (report / "results.json").read_bytes() == before
    assert (tmp_path / "runs" / "ade_gpt4_replay" / "report-partial" / "README.md").is_file()

    # Another machine: no runs/ at all, only the committed report. --reuse-reported-folds resumes from the fold
    # results kept in the report, trains nothing, and reproduces the numbers.
    import shutil

    shutil.rmtree(tmp_path / "runs")
    res4 = runner.invoke(app, ["reproduce", str(cfg), "--quiet", "--reuse-reported-folds"])
    assert res4.exit_code == 0, res4.output
    assert not (tmp_path / "runs" / "models").exists()
    final = json.loads((report / "results.json").read_text())
    assert final["pooled"]["results"] == results["pooled"]["results"]


def test_paper_config_runs_up_to_the_network(tmp_path: Path, ade_first_pmids: Callable, data_root: Path) -> None:
    """configs/paper_gpt35_pubmedbert.yaml with the OpenAI endpoint swapped for the loopback stand-in (serving the
    recorded GPT-4 answers for ADE sentences, an empty answer for anything else) and MiniLM for PubMedBERT,
    which cannot be downloaded here. Everything else — unlabeled-abstract silver, sentence splitting, the
    OpenAI client, contamination filtering, training, scoring, report — is the real code path."""
    from ade_distill.data.unlabeled import iter_documents, to_sentences
    from ade_distill.teacher.backends.replay import load_recordings
    from ade_distill.teacher.standin import StandinServer

    gold_path = tmp_path / "gold.jsonl"
    write_examples(gold_path, ade_first_pmids(16))
    unlabeled = tmp_path / "abstracts.jsonl"
    lines = (data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl").read_text().splitlines()[:6]
    unlabeled.write_text("\n".join(lines) + "\n")
    raw = yaml.safe_load((ROOT / "configs" / "paper_gpt35_pubmedbert.yaml").read_text())
    assert raw["teachers"][0]["spec"].startswith("openai:") and raw["student"]["encoder"] == "pubmedbert"
    # The server answers ADE sentences with the recorded GPT-4 output and each unlabeled sentence with a
    # made-up relation between its first and last words (this test checks the plumbing, not the labels).
    recordings, _ = load_recordings(data_root / "teacher_outputs" / "ade_gpt-4-1106-preview_json.jsonl")
    for sent in list(to_sentences(iter_documents(unlabeled)))[:40]:
        words = sent.text.rstrip(".").split()
        item = {"drug": words[0], "ade": words[-1]}
        recordings[sent.text] = {"text": sent.text, "finish_reason": "stop", "function_call": None,
                                 "content": json.dumps({"relations": [item]}), "model": "gpt-3.5-turbo-0125",
                                 "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320}}
    with StandinServer(recordings=recordings) as srv:
        raw["teachers"][0]["spec"] = f"openai-compatible:{srv.url}:gpt-3.5-turbo-0125"
        raw["silver"]["unlabeled_path"] = str(unlabeled)
        raw["silver"]["max_unlabeled_sentences"] = 40
        raw.update({"corpus": str(gold_path), "student": TINY_STUDENT, "folds": {"k": 2, "seed": 13},
                    "runs_dir": str(tmp_path / "runs"), "report_dir": str(tmp_path / "reports")})
        raw["scoring"]["n_boot"] = 20
        cfg = tmp_path / "paper.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        res = CliRunner().invoke(app, ["reproduce", str(cfg), "--folds", "1", "--quiet"],
                                 env={"ADE_DISTILL_API_KEY": "sk-test-not-a-real-key"})
        assert res.exit_code == 0, res.output
        assert srv.total_requests >= 40
    assert not (tmp_path / "reports" / "paper_gpt35_pubmedbert").exists()  # a partial run reports under runs/
    partial = tmp_path / "runs" / "paper_gpt35_pubmedbert" / "report-partial"
    results = json.loads((partial / "results.json").read_text())
    assert results["folds_done"] == [0]
    silver = results["per_fold"][0]["silver"]
    assert silver["records_in"] == 40 and silver["relations_out"] > 0 and results["teacher_summaries"]
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"sk-test-not-a-real-key" not in f.read_bytes(), f
