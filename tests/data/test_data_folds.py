"""Folds grouped by PubMed ID: disjoint, complete, balanced, deterministic; file round trip and checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ade_distill.data.folds import Folds, check_folds, corpus_hash, make_folds
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example


@pytest.fixture(scope="module")
def folds10(ade_gold: list[Example]) -> Folds:
    return make_folds(ade_gold, k=10, seed=13, corpus="ade")


def test_real_folds_grouped_and_complete(folds10: Folds, ade_gold: list[Example]) -> None:
    assert folds10.k == 10 and len(folds10.folds) == 10
    all_ids = [i for f in folds10.folds for i in f]
    assert len(all_ids) == len(set(all_ids)) == len(ade_gold)
    assert set(all_ids) == {e.id for e in ade_gold}
    pmid_of = {e.id: e.meta["pmid"] for e in ade_gold}
    seen: set[str] = set()
    for j, ids in enumerate(folds10.folds):
        pmids = {pmid_of[i] for i in ids}
        assert pmids == set(folds10.groups[j])
        assert not pmids & seen  # no PubMed ID in two folds
        seen |= pmids
    for j in range(10):
        assert folds10.test_ids(j) | folds10.train_ids(j) == set(all_ids)
        assert not folds10.test_ids(j) & folds10.train_ids(j)


def test_real_folds_balanced(folds10: Folds, ade_gold: list[Example]) -> None:
    has_rel = {e.id for e in ade_gold if e.relations}
    pos = [sum(i in has_rel for i in f) for f in folds10.folds]
    assert sum(pos) == 4272 and max(pos) - min(pos) <= 15, pos
    sizes = [len(f) for f in folds10.folds]
    assert max(sizes) - min(sizes) <= 0.05 * min(sizes), sizes


def test_same_seed_same_bytes_other_seed_differs(folds10: Folds, ade_gold: list[Example], tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    folds10.save(a)
    make_folds(list(reversed(ade_gold)), k=10, seed=13, corpus="ade").save(b)  # input order does not matter
    make_folds(ade_gold, k=10, seed=14, corpus="ade").save(c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_load_round_trip_and_hash_check(folds10: Folds, ade_gold: list[Example], tmp_path: Path) -> None:
    p = tmp_path / "folds.json"
    folds10.save(p)
    back = Folds.load(p)
    assert back == folds10 and back.fold_of()[ade_gold[0].id] in range(10)
    raw = json.loads(p.read_text())
    assert raw["format_version"] == 1 and raw["corpus"] == "ade" and raw["seed"] == 13
    check_folds(back, ade_gold)
    other = [*ade_gold[:-1], ade_gold[-1].model_copy(update={"text": "changed"})]
    assert corpus_hash(other) != back.corpus_hash
    with pytest.raises(DataError, match=rf"^{p}: the folds file was made for a different corpus"):
        check_folds(back, other, path=p)
    with pytest.raises(ConfigError, match=r"fold 10 out of range: folds are numbered 0\.\.9"):
        back.test_ids(10)


def _ex(i: int, pmid: str, rel: bool = False) -> Example:
    from ade_distill.records import Relation, Span

    if not rel:
        return Example(id=f"{pmid}_n{i}", text="x", meta={"pmid": pmid})
    spans = (Span(id="T1", label="DRUG", start=0, end=1, text="a"), Span(id="T2", label="ADE", start=2, end=3,
                                                                         text="b"))
    return Example(id=f"{pmid}_p{i}", text="a b", spans=spans, relations=(Relation(head="T1", tail="T2",
                                                                                    label="ADE"),),
                   meta={"pmid": pmid})


def test_small_folds_and_errors() -> None:
    exs = [_ex(i, str(p), rel=p % 2 == 0) for p in range(6) for i in range(2)]
    f = make_folds(exs, k=3, seed=0, corpus="toy")
    assert sorted(len(g) for g in f.groups) == [2, 2, 2]
    assert [sum(i.endswith(("_p0", "_p1")) for i in ids) for ids in f.folds] == [2, 2, 2]
    with pytest.raises(ConfigError, match="k must be at least 2, got 1"):
        make_folds(exs, k=1, seed=0, corpus="toy")
    with pytest.raises(ConfigError, match="cannot make 7 folds from 6 documents"):
        make_folds(exs, k=7, seed=0, corpus="toy")
    with pytest.raises(DataError, match=r"record '0_p0'.*duplicate example id"):  # regression: not checked
        make_folds([*exs, exs[0]], k=3, seed=0, corpus="toy")


def test_groups_fall_back_to_doc_id_then_id() -> None:
    exs = [Example(id=f"d{d}_s{s}", text="x", meta={"doc_id": f"d{d}"}) for d in range(4) for s in range(3)]
    exs += [Example(id=f"solo{i}", text="x") for i in range(2)]
    f = make_folds(exs, k=2, seed=1, corpus="docs")
    for ids in f.folds:
        docs = {i.split("_")[0] for i in ids if i.startswith("d")}
        assert all({f"{d}_s{s}" for s in range(3)} <= set(ids) for d in docs)
    assert sorted(g for gs in f.groups for g in gs) == ["d0", "d1", "d2", "d3", "solo0", "solo1"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("corpus"), "not a folds file"),
        (lambda d: d.update(k=3), "declares k=3 but holds 2 folds"),
        (lambda d: d.update(format_version=2), "format_version 2 is not 1"),
        (lambda d: d["folds"][1]["example_ids"].append(d["folds"][0]["example_ids"][0]), "is in two folds"),
        (lambda d: d["folds"][1]["pmids"].append(d["folds"][0]["pmids"][0]), "PubMed ID"),
        (lambda d: d["folds"][0]["example_ids"].append(5), "is not a string"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    exs = [_ex(i, str(p), rel=True) for p in range(4) for i in range(2)]
    d = json.loads(make_folds(exs, k=2, seed=0, corpus="toy").to_json())
    mutate(d)
    p = tmp_path / "f.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DataError, match=fragment) as info:
        Folds.load(p)
    assert str(info.value).startswith(f"{p}: ")
    p.write_text("not json")
    with pytest.raises(DataError, match="not a folds file"):
        Folds.load(p)
    with pytest.raises(DataError, match="not a folds file"):
        Folds.load(tmp_path / "missing.json")
