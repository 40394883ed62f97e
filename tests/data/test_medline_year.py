"""Issue 16: the MEDLINE reader gives each citation its publication year (``meta.year``) for the signal table:
the journal issue's PubDate/Year, else the first year of a free-text MedlineDate, else the ArticleDate."""

from __future__ import annotations

from pathlib import Path

from ade_distill.data.unlabeled import iter_medline_xml, to_sentences

XML = """<?xml version="1.0" encoding="utf-8"?>
<PubmedArticleSet>
{}
</PubmedArticleSet>
"""
CITATION = """<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article>
<Journal><JournalIssue><PubDate>{pubdate}</PubDate></JournalIssue></Journal>
<ArticleTitle>T{pmid}.</ArticleTitle><Abstract><AbstractText>Drug {pmid} caused a rash.</AbstractText></Abstract>
{articledate}</Article></MedlineCitation></PubmedArticle>"""


def _citation(pmid: str, pubdate: str = "", articledate: str = "") -> str:
    return CITATION.format(pmid=pmid, pubdate=pubdate, articledate=articledate)


def test_publication_year_from_pubdate_medlinedate_or_articledate(tmp_path: Path) -> None:
    p = tmp_path / "m.xml"
    p.write_text(XML.format("\n".join([
        _citation("1", "<Year>2001</Year><Month>Jan</Month>",
                  '<ArticleDate DateType="Electronic"><Year>2000</Year></ArticleDate>'),
        _citation("2", "<MedlineDate>1998 Dec-1999 Jan</MedlineDate>"),
        _citation("3", "", '<ArticleDate DateType="Electronic"><Year>2019</Year></ArticleDate>'),
        _citation("4", "<Season>Spring</Season>"),
    ])), encoding="utf-8")
    docs = list(iter_medline_xml(p))
    assert [d.meta.get("year") for d in docs] == [2001, 1998, 2019, None]
    assert "year" not in docs[3].meta  # no year: no key, rather than a guess
    assert [s.meta.get("year") for s in to_sentences(docs[:1])] == [2001, 2001]  # sentences carry it


def test_every_citation_of_the_real_medline_file_has_a_year(data_root: Path) -> None:
    docs = list(iter_medline_xml(data_root / "pubmed_unlabeled" / "medline16n0902.xml.gz"))
    years = [d.meta["year"] for d in docs]
    assert len(years) == 526 and min(years) >= 2007 and max(years) <= 2016
