"""BC5CDR PubTator reader: real split counts, mention/concept handling, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ade_distill.data.cdr import CdrReport, iter_pubtator, read_cdr
from ade_distill.errors import DataError


def test_real_splits(cdr_real) -> None:  # type: ignore[no-untyped-def]
    expected = {"train": 1038, "dev": 1012, "test": 1066}
    for split, (exs, rep) in cdr_real.items():
        assert len(exs) == rep["documents"] == 500
        assert rep["cid_relations"] == expected[split]
        assert sum(len(e.relations) for e in exs) == expected[split]
        assert rep["unanchored_relations"] == rep["duplicate_mentions"] == rep["duplicate_relations"] == 0
        assert all(e.meta["split"] == split and e.id == e.meta["pmid"] for e in exs)
        assert len({e.id for e in exs}) == 500
    assert cdr_real["train"][1]["mentions"] == {"CHEMICAL": 5203, "DISEASE": 4182}


def test_real_relations_link_concepts(cdr_real) -> None:  # type: ignore[no-untyped-def]
    exs = cdr_real["test"][0]
    for ex in exs[:50]:
        spans = ex.span_by_id()
        assert ex.text[: ex.meta["title_end"]] + " " == ex.text[: ex.meta["title_end"] + 1]
        for r in ex.relations:
            h, t = spans[r.head], spans[r.tail]
            assert (h.label, t.label, r.label) == ("CHEMICAL", "DISEASE", "CID")
            assert r.meta["head_concept"] in h.meta["concepts"] and r.meta["tail_concept"] in t.meta["concepts"]


@pytest.fixture()
def tiny(fixtures_dir: Path):  # type: ignore[no-untyped-def]
    rep = CdrReport()
    return {e.id: e for e in iter_pubtator(fixtures_dir / "cdr_tiny.PubTator.txt", rep)}, rep


def test_tiny_document(tiny) -> None:  # type: ignore[no-untyped-def]
    exs, rep = tiny
    ex = exs["111"]
    assert ex.text == ("Lidocaine-induced seizures. A patient given lidocaine developed seizures and hypotension. "
                       "Naloxone was given.")
    assert ex.meta["title_end"] == len("Lidocaine-induced seizures.")
    assert [(s.label, s.text, s.meta["concepts"]) for s in ex.spans] == [
        ("CHEMICAL", "Lidocaine", ["D008012"]), ("DISEASE", "seizures", ["D012640"]),
        ("CHEMICAL", "lidocaine", ["D008012"]), ("DISEASE", "hypotension", ["D007022"]),
        ("CHEMICAL", "Naloxone", [])]  # concept -1 = none
    s = ex.span_by_id()
    # first mention of each concept represents it; the relation keeps the concept ids
    assert [(s[r.head].start, s[r.tail].text, r.meta) for r in ex.relations] == [
        (0, "seizures", {"head_concept": "D008012", "tail_concept": "D012640"}),
        (0, "hypotension", {"head_concept": "D008012", "tail_concept": "D007022"})]
    assert ex.meta["unanchored_relations"] == [{"head_concept": "D999999", "tail_concept": "D012640", "label": "CID"}]


def test_tiny_counts_duplicates_and_composites(tiny) -> None:  # type: ignore[no-untyped-def]
    exs, rep = tiny
    # regression: a repeated mention line was skipped without a count
    assert rep.as_dict() == {"documents": 2, "mentions": {"CHEMICAL": 3, "DISEASE": 3}, "cid_relations": 4,
                             "unanchored_relations": 2, "duplicate_mentions": 1, "duplicate_relations": 0}
    comp = exs["222"].spans[0]
    assert comp.text == "Hepatitis and nephritis" and comp.meta["concepts"] == ["D006505", "D009393"]


def _doc(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "bad.PubTator.txt"
    text = "Aspirin rash. It resolved."
    p.write_text("\n".join(["9|t|Aspirin rash.", "9|a|It resolved.", *lines]) + "\n", encoding="utf-8")
    assert text[0:7] == "Aspirin"
    return p


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("9\t0\t7\taspirin\tChemical\tD001241", "mention 'aspirin' differs from text[0:7] = 'Aspirin'"),
        ("9\t20\t40\tresolved\tDisease\tD1", "offsets [20, 40) outside the text (length 26)"),
        ("9\t-1\t3\tAsp\tChemical\tD1", "offsets [-1, 3) outside the text"),
        ("9\t0\t7\tAspirin\tDrug\tD001241", "unknown entity type 'Drug'; expected Chemical or Disease"),
        ("9\tx\t7\tAspirin\tChemical\tD001241", "offsets 'x', '7' are not integers"),
        ("9\t0\t7\tAspirin", "mention line needs 6 tab-separated fields, found 4"),
        ("8\t0\t7\tAspirin\tChemical\tD001241", "PMID '8' inside document '9'"),
        ("9\tCID\tD001241", "CID line needs"),
        ("8\tCID\tD001241\tD005076", "PMID '8' inside document '9'"),
    ],
)
def test_malformed_mention_lines(tmp_path: Path, line: str, fragment: str) -> None:
    p = _doc(tmp_path, "9\t8\t12\trash\tDisease\tD005076", line)
    with pytest.raises(DataError) as info:
        list(iter_pubtator(p))
    assert str(info.value).startswith(f"{p}:4: ") and fragment in str(info.value)


def test_malformed_document_structure(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("9|a|abstract first\n9|t|title\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.txt:1: a PubTator document must start with"):
        list(iter_pubtator(p))
    p.write_text("9|t|T\n8|a|A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.txt:2: title PMID '9' and abstract PMID '8' differ"):
        list(iter_pubtator(p))
    p.write_text("9|t|T\n9|a|A\n\n9|t|T\n9|a|A\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.txt:4 \(record '9'\): duplicate document"):
        list(iter_pubtator(p))
    p.write_bytes(b"9|t|T\n9|a|caf\xe9\n")
    with pytest.raises(DataError, match=r"x\.txt:2: invalid UTF-8"):
        list(iter_pubtator(p))
    with pytest.raises(DataError, match="file not found"):
        list(iter_pubtator(tmp_path / "none.txt"))
    with pytest.raises(DataError, match="unknown CDR split 'val'"):
        read_cdr(tmp_path, "val")


def test_duplicate_cid_line_is_merged_and_counted(tmp_path: Path) -> None:
    p = _doc(tmp_path, "9\t0\t7\tAspirin\tChemical\tD001241", "9\t8\t12\trash\tDisease\tD005076",
             "9\tCID\tD001241\tD005076", "9\tCID\tD001241\tD005076")
    rep = CdrReport()
    (ex,) = iter_pubtator(p, rep)
    assert len(ex.relations) == 1 and rep.duplicate_relations == 1 and rep.cid_relations == 1
