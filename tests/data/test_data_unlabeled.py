"""Unlabeled input: MEDLINE XML, JSONL abstracts, plain text, format sniffing, sentence splitting."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ade_distill.data.sentences import split_sentences
from ade_distill.data.unlabeled import (
    count_medline,
    iter_abstracts_jsonl,
    iter_documents,
    iter_medline_xml,
    iter_plain_text,
    sniff_format,
    to_sentences,
)
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example, Span, write_examples


def test_real_medline_gz(data_root: Path) -> None:
    p = data_root / "pubmed_unlabeled" / "medline16n0902.xml.gz"
    assert count_medline(p) == {"citations": 604, "with_abstract": 526}
    docs = list(iter_medline_xml(p))
    assert len(docs) == 526 and len({d.id for d in docs}) == 526
    assert all(d.id.isdigit() and d.meta["pmid"] == d.id and d.text for d in docs)
    assert all(d.meta["source"] == "medline16n0902.xml.gz" for d in docs)
    assert all(d.text[d.meta["title_end"]] == " " for d in docs if d.meta["title_end"])


def test_real_abstracts_jsonl(data_root: Path) -> None:
    docs = list(iter_abstracts_jsonl(data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl"))
    assert len(docs) == 3500 and len({d.id for d in docs}) == 3500
    assert sum(d.meta["source"] == "LitCovid" for d in docs) == 2500


def test_tiny_medline_xml(fixtures_dir: Path) -> None:
    p = fixtures_dir / "medline_tiny.xml"
    docs = list(iter_medline_xml(p))
    assert [d.id for d in docs] == ["9000001", "9000003"]  # 9000002 has no abstract
    assert docs[0].text == ("Valproate and hepatotoxicity. BACKGROUND: Valproate can injure the liver. "
                            "RESULTS: Two children developed hepatic failure.")
    assert docs[0].meta == {"pmid": "9000001", "source": "medline_tiny.xml", "title_end": 29}
    assert count_medline(p) == {"citations": 3, "with_abstract": 2}
    assert sniff_format(p) == "medline" and [d.id for d in iter_documents(p)] == ["9000001", "9000003"]


def test_medline_citation_set_root(tmp_path: Path) -> None:
    p = tmp_path / "c.xml"
    p.write_text("<MedlineCitationSet><MedlineCitation><PMID>5</PMID><Article><ArticleTitle>T.</ArticleTitle>"
                 "<Abstract><AbstractText>Body.</AbstractText></Abstract></Article></MedlineCitation>"
                 "</MedlineCitationSet>", encoding="utf-8")
    assert [(d.id, d.text) for d in iter_medline_xml(p)] == [("5", "T. Body.")]


def test_malformed_and_truncated_xml(tmp_path: Path, fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "medline_tiny.xml").read_bytes()
    p = tmp_path / "trunc.xml"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=rf"^{p}:\d+: malformed XML"):
        list(iter_medline_xml(p))
    with pytest.raises(DataError, match="malformed XML"):  # regression: count_medline leaked ParseError
        count_medline(p)
    p = tmp_path / "bad.xml"
    p.write_bytes(raw.replace(b"</ArticleTitle>", b"</Title>", 1))
    with pytest.raises(DataError, match=rf"^{p}:8: malformed XML: mismatched tag"):
        list(iter_medline_xml(p))
    gz = tmp_path / "trunc.xml.gz"
    gz.write_bytes(gzip.compress(raw)[:200])
    with pytest.raises(DataError, match=rf"^{gz}: (cannot read|malformed XML)"):
        list(iter_medline_xml(gz))
    with pytest.raises(DataError, match="file not found"):
        list(iter_medline_xml(tmp_path / "none.xml"))


def test_medline_missing_or_duplicate_pmid(tmp_path: Path) -> None:
    cit = ("<MedlineCitation>{pmid}<Article><ArticleTitle>T</ArticleTitle><Abstract><AbstractText>A"
           "</AbstractText></Abstract></Article></MedlineCitation>")
    p = tmp_path / "x.xml"
    p.write_text(f"<MedlineCitationSet>{cit.format(pmid='')}</MedlineCitationSet>", encoding="utf-8")
    with pytest.raises(DataError, match="MedlineCitation without PMID"):
        list(iter_medline_xml(p))
    p.write_text(f"<MedlineCitationSet>{cit.format(pmid='<PMID>7</PMID>') * 2}</MedlineCitationSet>",
                 encoding="utf-8")
    with pytest.raises(DataError, match=r"\(record '7'\): citation occurs twice"):
        list(iter_medline_xml(p))


def test_tiny_abstracts_jsonl(fixtures_dir: Path) -> None:
    p = fixtures_dir / "abstracts_tiny.jsonl"
    docs = list(iter_abstracts_jsonl(p))
    assert [d.id for d in docs] == ["7000001", "7000002"]  # an integer pmid becomes a string id
    assert docs[1].meta == {"pmid": "7000002", "source": "PubMedQA"}
    assert sniff_format(p) == "abstracts"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"text": "no pmid"}', "expected an object with string 'text' and 'pmid'"),
        ('{"pmid": "1", "text": 5}', "expected an object with string 'text' and 'pmid'"),
        ('{"pmid": null, "text": "x"}', "'pmid' must be a non-empty string or integer, found None"),
        ('{"pmid": " ", "text": "x"}', "'pmid' must be a non-empty string or integer"),
        ('{"pmid": "7000001", "text": "again"}', "(record '7000001'): duplicate pmid"),
    ],
)
def test_bad_abstracts_jsonl(tmp_path: Path, fixtures_dir: Path, line: str, fragment: str) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text((fixtures_dir / "abstracts_tiny.jsonl").read_text() + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        list(iter_abstracts_jsonl(p))
    assert str(info.value).startswith(f"{p}:3") and fragment in str(info.value)


def test_plain_text(fixtures_dir: Path, tmp_path: Path) -> None:
    p = fixtures_dir / "notes_tiny.txt"
    docs = list(iter_plain_text(p))
    assert [(d.id, d.text) for d in docs] == [
        ("notes_tiny_0", "Isoniazid caused hepatitis.  It was stopped. The second line of the first paragraph."),
        ("notes_tiny_1", "A second paragraph here.")]
    assert sniff_format(p) == "text"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    with pytest.raises(DataError, match=rf"^{bad}:2: invalid UTF-8"):
        list(iter_plain_text(bad))


def test_sniff_records_and_gz(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    write_examples(p, [Example(id="x_s0", text="Some text.", meta={"pmid": "1"})])
    assert sniff_format(p) == "records" and [e.id for e in iter_documents(p)] == ["x_s0"]
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(json.dumps({"pmid": "3", "text": "Gzipped."}).encode() + b"\n"))
    assert sniff_format(gz) == "abstracts" and [d.text for d in iter_documents(gz)] == ["Gzipped."]
    assert sniff_format(tmp_path / "notes.TXT") == "text" and sniff_format(tmp_path / "x.XML.gz") == "medline"
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert sniff_format(empty) == "records" and list(iter_documents(empty)) == []
    with pytest.raises(ConfigError, match="unknown input format 'csv'"):
        list(iter_documents(p, fmt="csv"))


def test_records_input_checks_duplicate_ids(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    write_examples(p, [Example(id="a", text="x"), Example(id="a", text="y")])
    with pytest.raises(DataError, match=r":2 \(record 'a'\): duplicate record id"):
        list(iter_documents(p))


def test_split_sentences_offsets() -> None:
    text = "  First sentence here.   Dr. Smith gave 5 mg.\n\nThird one!  "
    spans = split_sentences(text)
    assert spans and all(text[s:e] == text[s:e].strip() and text[s:e] for s, e in spans)
    assert text[spans[0][0] : spans[0][1]] == "First sentence here."
    assert text[spans[-1][0] : spans[-1][1]] == "Third one!"
    assert split_sentences("") == [] and split_sentences("   ") == []


def test_to_sentences_keeps_offsets(fixtures_dir: Path, data_root: Path) -> None:
    docs = list(iter_medline_xml(fixtures_dir / "medline_tiny.xml"))
    docs += list(iter_abstracts_jsonl(data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl"))[:40]
    by_id = {d.id: d for d in docs}
    sents = list(to_sentences(docs))
    assert len(sents) > len(docs)
    for s in sents:
        doc = by_id[s.meta["doc_id"]]
        start = s.meta["doc_start"]
        assert doc.text[start : start + len(s.text)] == s.text
        assert s.id == f"{doc.id}_s{s.meta['sentence_index']}" and "title_end" not in s.meta
        assert s.meta["pmid"] == doc.meta["pmid"]
    first = [s for s in sents if s.meta["doc_id"] == "9000001"]
    assert [s.text for s in first][:2] == ["Valproate and hepatotoxicity.", "BACKGROUND: Valproate can injure the liver."]


def test_to_sentences_refuses_labelled_documents() -> None:
    # regression: spans and relations were silently dropped by the split
    doc = Example(id="d", text="Aspirin caused rash. Fine.",
                  spans=(Span(id="T1", label="DRUG", start=0, end=7, text="Aspirin"),))
    with pytest.raises(DataError, match=r"record 'd'.*1 spans and 0 relations"):
        list(to_sentences([doc]))
