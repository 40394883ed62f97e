"""spaCy component on real sentences; `ade-distill train` / `predict` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.errors import DataError
from ade_distill.records import Example, read_examples, write_examples

pytestmark = pytest.mark.slow


def test_spacy_component_sets_ents_and_relations(trained_dir: Path, tiny_train: list[Example]) -> None:
    import spacy

    import ade_distill.student.spacy_component  # noqa: F401 - registers the factory

    nlp = spacy.blank("en")
    nlp.add_pipe("ade_distill", config={"model": str(trained_dir), "batch_size": 8})
    texts = [e.text for e in tiny_train[:10]]
    docs = list(nlp.pipe(texts))
    assert docs[0].text == texts[0]
    gold = {(s.text, s.label) for e in tiny_train[:10] for s in e.spans}
    found = {(ent.text, ent.label_) for d in docs for ent in d.ents}
    assert len(gold & found) >= 0.6 * len(gold)
    rels = [r for d in docs for r in d._.relations]
    assert rels and all(r["head"].label_ == "DRUG" and r["tail"].label_ == "ADE" for r in rels)
    assert all(0 <= r["score"] <= 1 for r in rels)
    assert all(s._.score is not None for d in docs for s in d.spans["ade_distill"])
    doc = nlp("Intravenous azithromycin-induced ototoxicity.")  # __call__ as well as pipe
    assert {e.label_ for e in doc.ents} <= {"DRUG", "ADE"}


def test_cli_train_and_predict(tmp_path: Path, tiny_train: list[Example], trained_dir: Path) -> None:
    from ade_distill.cli import app

    train_file = tmp_path / "train.jsonl"
    write_examples(train_file, tiny_train[:8])
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--task", "ade", "--train", str(train_file), "--dev", str(train_file),
                              "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--max-length", "48",
                              "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    abstracts = tmp_path / "abstracts.jsonl"
    abstracts.write_text(json.dumps({"pmid": "1", "text": " ".join(e.text for e in tiny_train[:6])}) + "\n")
    out = tmp_path / "preds.jsonl"
    res = runner.invoke(app, ["predict", "--model", str(trained_dir), "--input", str(abstracts), "--out", str(out)])
    assert res.exit_code == 0, res.output
    (pred,) = list(read_examples(out))
    assert pred.id == "1" and pred.meta["sentences"] >= 6 and pred.relations


def test_cli_bad_input_names_file_and_line(tmp_path: Path, tiny_train: list[Example]) -> None:
    from ade_distill.cli import app

    bad = tmp_path / "bad.jsonl"
    write_examples(bad, tiny_train[:2])
    with bad.open("a") as fh:
        fh.write('{"id": "x", "text": "abc", "spans": [{"id": "T1", "label": "DRUG", "start": 0, "end": 9, '
                 '"text": "abcdefghi"}]}\n')
    res = CliRunner().invoke(app, ["train", "--train", str(bad), "--out", str(tmp_path / "m")])
    assert isinstance(res.exception, DataError)
    assert f"{bad}:3" in str(res.exception) and "'x'" in str(res.exception)
    res = CliRunner().invoke(app, ["train", "--train", str(bad), "--epochs", "0", "--out", str(tmp_path / "m")])
    assert "epochs=0" in str(res.exception)
    assert not (tmp_path / "m").exists()
