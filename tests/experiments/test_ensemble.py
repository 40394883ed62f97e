"""The seed-ensemble lever (issue 7): config validation, the vote over members, stable keys of configs without
an ensemble, and a tiny real run with three members."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ade_distill.errors import ConfigError
from ade_distill.experiments.config import EnsembleConfig, load_config
from ade_distill.experiments.reproduce import STUDENT, Reproduction, RunOptions, ensemble_vote, member_name
from ade_distill.records import Example, Relation, Span

ROOT = Path(__file__).resolve().parents[2]
TEXT = "Aspirin caused rash and severe nausea."


def _pred(eid: str, *rels: tuple[tuple[int, int], tuple[int, int]]) -> Example:
    spans, relations = [], []
    for i, ((hs, he), (ts, te)) in enumerate(rels):
        spans += [Span(id=f"H{i}", label="DRUG", start=hs, end=he, text=TEXT[hs:he]),
                  Span(id=f"A{i}", label="ADE", start=ts, end=te, text=TEXT[ts:te])]
        relations.append(Relation(head=f"H{i}", tail=f"A{i}", label="ADE"))
    return Example(id=eid, text=TEXT, spans=tuple(spans), relations=tuple(relations))


RASH = ((0, 7), (15, 19))
NAUSEA = ((0, 7), (31, 37))
SEVERE_NAUSEA = ((0, 7), (24, 37))


def _keys(ex: Example) -> set[tuple[str, str, float | None]]:
    by = ex.span_by_id()
    return {(by[r.head].text, by[r.tail].text, r.score) for r in ex.relations}


def test_majority_vote_keeps_relations_most_members_predict() -> None:
    gold = [Example(id="g1", text=TEXT)]
    members = {"a": [_pred("x", RASH, NAUSEA)], "b": [_pred("y", RASH, SEVERE_NAUSEA)], "c": [_pred("z", RASH)]}
    out = ensemble_vote(members, gold, min_votes=2)
    assert [e.id for e in out] == ["g1"]  # test ids and order, whatever the members' ids
    assert _keys(out[0]) == {("Aspirin", "rash", 1.0)}  # nausea: 1 vote per boundary variant
    one = ensemble_vote(members, gold, min_votes=1)
    assert _keys(one[0]) == {("Aspirin", "rash", 1.0), ("Aspirin", "nausea", 0.3333),
                             ("Aspirin", "severe nausea", 0.3333)}
    assert out[0].meta == {"ensemble_members": 3}


def test_consensus_vote_counts_boundary_variants_of_one_relation_together() -> None:
    """Two members say "severe nausea", one says "nausea": exact voting needs all three to agree on offsets;
    with boundary consensus the third member's variant maps onto the majority variant and votes for it."""
    gold = [Example(id="g1", text=TEXT)]
    members = {"a": [_pred("x", RASH, NAUSEA)], "b": [_pred("y", RASH, SEVERE_NAUSEA)],
               "c": [_pred("z", RASH, SEVERE_NAUSEA)]}
    assert _keys(ensemble_vote(members, gold, min_votes=3)[0]) == {("Aspirin", "rash", 1.0)}
    both = ensemble_vote(members, gold, min_votes=3, boundary="consensus")
    assert _keys(both[0]) == {("Aspirin", "rash", 1.0), ("Aspirin", "severe nausea", 1.0)}
    # a tie between variants goes to the shorter one (the part the members agree on)
    tie = {"a": [_pred("x", NAUSEA)], "b": [_pred("y", SEVERE_NAUSEA)]}
    assert _keys(ensemble_vote(tie, gold, min_votes=2, boundary="consensus")[0]) == {("Aspirin", "nausea", 1.0)}
    with pytest.raises(ValueError, match="boundary"):
        ensemble_vote(members, gold, min_votes=2, boundary="overlap")


def test_a_test_example_no_member_predicts_stays_empty() -> None:
    gold = [Example(id="g1", text=TEXT), Example(id="g2", text="Nothing here.")]
    members = {"a": [_pred("x", RASH), Example(id="n", text="Nothing here.")],
               "b": [_pred("y", RASH), Example(id="n", text="Nothing here.")]}
    out = ensemble_vote(members, gold, min_votes=2)
    assert [e.id for e in out] == ["g1", "g2"] and not out[1].relations and len(out[0].relations) == 1


def test_ensemble_config_defaults_and_validation(tmp_path: Path) -> None:
    assert EnsembleConfig().seeds == 1
    assert EnsembleConfig(seeds=3).votes_needed == 2 and EnsembleConfig(seeds=4).votes_needed == 3
    assert EnsembleConfig(seeds=5, min_votes=1).votes_needed == 1
    text = (ROOT / "configs" / "beat_the_teacher" / "ensemble3.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  min_votes: 2\nsupervised", "  min_votes: 4\nsupervised"), encoding="utf-8")
    with pytest.raises(ConfigError, match="ensemble.min_votes=4 exceeds ensemble.seeds=3"):
        load_config(bad)
    assert load_config(ROOT / "configs" / "beat_the_teacher" / "ensemble3.yaml").ensemble.votes_needed == 2


def test_ensemble_changes_the_result_key_only_when_set(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "ade_multi_teacher.yaml", overrides={"runs_dir": str(tmp_path)})
    rep = Reproduction(cfg, RunOptions(progress=False))
    folds = rep.make_folds()
    base = rep.result_key(folds, "fold", 9)
    # the default (no ensemble) leaves the key of the committed multi-teacher fold as it was
    committed = ROOT / "reports" / "ade_multi_teacher" / "folds" / "fold9" / "result" / "stage.json"
    assert base == json.loads(committed.read_text())["key"]
    rep.cfg = cfg.model_copy(update={"ensemble": EnsembleConfig(seeds=3)})
    three = rep.result_key(folds, "fold", 9)
    rep.cfg = cfg.model_copy(update={"ensemble": EnsembleConfig(seeds=3, min_votes=1)})
    one = rep.result_key(folds, "fold", 9)
    rep.cfg = cfg.model_copy(update={"ensemble": EnsembleConfig(seeds=3, boundary="consensus")})
    assert len({base, three, one, rep.result_key(folds, "fold", 9)}) == 4
    # the boundary option, added later, leaves the key of an ensemble at its default as it was
    rep.cfg = cfg.model_copy(update={"ensemble": EnsembleConfig(seeds=3, boundary="exact")})
    assert rep.result_key(folds, "fold", 9) == three
    ens = load_config(ROOT / "configs" / "beat_the_teacher" / "ensemble3.yaml", overrides={"runs_dir": str(tmp_path)})
    committed = ROOT / "reports" / "beat_the_teacher" / "levers" / "btt_ensemble3" / "folds" / "fold9" / "result"
    rep = Reproduction(ens, RunOptions(progress=False))
    assert rep.result_key(rep.make_folds(), "fold", 9) == json.loads((committed / "stage.json").read_text())["key"]


@pytest.mark.slow
def test_tiny_ensemble_run_trains_three_members_and_votes(tmp_path: Path, tiny_config: Callable[..., Path]) -> None:
    """8 PMIDs, 2 folds, --only-fold 1, three MiniLM members of one short epoch each: the fold holds the ensemble
    as ``student`` and member 0 as ``student:seed13``; the ensemble's relations are exactly the members'
    majority."""
    from typer.testing import CliRunner

    from ade_distill.cli import app
    from ade_distill.records import read_examples

    cfg = tiny_config("configs/beat_the_teacher/ensemble3.yaml")
    res = CliRunner().invoke(app, ["reproduce", str(cfg), "--only-fold", "1", "--quiet"])
    assert res.exit_code == 0, res.output

    fold = tmp_path / "runs" / "btt_ensemble3" / "fold1"
    result = json.loads((fold / "result" / "fold.json").read_text())
    assert result["systems"][-2:] == [STUDENT, member_name(13)]
    models = {(fold / d / "model.txt").read_text().strip() for d in ("student", "student_seed14", "student_seed15")}
    assert len(models) == 3  # three different models (seeds enter the model key)
    members = [list(read_examples(Path(m) / next(p.name for p in Path(m).glob("predict-*")) / "predictions.jsonl"))
               for m in sorted(models)]
    ens = list(read_examples(fold / "result" / "predictions" / "student.jsonl"))
    for e in ens:
        want: dict[tuple, int] = {}
        for mem in members:
            m = next(x for x in mem if x.text == e.text)
            by = m.span_by_id()
            for r in m.relations:
                k = (by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end)
                want[k] = want.get(k, 0) + 1
        by = e.span_by_id()
        got = {(by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end) for r in e.relations}
        assert got == {k for k, v in want.items() if v >= 2}, e.id
