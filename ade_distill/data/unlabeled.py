"""Unlabeled text for the teacher: JSONL abstracts, PubMed/MEDLINE XML (``.xml``/``.xml.gz``), plain text,
or records already in the common schema. Everything streams; nothing holds a whole file in memory.

Documents are yielded as :class:`Example` without spans; :func:`to_sentences` splits them into sentence
examples whose ``meta`` keeps ``doc_id``, ``sentence_index`` and ``doc_start`` so predictions can be mapped
back to document offsets.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from xml.etree import ElementTree as ET

from ade_distill.data.sentences import split_sentences
from ade_distill.errors import DataError
from ade_distill.records import Example, iter_jsonl, parse_example


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _node_text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


def iter_medline_xml(path: str | Path) -> Iterator[Example]:
    """Stream citations with an abstract from a PubMed/MEDLINE XML file (``MedlineCitationSet`` or
    ``PubmedArticleSet``; gzip allowed). Text is ``title + " " + abstract``; structured abstract sections keep
    their label as ``"LABEL: text"`` (the style of the ADE corpus sentences). Citations without an abstract are
    not documents and are not yielded; :func:`count_medline` reports how many there are.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=p)
    try:
        with _open_binary(p) as fh:
            for _event, el in ET.iterparse(fh, events=("end",)):
                if el.tag != "MedlineCitation":
                    continue
                pmid_el = el.find("PMID")
                pmid = pmid_el.text.strip() if pmid_el is not None and pmid_el.text else None
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
                if pmid is None:
                    raise DataError("MedlineCitation without PMID", path=p)
                if not parts:
                    continue
                text = f"{title} {' '.join(parts)}".strip()
                yield Example(id=pmid, text=text, meta={"pmid": pmid, "source": p.name, "title_end": len(title)})
    except ET.ParseError as err:
        line = err.position[0] if hasattr(err, "position") else None
        raise DataError(f"malformed XML: {err}", path=p, line=line) from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read: {err}", path=p) from None


def count_medline(path: str | Path) -> dict[str, int]:
    """Count citations and citations with abstracts in a MEDLINE XML file."""
    p = Path(path)
    total = 0
    with _open_binary(p) as fh:
        for _event, el in ET.iterparse(fh, events=("end",)):
            if el.tag == "MedlineCitation":
                total += 1
                el.clear()
    with_abstract = sum(1 for _ in iter_medline_xml(p))
    return {"citations": total, "with_abstract": with_abstract}


def iter_abstracts_jsonl(path: str | Path) -> Iterator[Example]:
    """Stream ``{"pmid", "text", ...}`` abstracts (the format of ``pubmed_abstracts.jsonl``)."""
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "pmid" not in obj:
            raise DataError("expected an object with string 'text' and 'pmid'", path=path, line=lineno)
        pmid = str(obj["pmid"])
        meta = {k: v for k, v in obj.items() if k not in ("text",)}
        meta["pmid"] = pmid
        yield Example(id=pmid, text=obj["text"], meta=meta)


def iter_plain_text(path: str | Path) -> Iterator[Example]:
    """Stream documents from a UTF-8 text file: paragraphs separated by blank lines."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=p)
    buf: list[str] = []
    k = 0
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"invalid UTF-8 at byte {err.start}", path=p, line=lineno) from None
            if line.strip():
                buf.append(line.strip())
            elif buf:
                yield Example(id=f"{p.stem}_{k}", text=" ".join(buf), meta={"source": p.name})
                k += 1
                buf = []
    if buf:
        yield Example(id=f"{p.stem}_{k}", text=" ".join(buf), meta={"source": p.name})


def sniff_format(path: str | Path) -> str:
    """Guess the input format: ``records`` (common schema), ``abstracts`` (JSONL), ``medline`` or ``text``."""
    p = Path(path)
    name = p.name.lower()
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


def iter_documents(path: str | Path, fmt: str | None = None) -> Iterator[Example]:
    """Stream documents or records from any supported input file (format sniffed unless given)."""
    fmt = fmt or sniff_format(path)
    if fmt == "records":
        for lineno, obj in iter_jsonl(path):
            yield parse_example(obj, path=path, line=lineno)
    elif fmt == "abstracts":
        yield from iter_abstracts_jsonl(path)
    elif fmt == "medline":
        yield from iter_medline_xml(path)
    elif fmt == "text":
        yield from iter_plain_text(path)
    else:
        raise DataError(f"unknown input format {fmt!r}; expected records, abstracts, medline or text", path=path)


def to_sentences(documents: Iterable[Example]) -> Iterator[Example]:
    """Split documents into sentence examples ``{doc_id}_s{k}`` with ``meta.doc_start`` (offset in the doc)."""
    for doc in documents:
        for k, (start, end) in enumerate(split_sentences(doc.text)):
            meta = {kk: v for kk, v in doc.meta.items() if kk not in ("title_end",)}
            meta.update({"doc_id": doc.id, "sentence_index": k, "doc_start": start})
            yield Example(id=f"{doc.id}_s{k}", text=doc.text[start:end], meta=meta)
