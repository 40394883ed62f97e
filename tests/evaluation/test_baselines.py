"""The co-occurrence baseline over given entity mentions (ade-distill baseline): the floor a pair classifier in
the gold-entities setting should clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.evaluation.baselines import cooccurrence
from ade_distill.records import Example, Relation, Span, read_examples, write_examples
from ade_distill.tasks.spec import load_task

TEXT = "Cocaine induced seizures. Later, aspirin was given. Asthma followed aspirin."


def _doc() -> Example:
    def sp(i: str, label: str, word: str, k: int, concepts: list[str] | None) -> Span:
        start = [j for j in range(len(TEXT)) if TEXT.startswith(word, j)][k]
        return Span(id=i, label=label, start=start, end=start + len(word), text=word,
                    meta={"concepts": concepts} if concepts else {})

    spans = (sp("T1", "CHEMICAL", "Cocaine", 0, ["D1"]), sp("T2", "DISEASE", "seizures", 0, ["D2"]),
             sp("T3", "CHEMICAL", "aspirin", 0, ["D3"]), sp("T4", "DISEASE", "Asthma", 0, None),
             sp("T5", "CHEMICAL", "aspirin", 1, ["D3"]))
    return Example(id="9", text=TEXT, spans=spans,
                   relations=(Relation(head="T1", tail="T2", label="CID"),), meta={"pmid": "9"})


def test_sentence_window_links_only_pairs_that_share_a_sentence() -> None:
    out = cooccurrence(_doc(), load_task("cdr"), "sentence")
    pairs = {(r.head, r.tail) for r in out.relations}
    assert pairs == {("T1", "T2"), ("T3", "T4")}  # aspirin's anchor is its first mention, T3
    by_head = {r.head: r for r in out.relations}
    assert by_head["T1"].meta == {"head_concept": "D1", "tail_concept": "D2"}
    assert by_head["T3"].meta == {}  # asthma has no concept id: no concept pair to name
    assert [s.id for s in out.spans] == ["T1", "T2", "T3", "T4", "T5"]
    everything = cooccurrence(_doc(), load_task("cdr"), "text")
    assert len(everything.relations) == 4  # 2 chemicals x 2 diseases


def test_cli_writes_predictions_that_score_in_concept_mode(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    write_examples(gold, [_doc()])
    runner = CliRunner()
    res = runner.invoke(app, ["baseline", "--task", "cdr", "--input", str(gold), "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    assert "2 relations" in res.output
    assert len(next(iter(read_examples(tmp_path / "p.jsonl"))).relations) == 2
    res = runner.invoke(app, ["score", "--gold", str(gold), "--pred", f"cooc={tmp_path / 'p.jsonl'}", "--mode",
                              "concept", "--n-boot", "0", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert '"concept"' in res.output


@pytest.mark.parametrize("args, message", [
    (["--task", "cdr", "--window", "paragraph"], "--window must be sentence or text"),
    (["--task", "cdr", "--out-is-input"], "is the input file"),
    (["--task", "ade"], "no record has both DRUG and ADE mentions"),  # the wrong task: nothing to link
])
def test_cli_refuses_misuse(tmp_path: Path, args: list[str], message: str) -> None:
    gold = tmp_path / "gold.jsonl"
    write_examples(gold, [_doc()])
    before = gold.read_bytes()
    out = gold if "--out-is-input" in args else tmp_path / "p.jsonl"
    extra = [a for a in args if a != "--out-is-input"]
    res = CliRunner().invoke(app, ["baseline", "--input", str(gold), "--out", str(out), *extra])
    assert res.exit_code != 0
    assert message in str(res.exception)  # a ConfigError: `ade-distill` prints it as one line
    assert gold.read_bytes() == before  # the input is untouched
    assert not (tmp_path / "p.jsonl").exists()
