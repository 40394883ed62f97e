"""The task gallery (issue 19): every entry is consistent, and every shipped task goes label → train → predict →
score through the CLI on a slice of its own gold corpus, with its own scorer modes. The teacher is the loopback
stand-in server answering each text with that text's gold relations in the task's output keys (the plumbing is
under test here, not the labels); the drug-dose config also runs through `reproduce`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.data.corpora import CORPORA, load_corpus
from ade_distill.evaluation.matching import MODES
from ade_distill.experiments.config import load_config
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.tasks import BUILTIN_TASKS
from ade_distill.tasks.gallery import load_gallery
from ade_distill.tasks.spec import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
GALLERY = {e.task: e for e in load_gallery()}


def test_every_shipped_task_is_in_the_gallery_with_a_valid_entry() -> None:
    assert sorted(GALLERY) == sorted(BUILTIN_TASKS)
    assert len(GALLERY) >= 3 and sum(1 for e in GALLERY.values() if e.spec().unit == "sentence") >= 2
    for entry in GALLERY.values():
        assert entry.corpus in CORPORA and set(entry.scoring) <= set(MODES), entry
        cfg = load_config(ROOT / entry.config)
        assert (cfg.task, cfg.scoring.modes[0]) == (entry.task, entry.scoring[0]), entry.task
        assert cfg.student.get("architecture", entry.spec().architecture) == entry.student, entry.task
        assert cfg.corpus == entry.corpus or cfg.corpus.startswith(f"{entry.corpus}-"), entry.task  # cdr-test


def test_tasks_command_lists_the_gallery() -> None:
    res = CliRunner().invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for entry in GALLERY.values():
        assert entry.task in res.output and entry.corpus in res.output
    assert "DOSE: DRUG → DOSE" in res.output and "concept, text" in res.output


def test_drug_dose_records_come_from_drug_dose_rel() -> None:
    docs = load_corpus("ade-dose")
    ade_ids = [e.id for e in load_corpus("ade-positive")]
    assert [e.id for e in docs] == ade_ids  # the adverse-effect sentences, with the ADE corpus' ids
    pos = [e for e in docs if e.relations]
    assert (len(pos), sum(len(e.relations) for e in pos)) == (213, 279)
    assert all(e.meta["has_dose"] == bool(e.relations) for e in docs)
    ex = next(e for e in pos if e.id == "10327035_p0")
    by_id = ex.span_by_id()
    assert [(by_id[r.head].text, by_id[r.tail].text, r.label) for r in ex.relations] == \
        [("methotrexate", "1500 mg/m2", "DOSE")]
    assert {s.label for e in pos for s in e.spans} == {"DRUG", "DOSE"}


def _slice(corpus: str, n_pos: int, n_neg: int) -> list[Example]:
    docs = load_corpus(corpus)
    return [d for d in docs if d.relations][:n_pos] + [d for d in docs if not d.relations][:n_neg]


def _gold_answers(spec: TaskSpec, docs: list[Example]) -> dict[str, dict]:
    """Stand-in recordings: each text answered with its gold relations as the task's JSON output."""
    hk, tk = spec.entity(spec.head_label).key, spec.entity(spec.tail_label).key
    out = {}
    for d in docs:
        by_id = d.span_by_id()
        rels = [{hk: by_id[r.head].text, tk: by_id[r.tail].text} for r in d.relations]
        out[d.text] = {"text": d.text, "finish_reason": "stop", "function_call": None, "model": "standin",
                       "content": json.dumps({"relations": rels}),
                       "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320}}
    return out


SLICES = {"ade": (16, 4), "cdr": (8, 0), "drug_dose": (16, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(GALLERY))
def test_each_gallery_task_labels_trains_predicts_and_scores(task: str, tmp_path: Path) -> None:
    from ade_distill.teacher.standin import StandinServer

    entry = GALLERY[task]
    spec = entry.spec()
    docs = _slice(entry.corpus, *SLICES[task])
    train, test = docs[: len(docs) // 2], docs[len(docs) // 2 :]
    write_examples(tmp_path / "gold.jsonl", test)
    write_examples(tmp_path / "inputs.jsonl", [Example(id=d.id, text=d.text, meta=d.meta) for d in train])
    runner = CliRunner()
    env = {"ADE_DISTILL_API_KEY": "sk-test-not-a-real-key"}
    with StandinServer(recordings=_gold_answers(spec, train)) as srv:
        res = runner.invoke(app, ["label", "--task", task, "--teacher", f"openai-compatible:{srv.url}:standin",
                                  "--input", str(tmp_path / "inputs.jsonl"), "--out", str(tmp_path / "silver.jsonl"),
                                  "--no-progress"], env=env)
        assert res.exit_code == 0, res.output
    silver = list(read_examples(tmp_path / "silver.jsonl"))
    assert len(silver) == len(train) and sum(len(s.relations) for s in silver) > 0
    assert {s.label for e in silver for s in e.spans} <= set(spec.entity_labels)
    train_file = tmp_path / "silver.jsonl"
    if entry.student == "pair_classifier":  # it classifies pairs of given mentions: train on the gold mentions
        write_examples(tmp_path / "train.jsonl", train)
        train_file = tmp_path / "train.jsonl"
    res = runner.invoke(app, ["train", "--task", task, "--architecture", entry.student, "--train", str(train_file),
                              "--out", str(tmp_path / "model"), "--epochs", "1", "--batch-size", "4",
                              "--max-length", "128", "--encoder", "minilm", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "model" / "student.json").read_text())["architecture"] == entry.student
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "gold.jsonl"),
                              "--out", str(tmp_path / "pred.jsonl")])
    assert res.exit_code == 0, res.output
    preds = list(read_examples(tmp_path / "pred.jsonl"))
    assert [p.id for p in preds] == [t.id for t in test]
    assert all(r.label == spec.primary.label for p in preds for r in p.relations)
    res = runner.invoke(app, ["score", "--gold", str(tmp_path / "gold.jsonl"), "--pred",
                              f"student={tmp_path / 'pred.jsonl'}", "--mode", ",".join(entry.scoring),
                              "--n-boot", "0", "--format", "json"])
    assert res.exit_code == 0, res.output
    scored = json.loads(res.output[res.output.index("{"):])
    for mode in entry.scoring:
        micro = scored["results"]["student"][mode]["relation"]["micro"]
        assert 0.0 <= micro["f1"] <= 1.0 and micro["tp"] + micro["fn"] == sum(len(t.relations) for t in test), mode


@pytest.mark.slow
def test_drug_dose_config_reproduces_with_a_standin_teacher(tmp_path: Path) -> None:
    """configs/drug_dose.yaml with the OpenAI endpoint swapped for the stand-in and a slice of ade-dose."""
    from ade_distill.teacher.standin import StandinServer

    docs = _slice("ade-dose", 24, 24)
    write_examples(tmp_path / "gold.jsonl", docs)
    raw = yaml.safe_load((ROOT / "configs" / "drug_dose.yaml").read_text())
    assert raw["teachers"][0]["spec"].startswith("openai:")
    with StandinServer(recordings=_gold_answers(GALLERY["drug_dose"].spec(), docs)) as srv:
        raw["teachers"][0]["spec"] = f"openai-compatible:{srv.url}:gpt-4o-mini"
        raw.update({"corpus": str(tmp_path / "gold.jsonl"), "folds": {"k": 2, "seed": 13},
                    "student": {"encoder": "minilm", "epochs": 1, "batch_size": 8, "max_length": 64, "lr": 1e-4,
                                "head_lr": 1e-3, "patience": 0, "threads": 2},
                    "runs_dir": str(tmp_path / "runs"), "report_dir": str(tmp_path / "reports")})
        raw["scoring"]["n_boot"] = 20
        (tmp_path / "dose.yaml").write_text(yaml.safe_dump(raw))
        res = CliRunner().invoke(app, ["reproduce", str(tmp_path / "dose.yaml"), "--folds", "1", "--quiet"],
                                 env={"ADE_DISTILL_API_KEY": "sk-test-not-a-real-key"})
        assert res.exit_code == 0, res.output
        assert srv.total_requests > 0
    results = json.loads((tmp_path / "runs" / "drug_dose" / "report-partial" / "results.json").read_text())
    assert {"teacher:gpt-4o-mini", "student", "supervised"} <= set(results["systems"])
    assert results["per_fold"][0]["silver"]["relations_out"] > 0
    for system in ("teacher:gpt-4o-mini", "student", "supervised"):
        for mode in ("strict", "lenient"):
            assert 0.0 <= results["pooled"]["results"][system][mode]["relation"]["micro"]["f1"] <= 1.0


def test_a_dose_sentence_missing_from_drug_ae_keeps_its_own_id(tmp_path: Path) -> None:
    from ade_distill.data.ade_corpus import read_drug_dose

    s1, s2 = "Aspirin 100 mg caused a rash.", "She took digoxin 0.25 mg daily."
    (tmp_path / "DRUG-AE.rel").write_text(f"11|{s1}|rash|30|34|Aspirin|10|17\n", encoding="utf-8")
    (tmp_path / "DRUG-DOSE.rel").write_text(f"11|{s1}|100 mg|18|24|Aspirin|10|17\n"
                                            f"22|{s2}|0.25 mg daily|30|43|digoxin|22|29\n", encoding="utf-8")
    docs = read_drug_dose(tmp_path)
    assert [(d.id, d.meta["has_dose"]) for d in docs] == [("11_p0", True), ("22_d0", True)]
    by_id = docs[1].span_by_id()
    assert [(by_id[r.head].text, by_id[r.tail].text) for r in docs[1].relations] == [("digoxin", "0.25 mg daily")]
