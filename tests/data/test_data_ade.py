"""ADE corpus v2 raw-file reader: real counts, the repeated-mention policy, and malformed lines."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from ade_distill.data.ade_corpus import AdeReport, count_dose_relations, read_ade_corpus
from ade_distill.errors import DataError
from ade_distill.records import Example


@pytest.fixture(scope="module")
def real_report(data_root: Path) -> dict[str, object]:
    rep = AdeReport()
    read_ade_corpus(data_root / "ade_corpus_v2", include_negatives=True, report=rep)
    return rep.as_dict()


def test_real_counts(ade_gold: list[Example], real_report: dict[str, object]) -> None:
    pos = [e for e in ade_gold if e.meta["has_ade"]]
    neg = [e for e in ade_gold if not e.meta["has_ade"]]
    assert len(pos) == 4272 and len({e.text for e in pos}) == 4271
    assert sum(len(e.relations) for e in ade_gold) == 6821
    assert len(neg) == 16688 and all(not e.spans and not e.relations for e in neg)
    assert len({e.meta["pmid"] for e in pos}) == 1644
    r = real_report
    assert (r["relation_lines"], r["relations"], r["positive_examples"], r["distinct_positive_texts"]) == (
        6821, 6821, 4272, 4271)
    assert (r["negative_lines"], r["negative_examples"], r["negative_duplicates_dropped"],
            r["negative_also_positive_dropped"]) == (16695, 16688, 7, 0)
    assert r["unlocated_mentions"] == 0 and r["duplicate_relations_merged"] == 0
    assert r["mention_resolution"] == {"anchored": 725, "unique": 12917}
    assert "kept once" in str(r["negative_policy"])
    assert len({e.id for e in ade_gold}) == len(ade_gold)


def test_real_ids_and_spans(ade_gold: list[Example]) -> None:
    first = ade_gold[0]
    assert first.id == "10030778_p0" and first.text == "Intravenous azithromycin-induced ototoxicity."
    assert [(s.label, s.start, s.end, s.text) for s in first.spans] == [
        ("DRUG", 12, 24, "azithromycin"), ("ADE", 33, 44, "ototoxicity")]
    assert first.meta == {"pmid": "10030778", "source": "ade_corpus_v2", "has_ade": True, "lines": [1]}
    for ex in ade_gold[:4272]:
        assert ex.id.startswith(ex.meta["pmid"] + "_p")
        for rel in ex.relations:
            spans = ex.span_by_id()
            assert (spans[rel.head].label, spans[rel.tail].label, rel.label) == ("DRUG", "ADE", "ADE")
    assert all(e.id.startswith(e.meta["pmid"] + "_n") for e in ade_gold[4272:])


def test_real_repeated_mentions_are_anchored(ade_gold: list[Example]) -> None:
    """PMID 15823103: 'CBDCA' occurs 4 times and 'hypersensitivity' twice; no mention is unique. The
    document offsets (988 + local) pick each annotated occurrence."""
    ex = next(e for e in ade_gold if e.meta["pmid"] == "15823103" and e.text.startswith("Our report"))
    assert ex.text.count("CBDCA") == 4 and ex.text.count("hypersensitivity") == 2
    spans = ex.span_by_id()
    pairs = sorted((spans[r.head].start, spans[r.tail].start) for r in ex.relations)
    # DRUG-AE.rel lines 2007-2010: (drug, effect) document begins minus the sentence offset 988
    assert pairs == sorted([(1014 - 988, 1020 - 988), (1259 - 988, 1020 - 988), (1259 - 988, 1265 - 988),
                            (1311 - 988, 1265 - 988)])
    assert {s.text for s in ex.spans} == {"CBDCA", "hypersensitivity"} and len(ex.spans) == 5
    # the repeated 'CBDCA' drug in the earlier sentence of the same abstract is unique there
    ex1 = next(e for e in ade_gold if e.meta["pmid"] == "15823103" and e.text.startswith("However"))
    assert len(ex1.relations) == 6 and sum(s.label == "DRUG" for s in ex1.spans) == 1


def test_dose_relations(data_root: Path) -> None:
    assert count_dose_relations(data_root / "ade_corpus_v2") == 279


# -- synthetic fixtures: each path of the policy ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> tuple[dict[str, Example], AdeReport]:
    rep = AdeReport()
    exs = read_ade_corpus(fixtures_dir / "ade_tiny", report=rep)
    return {e.id: e for e in exs}, rep


def _pairs(ex: Example) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    s = ex.span_by_id()
    return [((s[r.head].text, s[r.head].start), (s[r.tail].text, s[r.tail].start)) for r in ex.relations]


def test_anchored(tiny) -> None:  # type: ignore[no-untyped-def]
    ex = tiny[0]["1001_p0"]
    assert _pairs(ex) == [(("heparin", 52), ("bleeding", 29))]  # the second 'bleeding', not the first (15)


def test_pair_distance_on_tied_offsets(tiny) -> None:  # type: ignore[no-untyped-def]
    # "Lithium caused tremor. Lithium caused tremor." annotated on the second copy: both copies explain the
    # document offsets equally well, so no anchor; the pair at the right distance is taken (the first one)
    ex = tiny[0]["1002_p0"]
    assert _pairs(ex) == [(("Lithium", 0), ("tremor", 15))]


def test_first_occurrence_when_offsets_fit_no_pair(tiny) -> None:  # type: ignore[no-untyped-def]
    # regression: an offset proposed by a single mention was taken as an anchor ('anchored' to the 2nd copy)
    ex = tiny[0]["1003_p0"]
    assert _pairs(ex) == [(("warfarin", 0), ("hematuria", 40))]


def test_case_insensitive_with_length_changing_lowercase(tiny) -> None:  # type: ignore[no-untyped-def]
    # regression: str.lower() turns 'İ' into two characters, which shifted the span by one
    ex = tiny[0]["1004_p0"]
    assert ex.text.startswith("İnfusion")
    assert _pairs(ex) == [(("HEPARIN", 12), ("thrombocytopenia", 27))]


def test_unlocated_is_counted_and_listed(tiny) -> None:  # type: ignore[no-untyped-def]
    exs, rep = tiny
    ex = exs["1005_p0"]
    assert ex.relations == () and ex.spans == () and ex.meta["has_ade"] is True
    assert rep.unlocated == [{"pmid": "1005", "line": 5, "mention": "ibuprofen",
                              "sentence": "The drug caused nausea."}]


def test_pipe_in_sentence_and_two_relations(tiny) -> None:  # type: ignore[no-untyped-def]
    ex = tiny[0]["1006_p0"]
    assert ex.text == "Rash|fever after amoxicillin and rash after penicillin."
    assert sorted(_pairs(ex)) == [(("amoxicillin", 17), ("Rash", 0)), (("penicillin", 44), ("rash", 33))]
    assert ex.meta["lines"] == [6, 7]


def test_tiny_report_and_negative_policy(tiny) -> None:  # type: ignore[no-untyped-def]
    exs, rep = tiny
    d = rep.as_dict()
    assert d["mention_resolution"] == {"anchored": 1, "case_insensitive": 1, "first_occurrence": 1,
                                       "pair_distance": 2, "unique": 8, "unlocated": 1}
    assert (d["relation_lines"], d["relations"], d["positive_examples"]) == (7, 6, 6)
    assert (d["negative_lines"], d["negative_examples"], d["negative_duplicates_dropped"],
            d["negative_also_positive_dropped"]) == (5, 3, 1, 1)
    assert [i for i in exs if "_n" in i] == ["1001_n0", "2001_n0", "2001_n1"]
    assert exs["2001_n1"].meta["lines"] == [5] and exs["2001_n1"].text == "A second sentence."
    assert d["pmids_total"] == 7


def test_positive_only(fixtures_dir: Path) -> None:
    exs = read_ade_corpus(fixtures_dir / "ade_tiny", include_negatives=False)
    assert len(exs) == 6 and all(e.meta["has_ade"] for e in exs)


# -- malformed input -----------------------------------------------------------------------------------------


def _folder(tmp_path: Path, fixtures_dir: Path, rel: bytes | None = None, neg: bytes | None = None) -> Path:
    d = tmp_path / "ade"
    shutil.copytree(fixtures_dir / "ade_tiny", d)
    if rel is not None:
        (d / "DRUG-AE.rel").write_bytes((fixtures_dir / "ade_tiny" / "DRUG-AE.rel").read_bytes() + rel)
    if neg is not None:
        (d / "ADE-NEG.txt").write_bytes((fixtures_dir / "ade_tiny" / "ADE-NEG.txt").read_bytes() + neg)
    return d


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"3001|Too few fields.|x|1|2\n", "expected 8 '|'-separated fields"),
        (b"30x1|A sentence.|rash|2|6|drug|10|14\n", "PubMed ID '30x1' is not numeric"),
        (b"3001|A rash.|rash|two|6|A|0|1\n", "effect begin 'two' is not an integer"),
        (b"3001|A rash.|rash|2|6|A|0|1.5\n", "drug end '1.5' is not an integer"),
        (b"3001|A rash.||2|6|A|0|1\n", "empty effect mention"),
        (b"3001|A rash.|rash|102|107|A|100|101\n", "effect offsets [102, 107) do not fit mention 'rash'"),
        (b"3001|A rash.|rash|102|106|A|-1|0\n", "drug offsets [-1, 0)"),
        (b"3001| |rash|102|106|A|100|101\n", "empty sentence"),
        (b"3001|A caf\xe9 rash.|rash|2|6|A|0|1\n", "invalid UTF-8 at byte 10"),
    ],
)
def test_malformed_rel_line(tmp_path: Path, fixtures_dir: Path, line: bytes, fragment: str) -> None:
    d = _folder(tmp_path, fixtures_dir, rel=line)
    with pytest.raises(DataError) as info:
        read_ade_corpus(d)
    assert str(info.value).startswith(f"{d / 'DRUG-AE.rel'}:8: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"4001 A sentence without the marker.\n", "expected 'PubMed-ID NEG sentence'"),
        (b"40a1 NEG A sentence.\n", "expected 'PubMed-ID NEG sentence'"),
        (b"4001 NEG  \n", "expected 'PubMed-ID NEG sentence'"),
        (b"4001 NEG caf\xc3\n", "invalid UTF-8"),
    ],
)
def test_malformed_neg_line(tmp_path: Path, fixtures_dir: Path, line: bytes, fragment: str) -> None:
    d = _folder(tmp_path, fixtures_dir, neg=line)
    assert len(read_ade_corpus(d, include_negatives=False)) == 6  # the .NEG file is not read then
    with pytest.raises(DataError) as info:
        read_ade_corpus(d)
    assert str(info.value).startswith(f"{d / 'ADE-NEG.txt'}:6: ") and fragment in str(info.value)


def test_missing_files(tmp_path: Path, fixtures_dir: Path) -> None:
    with pytest.raises(DataError, match="DRUG-AE.rel: file not found"):
        read_ade_corpus(tmp_path)
    d = _folder(tmp_path, fixtures_dir)
    (d / "ADE-NEG.txt").unlink()
    with pytest.raises(DataError, match="ADE-NEG.txt: file not found"):
        read_ade_corpus(d)


def test_resolution_counts_cover_every_mention(real_report: dict[str, object]) -> None:
    counts = Counter(real_report["mention_resolution"])  # type: ignore[arg-type]
    assert sum(counts.values()) == 2 * 6821
