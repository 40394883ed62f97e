"""Ensemble prediction (`EnsembleExtractor`, `predict --model A --model B ...`, the spaCy component) is the vote
`reproduce` computes on the same students' predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.experiments.protocol import strip_labels
from ade_distill.experiments.reproduce import ensemble_vote, member_name
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.student.ensemble import EnsembleExtractor, votes_needed
from ade_distill.student.model import StudentExtractor
from tests.student.conftest import with_thresholds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def members(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("ensemble")
    return [trained_dir, with_thresholds(trained_dir, tmp / "low", 0.2, 0.2),
            with_thresholds(trained_dir, tmp / "high", 0.8, 0.8)]


@pytest.fixture(scope="module")
def sentences(ade_gold: list[Example]) -> list[Example]:
    return ade_gold[:60] + ade_gold[-20:]  # relations and ADE-NEG sentences, gold labels and meta included


def _reproduce_vote(paths: list[Path], test: list[Example], min_votes: int, boundary: str = "exact") -> list[Example]:
    """What reproduce does: every member predicts the label-stripped test set, then ensemble_vote."""
    preds = {member_name(13 + k): StudentExtractor.from_pretrained(p).predict(strip_labels(test))
             for k, p in enumerate(paths)}
    return ensemble_vote(preds, test, min_votes, boundary)


def _content(examples: list[Example]) -> list[tuple]:
    return [(e.id, e.text, e.spans, e.relations) for e in examples]


def _rels(examples: list[Example]) -> set[tuple]:
    out = set()
    for e in examples:
        by = e.span_by_id()
        out |= {(e.id, by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end) for r in e.relations}
    return out


def test_votes_needed_is_reproduces_default() -> None:
    assert [votes_needed(n, None) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert votes_needed(3, 1) == 1
    with pytest.raises(ConfigError, match="min_votes=4 exceeds"):
        votes_needed(3, 4)
    with pytest.raises(ConfigError, match="boundary"):
        votes_needed(3, None, "fuzzy")


def test_ensemble_predict_equals_the_vote_reproduce_computes(members: list[Path], sentences: list[Example]) -> None:
    ens = EnsembleExtractor.from_pretrained(members)
    assert ens.min_votes == 2
    got = ens.predict(sentences, batch_size=16)
    want = _reproduce_vote(members, sentences, 2)
    assert _content(got) == _content(want)
    # the vote is not trivial: the members disagree, and the majority differs from the loosest member
    singles = [_rels(StudentExtractor.from_pretrained(p).predict(sentences)) for p in members]
    assert _rels(got) and _rels(got) != singles[1] and len(set(map(frozenset, singles))) == 3
    assert _rels(got) == {k for k in set().union(*singles) if sum(k in s for s in singles) >= 2}
    # the input's meta comes back (gold meta included), with the members named
    assert got[0].meta["pmid"] == sentences[0].meta["pmid"]
    assert [m["model"] for m in got[0].meta["predicted_by"]["ensemble"]] == [str(p) for p in members]
    assert all(r.score in (2 / 3, 1.0) or r.score == pytest.approx(0.6667) for e in got for r in e.relations)


def test_other_vote_settings_equal_reproduce(members: list[Path], sentences: list[Example]) -> None:
    ens = EnsembleExtractor.from_pretrained(members, min_votes=1, boundary="consensus")
    member_preds = ens.member_predictions(sentences)
    got = ens.vote(sentences, member_preds)
    reproduced = ensemble_vote({member_name(k): v for k, v in enumerate(member_preds.values())}, sentences, 1,
                               "consensus")
    assert _content(got) == _content(reproduced)
    assert _content(got) == _content(_reproduce_vote(members, sentences, 1, "consensus"))


def test_teacher_status_of_input_records_does_not_skip_them(members: list[Path], sentences: list[Example]) -> None:
    refused = [e.model_copy(update={"meta": {**e.meta, "status": "refused"}}) for e in sentences[:20]]
    ens = EnsembleExtractor.from_pretrained(members, min_votes=1)
    got = ens.predict(refused)
    assert _rels(got) == _rels(ens.predict(sentences[:20])) and _rels(got)
    assert got[0].meta["status"] == "refused"


def test_cli_predict_with_several_models(members: list[Path], sentences: list[Example], tmp_path: Path) -> None:
    from ade_distill.cli import app

    inp = tmp_path / "in.jsonl"
    write_examples(inp, sentences[:30])
    out = tmp_path / "ens.jsonl"
    args = ["predict", *sum((["--model", str(p)] for p in members), []), "--input", str(inp), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--min-votes", "2"])
    assert res.exit_code == 0, res.output
    want = EnsembleExtractor.from_pretrained(members, min_votes=2).predict(list(read_examples(inp)))
    assert _content(list(read_examples(out))) == _content(want)
    res = CliRunner().invoke(app, [*args, "--min-votes", "4"])
    assert isinstance(res.exception, ConfigError) and "min_votes=4 exceeds" in str(res.exception)


def test_spacy_component_with_an_ensemble(members: list[Path], sentences: list[Example]) -> None:
    import spacy

    import ade_distill.student.spacy_component  # noqa: F401 - registers the factory

    nlp = spacy.blank("en")
    nlp.add_pipe("ade_distill", config={"model": [str(p) for p in members], "min_votes": 2, "batch_size": 8})
    texts = [e.text for e in sentences[:30]]
    docs = list(nlp.pipe(texts))
    want = EnsembleExtractor.from_pretrained(members).predict([Example(id=str(i), text=t) for i, t in enumerate(texts)])
    assert sum(len(d._.relations) for d in docs) == sum(len(w.relations) for w in want) > 0
    for d, w in zip(docs, want, strict=True):  # spaCy snaps spans outward to its tokens
        by = w.span_by_id()
        pairs = sorted((by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end) for r in w.relations)
        spacy_pairs = sorted((r["head"].start_char, r["head"].end_char, r["tail"].start_char, r["tail"].end_char)
                             for r in d._.relations)
        for hs, he, ts, te in pairs:
            assert any(shs <= hs and he <= she and sts <= ts and te <= ste for shs, she, sts, ste in spacy_pairs)
