"""Unlabeled text for the teacher: JSONL abstracts, PubMed/MEDLINE XML (``.xml``/``.xml.gz``), plain text,
or records already in the common schema. Everything streams; nothing holds a whole file in memory.

Documents are yielded as :class:`Example` without spans; :func:`to_sentences` splits them into sentence
examples whose ``meta`` keeps ``doc_id``, ``sentence_index`` and ``doc_start`` so predictions can be mapped
back to document offsets.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING
from xml.etree import ElementTree as ET

from ade_distill.data.sentences import split_sentences
from ade_distill.data.textio import iter_lines
from ade_distill.errors import DataError
from ade_distill.records import Example, iter_jsonl, read_examples

if TYPE_CHECKING:
    from ade_distill.data.standoff import FormatOptions

log = logging.getLogger(__name__)


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _node_text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


def publication_year(citation: ET.Element) -> int | None:
    """The publication year of a ``MedlineCitation``: the journal issue's ``PubDate/Year``, else the first year
    in its free-text ``PubDate/MedlineDate`` ("1998 Dec-1999 Jan" → 1998), else the electronic
    ``ArticleDate/Year``; ``None`` when there is none. PubMed's own year of publication is the issue's."""
    for path in ("Article/Journal/JournalIssue/PubDate/Year", "Article/Journal/JournalIssue/PubDate/MedlineDate",
                 "Article/ArticleDate/Year"):
        el = citation.find(path)
        m = _YEAR.search(el.text or "") if el is not None else None
        if m:
            return int(m.group(1))
    return None


def _iter_citations(p: Path) -> Iterator[tuple[str, Example | None]]:
    """Yield ``(pmid, document or None when the citation has no abstract)`` per ``MedlineCitation``."""
    if not p.is_file():
        raise DataError("file not found", path=p)
    try:
        with _open_binary(p) as fh:
            context = ET.iterparse(fh, events=("start", "end"))
            root: ET.Element | None = None
            for event, el in context:
                if event == "start":
                    if root is None:
                        root = el
                    continue
                if el.tag in ("PubmedArticle", "PubmedBookArticle") and root is not None:
                    # the article wrapper also holds PubmedData (history, references): free it, or a
                    # baseline file of 30,000 articles would stay in memory
                    el.clear()
                    root.clear()
                    continue
                if el.tag != "MedlineCitation":
                    continue
                pmid_el = el.find("PMID")
                pmid = pmid_el.text.strip() if pmid_el is not None and pmid_el.text else None
                year = publication_year(el)
                title_el = el.find("Article/ArticleTitle")
                title = _node_text(title_el) if title_el is not None else ""
                parts = []
                for at in el.findall("Article/Abstract/AbstractText"):
                    body = _node_text(at)
                    if not body:
                        continue
                    label = at.get("Label")
                    parts.append(f"{label}: {body}" if label else body)
                el.clear()
                if root is not None and root.tag == "MedlineCitationSet":
                    root.clear()
                if not pmid:
                    raise DataError("MedlineCitation without PMID", path=p)
                if not parts:
                    yield pmid, None
                    continue
                text = f"{title} {' '.join(parts)}".strip()
                meta: dict[str, object] = {"pmid": pmid, "source": p.name, "title_end": len(title)}
                if year is not None:
                    meta["year"] = year
                yield pmid, Example(id=pmid, text=text, meta=meta)
    except ET.ParseError as err:
        line = err.position[0] if hasattr(err, "position") else None
        raise DataError(f"malformed XML: {err}", path=p, line=line) from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read: {err}", path=p) from None


def iter_medline_xml(path: str | Path) -> Iterator[Example]:
    """Stream citations with an abstract from a PubMed/MEDLINE XML file (``MedlineCitationSet`` or
    ``PubmedArticleSet``; gzip allowed). Text is ``title + " " + abstract``; structured abstract sections keep
    their label as ``"LABEL: text"`` (the style of the ADE corpus sentences); ``meta.year`` is the publication
    year (:func:`publication_year`) when the citation has one. Citations without an abstract are
    not documents and are not yielded; :func:`count_medline` reports how many there are.

    Raises:
        DataError: missing file, malformed or truncated XML (with the line), corrupt gzip, a citation
            without PMID, or a PMID that occurs twice in the file.
    """
    p = Path(path)
    seen: set[str] = set()
    for pmid, doc in _iter_citations(p):
        if pmid in seen:
            raise DataError("citation occurs twice in the file", path=p, record_id=pmid)
        seen.add(pmid)
        if doc is not None:
            yield doc


def count_medline(path: str | Path) -> dict[str, int]:
    """Count citations and citations with abstracts in a MEDLINE XML file (one pass; errors as DataError)."""
    total = with_abstract = 0
    for _pmid, doc in _iter_citations(Path(path)):
        total += 1
        with_abstract += doc is not None
    return {"citations": total, "with_abstract": with_abstract}


def iter_abstracts_jsonl(path: str | Path) -> Iterator[Example]:
    """Stream ``{"pmid", "text", ...}`` abstracts (the format of ``pubmed_abstracts.jsonl``)."""
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "pmid" not in obj:
            raise DataError("expected an object with string 'text' and 'pmid'", path=path, line=lineno)
        raw_pmid = obj["pmid"]
        if isinstance(raw_pmid, bool) or not isinstance(raw_pmid, (str, int)) or not str(raw_pmid).strip():
            raise DataError(f"'pmid' must be a non-empty string or integer, found {raw_pmid!r}", path=path,
                            line=lineno)
        pmid = str(raw_pmid).strip()
        if pmid in seen:
            raise DataError("duplicate pmid", path=path, line=lineno, record_id=pmid)
        seen.add(pmid)
        meta = {k: v for k, v in obj.items() if k not in ("text",)}
        meta["pmid"] = pmid
        yield Example(id=pmid, text=obj["text"], meta=meta)


def iter_plain_text(path: str | Path) -> Iterator[Example]:
    """Stream documents from a UTF-8 text file: paragraphs separated by blank lines."""
    p = Path(path)
    buf: list[str] = []
    k = 0
    for _lineno, line in iter_lines(p):
        if line.strip():
            buf.append(line.strip())
        elif buf:
            yield Example(id=f"{p.stem}_{k}", text=" ".join(buf), meta={"source": p.name})
            k += 1
            buf = []
    if buf:
        yield Example(id=f"{p.stem}_{k}", text=" ".join(buf), meta={"source": p.name})


def sniff_format(path: str | Path) -> str:
    """Guess the input format: ``records`` (common schema), ``abstracts`` (JSONL), ``medline``, ``text``, or
    ``brat`` / ``bioc`` (records in those formats, :func:`ade_distill.data.formats.detect_format`)."""
    from ade_distill.data.formats import is_bioc, is_brat

    p = Path(path)
    name = p.name.lower()
    if is_brat(p):
        return "brat"
    if is_bioc(p):
        return "bioc"
    if name.endswith((".xml", ".xml.gz")):
        return "medline"
    if name.endswith((".jsonl", ".json", ".jsonl.gz")):
        for _lineno, obj in iter_jsonl(p):
            if isinstance(obj, dict) and "id" in obj and "text" in obj and "pmid" not in obj:
                return "records"
            if isinstance(obj, dict) and "spans" in obj:
                return "records"
            return "abstracts"
        return "records"
    return "text"


def iter_documents(
    path: str | Path, fmt: str | None = None, *, options: FormatOptions | str | Path | None = None,
) -> Iterator[Example]:
    """Stream documents or records from any supported input file (format sniffed unless given; ``jsonl`` is
    ``records``). ``options``: a BRAT/BioC label map (:func:`ade_distill.data.formats.read_records`).

    Raises:
        ConfigError: an unknown ``fmt`` (the message lists the choices).
        DataError: unreadable or malformed input.
    """
    from ade_distill.data.formats import document_format

    fmt = document_format(fmt) or sniff_format(path)
    if options is not None and fmt not in ("brat", "bioc"):
        log.warning("%s: the label map is not used for %s input (it maps BRAT/BioC labels only); labels are read "
                    "as written", path, "JSONL" if fmt == "records" else fmt)
    if fmt == "records":
        yield from read_examples(path)
    elif fmt == "abstracts":
        yield from iter_abstracts_jsonl(path)
    elif fmt == "medline":
        yield from iter_medline_xml(path)
    elif fmt == "text":
        yield from iter_plain_text(path)
    elif fmt in ("brat", "bioc"):
        from ade_distill.data.formats import read_records

        yield from read_records(path, fmt, options=options)


def to_sentences(documents: Iterable[Example]) -> Iterator[Example]:
    """Split documents into sentence examples ``{doc_id}_s{k}`` with ``meta.doc_start`` (offset in the doc).

    Raises:
        DataError: a document carries spans or relations — they would be lost by the split, so unlabeled
            documents only.
    """
    for doc in documents:
        if doc.spans or doc.relations:
            raise DataError(
                f"to_sentences splits unlabeled documents; this one has {len(doc.spans)} spans and "
                f"{len(doc.relations)} relations that the split would drop",
                record_id=doc.id,
            )
        for k, (start, end) in enumerate(split_sentences(doc.text)):
            meta = {kk: v for kk, v in doc.meta.items() if kk not in ("title_end",)}
            meta.update({"doc_id": doc.id, "sentence_index": k, "doc_start": start})
            yield Example(id=f"{doc.id}_s{k}", text=doc.text[start:end], meta=meta)
