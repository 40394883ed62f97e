"""Issue 15: `train` learns only from records whose teacher status is ok (counted in its output and model card),
and never reads a grounding match score as teacher confidence."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ade_distill.records import Example, Span, write_examples

STATUSES = ["ok", "refused", "ok", "error", "truncated", "parse_error", "no_recording"]


def _silver(examples: list[Example]) -> list[Example]:
    return [e.model_copy(update={"meta": {**e.meta, "teacher": "replay:x", "status": st}})
            for e, st in zip(examples, STATUSES, strict=False)]


def test_usable_records_keep_gold_and_ok_silver_and_count_the_rest(tiny_train):
    from ade_distill.student.usable import usable_records

    gold = tiny_train[:2]
    kept, excluded = usable_records([*gold, *_silver(tiny_train[2:9])])
    assert [e.id for e in kept] == [e.id for e in gold] + [tiny_train[2].id, tiny_train[4].id]
    assert excluded == {"error": 1, "no_recording": 1, "parse_error": 1, "refused": 1, "truncated": 1}


def test_fuzzy_match_score_of_an_older_silver_file_is_not_a_confidence():
    from ade_distill.student.usable import usable_records

    text = "Severe hypotension after propranolol."
    fuzzy = Span(id="T1", label="ADE", start=7, end=18, text="hypotension", alignment="fuzzy", score=0.92)
    voted = Span(id="T2", label="DRUG", start=25, end=36, text="propranolol", score=0.5)
    (ex,), _ = usable_records([Example(id="a", text=text, spans=(fuzzy, voted), meta={"status": "ok"})])
    assert ex.spans[0].score is None and ex.spans[0].meta["match_score"] == 0.92
    assert ex.spans[1].score == 0.5  # a real confidence (teacher votes) is kept


def test_train_cli_excludes_records_whose_teacher_status_is_not_ok(tmp_path: Path, tiny_train):
    from ade_distill.cli import app

    silver = _silver(tiny_train[:7])
    train_file = tmp_path / "silver.jsonl"
    write_examples(train_file, silver)
    res = CliRunner().invoke(app, ["train", "--task", "ade", "--train", str(train_file), "--dev", str(train_file),
                                   "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--max-length", "32",
                                   "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "5 of 7 records excluded" in res.output and "refused 1" in res.output
    prov = json.loads((tmp_path / "m" / "student.json").read_text())["provenance"]
    assert prov["train_excluded_by_teacher_status"] == {"error": 1, "no_recording": 1, "parse_error": 1,
                                                        "refused": 1, "truncated": 1}
    assert prov["train"]["examples"] == prov["dev"]["examples"] == 2  # only the 2 ok records
    assert "train_excluded_by_teacher_status" in (tmp_path / "m" / "README.md").read_text()
