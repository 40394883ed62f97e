"""The levers of issue 7 on the experiment side: stage keys that stay stable when options are added
(drop_added_defaults, ADDED_*_OPTIONS, train_key_dict), boundary consensus in the teacher vote, and
``reproduce --only-fold``."""

from __future__ import annotations

import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from ade_distill.experiments.combine import boundary_consensus, vote
from ade_distill.experiments.config import load_config
from ade_distill.experiments.reproduce import (
    ADDED_CONFIG_OPTIONS,
    ADDED_TRAIN_OPTIONS,
    VOTE,
    Reproduction,
    RunOptions,
    train_key_dict,
)
from ade_distill.experiments.stages import drop_added_defaults
from ade_distill.records import Example, Relation, Span, read_examples, write_examples
from ade_distill.student.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
# the fields result_key leaves out of the config dump
RESULT_KEY_EXCLUDES = {"runs_dir", "report_dir", "description", "learning_curve"}


# -- drop_added_defaults ---------------------------------------------------------------------------------------
def test_drop_added_defaults_drops_only_at_the_default() -> None:
    dump = {"name": "x", "silver": {"combine": "vote", "boundary": "exact"}, "tail_head": "linear"}
    out = drop_added_defaults(dump, {"silver.boundary": "exact", "tail_head": "linear"})
    assert out == {"name": "x", "silver": {"combine": "vote"}}
    assert dump["silver"]["boundary"] == "exact" and dump["tail_head"] == "linear"  # input left alone

    changed = {"name": "x", "silver": {"combine": "vote", "boundary": "consensus"}, "tail_head": "interaction"}
    assert drop_added_defaults(changed, {"silver.boundary": "exact", "tail_head": "linear"}) == changed


def test_drop_added_defaults_nested_and_missing_paths() -> None:
    dump = {"a": {"b": {"c": 1, "d": 2}}, "e": 5, "f": None, "g": [1, 2]}
    assert drop_added_defaults(dump, {"a.b.c": 1}) == {"a": {"b": {"d": 2}}, "e": 5, "f": None, "g": [1, 2]}
    assert drop_added_defaults(dump, {"a.b.c": 2}) == dump  # not the default: kept
    # paths that do not exist, or run through a non-mapping, are ignored without error
    for path in ("nope", "a.nope", "a.nope.c", "a.b.c.deeper", "e.x", "e.x.y", "f.x", "g.x", "a.b.nope"):
        assert drop_added_defaults(dump, {path: 1}) == dump, path
    # defaults compare in their JSON form (a tuple default matches the list a dump holds)
    assert drop_added_defaults({"g": [1, 2]}, {"g": (1, 2)}) == {}
    assert drop_added_defaults({}, {"silver.boundary": "exact"}) == {}


def test_added_options_are_the_current_defaults() -> None:
    """Each entry of ADDED_*_OPTIONS must be the field's real default, or the key of a default config changes."""
    from ade_distill.experiments.config import SilverConfig

    assert ADDED_CONFIG_OPTIONS["silver.boundary"] == SilverConfig().boundary == "exact"
    assert ADDED_TRAIN_OPTIONS["tail_head"] == TrainConfig().tail_head == "linear"
    # every entry (options added later too) names a real field and holds its default
    assert TrainConfig.model_fields.keys() >= ADDED_TRAIN_OPTIONS.keys()
    for name, default in ADDED_TRAIN_OPTIONS.items():
        assert getattr(TrainConfig(), name) == default, name
    from ade_distill.experiments.config import ReproduceConfig
    from ade_distill.student.compress import CompressConfig

    for path, default in ADDED_CONFIG_OPTIONS.items():
        if path.startswith("compress.options."):  # a field of CompressConfig, written in the options mapping
            assert getattr(CompressConfig(), path.split(".")[-1]) == default, path
            continue
        node, section = None, ReproduceConfig
        for part in path.split("."):  # the field's default, through sections whose default is None (compress)
            field = section.model_fields[part]
            node = field.default
            section = next((a for a in typing.get_args(field.annotation) or (field.annotation,)
                            if isinstance(a, type) and issubclass(a, BaseModel)), None)
        node = list(node) if isinstance(node, tuple) else node  # as in a JSON dump
        if hasattr(node, "model_dump"):  # a whole section added (e.g. ensemble): its JSON dump is the default,
            # less the options added to it later, which have their own entries and are dropped before it
            later = {p: d for p, d in ADDED_CONFIG_OPTIONS.items() if p.startswith(path + ".")}
            assert all(list(ADDED_CONFIG_OPTIONS).index(p) < list(ADDED_CONFIG_OPTIONS).index(path) for p in later)
            node = drop_added_defaults({path: node.model_dump(mode="json")}, later)[path]
        assert node == default, path
    from ade_distill.experiments.reproduce import ADDED_COMPRESS_OPTIONS

    for name, default in ADDED_COMPRESS_OPTIONS.items():
        assert getattr(CompressConfig(), name) == default, name


def _pre_change(dump: dict) -> dict:
    """A TrainConfig dump as it was before the added options existed."""
    return {k: v for k, v in dump.items() if k not in ADDED_TRAIN_OPTIONS}


def test_train_key_dict_leaves_out_tail_head_at_its_default() -> None:
    default = train_key_dict(TrainConfig())
    assert "tail_head" not in default
    assert default == _pre_change(TrainConfig().model_dump(mode="json"))
    inter = train_key_dict(TrainConfig(tail_head="interaction"))
    assert inter["tail_head"] == "interaction"
    assert {k: v for k, v in inter.items() if k != "tail_head"} == default


# -- stable keys of the committed reports ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ade_gpt4_replay", "ade_multi_teacher"])
def test_committed_config_dumps_are_unchanged(name: str) -> None:
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.silver.boundary == "exact"
    dumped = drop_added_defaults(cfg.model_dump(mode="json", exclude=RESULT_KEY_EXCLUDES), ADDED_CONFIG_OPTIONS)
    assert "boundary" not in dumped["silver"]
    tc = TrainConfig.build(**cfg.student)
    assert "tail_head" not in train_key_dict(tc)
    assert train_key_dict(tc) == _pre_change(tc.model_dump(mode="json"))
    # the training key used model_dump() (python mode) before: the JSON form of both must be identical
    sup = tc.model_copy(update={"confidence_weighting": False, "min_confidence": 0.0})
    for c in (tc, sup):
        old = _pre_change(c.model_dump())
        assert json.dumps(train_key_dict(c), sort_keys=True) == json.dumps(old, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def multi_teacher(tmp_path_factory: pytest.TempPathFactory) -> Reproduction:
    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(ROOT / "configs" / "ade_multi_teacher.yaml", overrides={"runs_dir": str(runs)})
    return Reproduction(cfg, RunOptions(progress=False))


@pytest.mark.parametrize("name", ["ade_gpt4_replay", "ade_multi_teacher"])
def test_committed_fold_result_key_is_unchanged(name: str, tmp_path: Path,
                                                multi_teacher: Reproduction) -> None:
    """The fold results committed under reports/<name>/folds are still reused (same key) after the change."""
    marker = ROOT / "reports" / name / "folds" / "fold0" / "result" / "stage.json"
    want = json.loads(marker.read_text(encoding="utf-8"))["key"]
    if name == "ade_multi_teacher":
        rep = multi_teacher
    else:
        cfg = load_config(ROOT / "configs" / f"{name}.yaml", overrides={"runs_dir": str(tmp_path)})
        rep = Reproduction(cfg, RunOptions(progress=False))
    folds = rep.make_folds()
    assert rep.result_key(folds, "fold", 0) == want


def test_result_key_changes_when_an_added_option_is_set(multi_teacher: Reproduction) -> None:
    rep = multi_teacher
    folds = rep.make_folds()
    base = rep.result_key(folds, "fold", 0)
    cfg, tc = rep.cfg, rep.train_config
    try:
        rep.cfg = cfg.model_copy(update={"silver": cfg.silver.model_copy(update={"boundary": "consensus"})})
        consensus = rep.result_key(folds, "fold", 0)
        rep.cfg = cfg
        rep.train_config = tc.model_copy(update={"tail_head": "interaction"})
        interaction = rep.result_key(folds, "fold", 0)
    finally:
        rep.cfg, rep.train_config = cfg, tc
    assert len({base, consensus, interaction}) == 3
    assert rep.result_key(folds, "fold", 0) == base


def test_exact_vote_reproduces_the_committed_multi_teacher_fold(multi_teacher: Reproduction) -> None:
    """Exact-mode voting is unchanged on real data: the silver counts and the scored teachers' vote (min 2 of 3)
    of the committed ade_multi_teacher fold 0 come out identical."""
    from ade_distill.experiments.protocol import strip_labels

    rep = multi_teacher
    folder = ROOT / "reports" / "ade_multi_teacher" / "folds" / "fold0" / "result"
    committed = json.loads((folder / "fold.json").read_text(encoding="utf-8"))
    folds = rep.make_folds()
    scored_all = strip_labels(rep.scored(rep.gold))
    records = {t.name: rep.teacher_labels(t, scored_all, "gold-text") for t in rep.cfg.teachers}
    test = rep.scored([rep.by_id[i] for i in sorted(folds.test_ids(0))])
    assert [e.id for e in test] == committed["gold_ids"]

    _, stats, _ = rep._silver_for_fold(records, folds.train_ids(0), test)
    assert stats.as_dict() == committed["silver"]

    voted, _ = vote({n: rep.teacher_predictions(r, test) for n, r in records.items()},
                    min_votes=min(rep.cfg.silver.vote_system_min_votes, len(records)))
    vmap = {e.id: e for e in voted}
    mine = rep.run_dir / "teachers-vote.jsonl"
    write_examples(mine, [vmap.get(g.id, Example(id=g.id, text=g.text)) for g in test])
    got = [e.model_dump() for e in read_examples(mine)]
    want = [e.model_dump() for e in read_examples(folder / "predictions" / f"{VOTE}.jsonl")]
    assert got == want


# -- boundary consensus ----------------------------------------------------------------------------------------
MYELO = "Carboplatin was stopped because of severe myelosuppression."


def rec(rid: str, text: str, rels: list[tuple[str, str]], *, status: str = "ok") -> Example:
    """A teacher record: relations (drug text, effect text), each grounded at the text's first occurrence."""
    spans: dict[tuple[str, str], Span] = {}

    def span(s: str, label: str) -> str:
        if (label, s) not in spans:
            i = text.index(s)
            spans[(label, s)] = Span(id=f"T{len(spans) + 1}", label=label, start=i, end=i + len(s), text=s)
        return spans[(label, s)].id

    relations = tuple(Relation(head=span(d, "DRUG"), tail=span(a, "ADE"), label="ADE") for d, a in rels)
    return Example(id=rid, text=text, spans=tuple(spans.values()), relations=relations, meta={"status": status})


def triples(ex: Example) -> list[tuple[str, str, float | None]]:
    s = ex.span_by_id()
    return sorted((s[r.head].text, s[r.tail].text, r.score) for r in ex.relations)


def test_consensus_picks_the_majority_variant() -> None:
    by_teacher = {
        "a": [rec("x", MYELO, [("Carboplatin", "severe myelosuppression")])],
        "b": [rec("x", MYELO, [("Carboplatin", "myelosuppression")])],
        "c": [rec("x", MYELO, [("Carboplatin", "myelosuppression")])],
    }
    (out,), st = vote(by_teacher, use_scores=True, boundary="consensus")
    assert triples(out) == [("Carboplatin", "myelosuppression", 1.0)]
    assert {(s.text, s.score) for s in out.spans} == {("Carboplatin", 1.0), ("myelosuppression", 1.0)}
    assert st.relations_out == 1
    (out,), _ = vote(by_teacher, min_votes=3, boundary="consensus")
    assert triples(out) == [("Carboplatin", "myelosuppression", None)]  # 3 votes
    # exact mode keeps both variants with their own votes
    (out,), _ = vote(by_teacher, use_scores=True)
    assert triples(out) == [("Carboplatin", "myelosuppression", pytest.approx(2 / 3, abs=1e-4)),
                            ("Carboplatin", "severe myelosuppression", pytest.approx(1 / 3, abs=1e-4))]


def test_consensus_tie_goes_to_the_shorter_variant() -> None:
    by_teacher = {
        "a": [rec("x", MYELO, [("Carboplatin", "severe myelosuppression")])],
        "b": [rec("x", MYELO, [("Carboplatin", "myelosuppression")])],
        "c": [rec("x", MYELO, [], status="refused")],  # abstains
    }
    (out,), st = vote(by_teacher, use_scores=True, boundary="consensus")
    assert triples(out) == [("Carboplatin", "myelosuppression", 1.0)]
    assert out.meta["usable_teachers"] == 2 and st.unusable == {"c:refused": 1}
    # the order of the teachers does not matter
    (out2,), _ = vote(dict(reversed(list(by_teacher.items()))), use_scores=True, boundary="consensus")
    assert triples(out2) == triples(out)


def test_consensus_keeps_separate_mentions_and_labels_apart() -> None:
    text = "Cough and angioedema were attributed to enalapril."
    by_teacher = {
        "a": [rec("x", text, [("enalapril", "Cough")])],
        "b": [rec("x", text, [("enalapril", "angioedema")])],
    }
    (out,), _ = vote(by_teacher, use_scores=True, boundary="consensus")
    assert triples(out) == [("enalapril", "Cough", 0.5), ("enalapril", "angioedema", 0.5)]

    # the DRUG lies inside the ADE span (about 120 ADE sentences look like this): never merged across labels
    text = "Codeine intoxication in the neonate."
    by_teacher = {
        "a": [rec("x", text, [("Codeine", "Codeine intoxication")])],
        "b": [rec("x", text, [("Codeine", "Codeine intoxication")])],
        "c": [rec("x", text, [("Codeine", "intoxication")])],
    }
    (out,), _ = vote(by_teacher, use_scores=True, boundary="consensus")
    assert triples(out) == [("Codeine", "Codeine intoxication", 1.0)]
    assert sorted((s.label, s.start, s.end) for s in out.spans) == [("ADE", 0, 20), ("DRUG", 0, 7)]


def test_boundary_consensus_mapping() -> None:
    votes = {("ADE", 0, 20): 1, ("ADE", 8, 20): 1, ("DRUG", 0, 7): 3, ("ADE", 30, 40): 1, ("ADE", 40, 45): 2,
             ("CHEM", 8, 20): 1}
    canon = boundary_consensus(votes)
    assert set(canon) == set(votes)
    assert canon[("ADE", 0, 20)] == ("ADE", 8, 20) and canon[("ADE", 8, 20)] == ("ADE", 8, 20)  # tie: shorter
    assert canon[("DRUG", 0, 7)] == ("DRUG", 0, 7)  # other label, though overlapping
    assert canon[("CHEM", 8, 20)] == ("CHEM", 8, 20)
    assert canon[("ADE", 30, 40)] == ("ADE", 30, 40) and canon[("ADE", 40, 45)] == ("ADE", 40, 45)  # touching only
    # a chosen span absorbs only spans that overlap it, not the spans those overlap in turn
    chain = boundary_consensus({("ADE", 0, 10): 2, ("ADE", 5, 15): 1, ("ADE", 12, 20): 1})
    assert chain == {("ADE", 0, 10): ("ADE", 0, 10), ("ADE", 5, 15): ("ADE", 0, 10), ("ADE", 12, 20): ("ADE", 12, 20)}
    assert boundary_consensus({}) == {}


def test_min_votes_counts_boundary_variants_only_in_consensus_mode() -> None:
    by_teacher = {
        "a": [rec("x", MYELO, [("Carboplatin", "severe myelosuppression")])],
        "b": [rec("x", MYELO, [("Carboplatin", "myelosuppression")])],
    }
    (out,), st = vote(by_teacher, min_votes=2, boundary="consensus")
    assert triples(out) == [("Carboplatin", "myelosuppression", None)] and st.relations_below_votes == 0
    (out,), st = vote(by_teacher, min_votes=2, boundary="exact")
    assert out.relations == () and out.spans == () and st.relations_below_votes == 2 and st.empty_records == 1


def test_one_teacher_votes_once_per_relation() -> None:
    # exact mode: the same relation twice (two span ids at the same offsets) is one vote
    text = "Cough and angioedema were attributed to enalapril."
    twice = Example(
        id="x", text=text, meta={"status": "ok"},
        spans=(Span(id="T1", label="ADE", start=0, end=5, text="Cough"),
               Span(id="T2", label="DRUG", start=40, end=49, text="enalapril"),
               Span(id="T3", label="DRUG", start=40, end=49, text="enalapril")),
        relations=(Relation(head="T2", tail="T1", label="ADE"), Relation(head="T3", tail="T1", label="ADE"),
                   Relation(head="T2", tail="T1", label="ADE")),
    )
    by_teacher = {"a": [twice], "b": [rec("x", text, [])]}
    for boundary in ("exact", "consensus"):
        (out,), st = vote(by_teacher, min_votes=2, boundary=boundary)
        assert out.relations == () and st.relations_below_votes == 1, boundary
        (out,), _ = vote(by_teacher, use_scores=True, boundary=boundary)
        assert triples(out) == [("enalapril", "Cough", 0.5)], boundary
    # consensus mode: two variants from the same teacher collapse onto one relation, still one vote
    by_teacher = {"a": [rec("x", MYELO, [("Carboplatin", "severe myelosuppression"),
                                         ("Carboplatin", "myelosuppression")])],
                  "b": [rec("x", MYELO, [])]}
    (out,), _ = vote(by_teacher, use_scores=True, boundary="consensus")
    assert triples(out) == [("Carboplatin", "myelosuppression", 0.5)]
    (out,), st = vote(by_teacher, min_votes=2, boundary="consensus")
    assert out.relations == () and st.relations_below_votes == 1


def test_exact_is_the_default_and_matches_the_hand_count() -> None:
    text = "Cough and angioedema were attributed to enalapril and lisinopril."
    by_teacher = {
        "a": [rec("x", text, [("enalapril", "Cough"), ("enalapril", "angioedema"), ("lisinopril", "Cough")])],
        "b": [rec("x", text, [("enalapril", "Cough"), ("lisinopril", "angioedema")])],
        "c": [rec("x", text, [("enalapril", "Cough"), ("enalapril", "angioedema")])],
    }
    for kw in ({}, {"boundary": "exact"}):
        (out,), st = vote(by_teacher, min_votes=2, use_scores=True, **kw)
        assert triples(out) == [("enalapril", "Cough", 1.0), ("enalapril", "angioedema", pytest.approx(0.6667))]
        assert st.relations_below_votes == 2 and st.relations_out == 2
        (out,), _ = vote(by_teacher, **kw)
        assert len(out.relations) == 4


def test_invalid_boundary_raises() -> None:
    with pytest.raises(ValueError, match="boundary"):
        vote({"a": [rec("x", MYELO, [])]}, boundary="fuzzy")
    from ade_distill.experiments.config import SilverConfig

    with pytest.raises(ValidationError):
        SilverConfig(boundary="fuzzy")


# -- reproduce --only-fold ---------------------------------------------------------------------------------------
def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from ade_distill.cli import main

    monkeypatch.setattr(sys, "argv", ["ade-distill", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code), capsys.readouterr().err


@pytest.mark.parametrize("fold", ["10", "-1"])
def test_only_fold_out_of_range_is_a_clear_error(fold: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(monkeypatch, capsys, "reproduce", str(ROOT / "configs" / "ade_gpt4_replay.yaml"),
                      "--only-fold", "0", f"--only-fold={fold}", "--runs-dir", str(tmp_path / "runs"),
                      "--report-dir", str(tmp_path / "report"), "--quiet")
    assert code == 2, err
    assert f"--only-fold {fold} is not a fold of this config (folds 0..9)" in err and "Traceback" not in err
    assert not (tmp_path / "report").exists()
    assert not list((tmp_path / "runs").rglob("stage.json"))  # failed before any stage ran


@pytest.mark.slow
def test_only_fold_runs_that_fold_and_reports_partially(tmp_path: Path, tiny_config: Callable[..., Path]) -> None:
    """A tiny replay run (8 PMIDs, 2 folds, one MiniLM epoch, no supervised student) with --only-fold 1."""
    from typer.testing import CliRunner

    from ade_distill.cli import app

    cfg = tiny_config("configs/ade_gpt4_replay.yaml", supervised={"enabled": False})
    res = CliRunner().invoke(app, ["reproduce", str(cfg), "--only-fold", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / "ade_gpt4_replay"
    assert (run_dir / "fold1" / "result" / "stage.json").is_file()
    assert not (run_dir / "fold0").exists()
    assert not (tmp_path / "reports").exists()  # one fold of two: never the full report
    results = json.loads((run_dir / "report-partial" / "results.json").read_text())
    assert results["folds_done"] == [1]
    assert "--only-fold 1" in (run_dir / "report-partial" / "README.md").read_text()


# -- validation added after review -----------------------------------------------------------------------------
def test_folds_and_only_fold_exclude_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(monkeypatch, capsys, "reproduce", str(ROOT / "configs" / "ade_gpt4_replay.yaml"),
                      "--folds", "1", "--only-fold", "9", "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert code == 2 and "--folds and --only-fold exclude each other" in err


def test_boundary_consensus_needs_several_teachers(tmp_path: Path) -> None:
    from ade_distill.errors import ConfigError

    text = (ROOT / "configs" / "ade_gpt4_replay.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  combine: single", "  combine: single\n  boundary: consensus"), encoding="utf-8")
    with pytest.raises(ConfigError, match="boundary 'consensus' needs silver.combine 'vote'"):
        load_config(bad)


def test_consensus_never_relates_a_span_to_itself() -> None:
    """A task whose head and tail share an entity label: overlapping head/tail variants may merge."""
    text = "Drug A B here."
    def one(spans: list[tuple[str, int, int]], rels: list[tuple[str, str]]) -> Example:
        sp = tuple(Span(id=i, label="X", start=s, end=e, text=text[s:e]) for i, s, e in spans)
        return Example(id="x", text=text, spans=sp,
                       relations=tuple(Relation(head=h, tail=t, label="R") for h, t in rels))
    by_teacher = {
        "a": [one([("T1", 0, 6), ("T2", 7, 8)], [("T1", "T2")])],   # "Drug A" → "B"
        "b": [one([("T1", 0, 4), ("T2", 5, 8)], [("T1", "T2")])],   # "Drug" → "A B"
        "c": [one([("T1", 5, 6), ("T2", 0, 8)], [("T1", "T2")])],   # "A" → "Drug A B": both collapse onto "A"
    }
    (out,), _ = vote(by_teacher, boundary="consensus")
    by = out.span_by_id()
    assert all(by[r.head] != by[r.tail] for r in out.relations)
