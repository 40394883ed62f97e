"""Issue 16: ``ade-distill aggregate`` — predictions → the (drug, adverse effect) signal table. Counts are checked
against a predictions fixture written by hand (case and whitespace variants, a PMID repeated over sentences and
files, a document without a year, PMIDs that sort differently as numbers and as strings)."""

from __future__ import annotations

import csv
import sys

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example, Relation, Span
from ade_distill.signals.table import (
    aggregate_pairs,
    iter_predictions,
    normalize_term,
    with_synonyms,
    write_table,
)
from ade_distill.tasks.spec import TaskSpec, load_task

# Hand-written prediction records (offsets counted by hand; read_examples checks them against the text).
P1 = """\
{"id": "100_s0", "text": "Aspirin caused gastric bleeding.", "meta": {"pmid": "100", "year": 2001}, "spans": [{"id": "d", "label": "DRUG", "start": 0, "end": 7, "text": "Aspirin"}, {"id": "a", "label": "ADE", "start": 15, "end": 31, "text": "gastric bleeding"}], "relations": [{"head": "d", "tail": "a", "label": "ADE"}]}
{"id": "100_s1", "text": "ASPIRIN  caused Gastric   bleeding again.", "meta": {"pmid": "100", "year": 2001}, "spans": [{"id": "d", "label": "DRUG", "start": 0, "end": 7, "text": "ASPIRIN"}, {"id": "a", "label": "ADE", "start": 16, "end": 34, "text": "Gastric   bleeding"}], "relations": [{"head": "d", "tail": "a", "label": "ADE"}]}
{"id": "300_s0", "text": "Warfarin caused hemorrhage.", "meta": {"doc_id": "300"}, "spans": [{"id": "d", "label": "DRUG", "start": 0, "end": 8, "text": "Warfarin"}, {"id": "a", "label": "ADE", "start": 16, "end": 26, "text": "hemorrhage"}], "relations": [{"head": "d", "tail": "a", "label": "ADE"}]}
{"id": "100_s2", "text": "No events were seen.", "meta": {"pmid": "100", "year": 2001}}
"""
P2 = """\
{"id": "200_s0", "text": "Aspirin led to gastric bleeding and rash.", "meta": {"pmid": "200", "year": 2003}, "spans": [{"id": "d", "label": "DRUG", "start": 0, "end": 7, "text": "Aspirin"}, {"id": "a1", "label": "ADE", "start": 15, "end": 31, "text": "gastric bleeding"}, {"id": "a2", "label": "ADE", "start": 36, "end": 40, "text": "rash"}], "relations": [{"head": "d", "tail": "a1", "label": "ADE"}, {"head": "d", "tail": "a2", "label": "ADE"}]}
{"id": "1000_s3", "text": "Rash after aspirin.", "meta": {"pmid": "1000", "year": 2003}, "spans": [{"id": "a", "label": "ADE", "start": 0, "end": 4, "text": "Rash"}, {"id": "d", "label": "DRUG", "start": 11, "end": 18, "text": "aspirin"}], "relations": [{"head": "d", "tail": "a", "label": "ADE"}]}
"""
# By hand: (aspirin, gastric bleeding) in 100_s0, 100_s1, 200_s0 → 3 mentions in PMIDs 100 (2001), 200 (2003);
# (aspirin, rash) in 200_s0, 1000_s3 → 2 mentions in 200, 1000 (both 2003); (warfarin, hemorrhage) once in 300
# (no year). Both aspirin pairs have 2 documents; more mentions first.
EXPECTED_CSV = [
    {"drug": "aspirin", "ade": "gastric bleeding", "n_mentions": "3", "n_documents": "2", "first_year": "2001",
     "last_year": "2003", "years": "2001:1;2003:1", "pmids": "100;200"},
    {"drug": "aspirin", "ade": "rash", "n_mentions": "2", "n_documents": "2", "first_year": "2003",
     "last_year": "2003", "years": "2003:2", "pmids": "200;1000"},
    {"drug": "warfarin", "ade": "hemorrhage", "n_mentions": "1", "n_documents": "1", "first_year": "",
     "last_year": "", "years": "", "pmids": "300"},
]


@pytest.fixture(scope="module")
def ade_task() -> TaskSpec:
    return load_task("ade")


@pytest.fixture()
def preds(tmp_path):
    (tmp_path / "p1.jsonl").write_text(P1, encoding="utf-8")
    (tmp_path / "p2.jsonl").write_text(P2, encoding="utf-8")
    return [tmp_path / "p1.jsonl", tmp_path / "p2.jsonl"]


def test_counts_match_the_hand_computed_table(preds, ade_task):
    t = aggregate_pairs(iter_predictions(preds, task=ade_task), ade_task)
    assert (t.records, t.documents, t.relations, t.other_relations) == (6, 4, 6, 0)
    got = [(r.head, r.tail, r.n_mentions, r.n_documents, r.pmids, r.years, r.first_year, r.last_year)
           for r in t.rows]
    assert got == [
        ("aspirin", "gastric bleeding", 3, 2, ("100", "200"), {2001: 1, 2003: 1}, 2001, 2003),
        ("aspirin", "rash", 2, 2, ("200", "1000"), {2003: 2}, 2003, 2003),
        ("warfarin", "hemorrhage", 1, 1, ("300",), {}, None, None),
    ]
    assert [r.head for r in aggregate_pairs(iter_predictions(preds), ade_task, min_documents=2).rows] == ["aspirin"] * 2


def test_csv_and_parquet_files(preds, ade_task, tmp_path):
    t = aggregate_pairs(iter_predictions(preds), ade_task)
    with open(write_table(t, tmp_path / "t.csv"), encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == EXPECTED_CSV
    pq = pytest.importorskip("pyarrow.parquet")
    rows = pq.read_table(write_table(t, tmp_path / "t.parquet")).to_pylist()
    assert [(r["drug"], r["ade"], r["n_documents"], r["pmids"], dict(r["years"])) for r in rows] == [
        ("aspirin", "gastric bleeding", 2, ["100", "200"], {2001: 1, 2003: 1}),
        ("aspirin", "rash", 2, ["200", "1000"], {2003: 2}),
        ("warfarin", "hemorrhage", 1, ["300"], {}),
    ]
    assert rows[2]["first_year"] is None


def test_parquet_without_pyarrow_says_how_to_install(preds, ade_task, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    t = aggregate_pairs(iter_predictions(preds), ade_task)
    with pytest.raises(ConfigError, match=r"ade-distill\[parquet\]"):
        write_table(t, tmp_path / "t.parquet")
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        write_table(t, tmp_path / "t.xlsx")


def test_normalisation_synonyms_and_other_labels(ade_task):
    assert normalize_term("  Acute\tRenal \n Failure ") == "acute renal failure"
    text = "Acetylsalicylic  acid caused rash."
    ex = Example(id="9_s0", text=text, meta={"pmid": "9"}, spans=(
        Span(id="d", label="DRUG", start=0, end=21, text="Acetylsalicylic  acid"),
        Span(id="a", label="ADE", start=29, end=33, text="rash")),
        relations=(Relation(head="d", tail="a", label="ADE"), Relation(head="d", tail="a", label="OTHER")))
    t = aggregate_pairs([ex], ade_task, normalize=with_synonyms({"acetylsalicylic acid": "Aspirin"}))
    assert [(r.head, r.tail) for r in t.rows] == [("aspirin", "rash")] and t.other_relations == 1
    assert aggregate_pairs([ex], ade_task).rows[0].head == "acetylsalicylic acid"


def test_the_same_file_twice_is_refused(preds):
    with pytest.raises(ConfigError, match="given twice"):
        list(iter_predictions([preds[0], preds[0]]))


def test_cli_aggregate(preds, tmp_path):
    out = tmp_path / "signals.csv"
    r = CliRunner().invoke(app, ["aggregate", "--pred", str(preds[0]), "--pred", str(preds[1]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "6 records from 4 documents: 6 relations → 3 pairs" in r.output and "gastric bleeding" in r.output
    with open(out, encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == EXPECTED_CSV
    r = CliRunner().invoke(app, ["aggregate", "--pred", str(tmp_path), "--out", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0, r.output  # a folder stands for its JSONL files


def test_ray_parquet_output_is_read(preds, ade_task, tmp_path):
    # regression: aggregate globbed only *.jsonl and read JSONL only, so predict --engine ray --out-format parquet
    # output could not be aggregated
    pytest.importorskip("pyarrow.parquet")
    from ade_distill.records import read_examples
    from ade_distill.student.shards import write_records_atomic

    ray_out = tmp_path / "ray_out"
    ray_out.mkdir()
    (ray_out / "a.jsonl").write_text(P1, encoding="utf-8")
    write_records_atomic(ray_out / "b.parquet", list(read_examples(preds[1])), "parquet")
    (ray_out / "manifest.json").write_text("{}", encoding="utf-8")  # the manifest is not a prediction file
    t = aggregate_pairs(iter_predictions([ray_out], task=ade_task), ade_task)
    assert (t.records, t.documents, t.relations) == (6, 4, 6)
    t2 = aggregate_pairs(iter_predictions([ray_out / "a.jsonl", ray_out / "b.parquet"]), ade_task)
    assert t2.rows == t.rows
    out = tmp_path / "signals.csv"
    r = CliRunner().invoke(app, ["aggregate", "--pred", str(ray_out), "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out, encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == EXPECTED_CSV
    # labels are checked against the task in Parquet too
    bad = [read_examples(preds[1]).__next__().model_copy(update={"relations": ()})]
    bad = [bad[0].model_copy(update={"spans": tuple(s.model_copy(update={"label": "CHEM"}) for s in bad[0].spans)})]
    write_records_atomic(tmp_path / "bad.parquet", bad, "parquet")
    with pytest.raises(DataError, match="CHEM"):
        list(iter_predictions([tmp_path / "bad.parquet"], task=ade_task))
