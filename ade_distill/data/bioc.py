"""BioC XML and BioC JSON (collection → documents → passages → annotations, relations) ↔ records.

Offsets: a BioC ``location offset`` and a passage ``offset`` are both character offsets in the *document*; an
annotation's offset minus its passage's offset indexes the passage text. (Some C++ BioC tools count UTF-8 bytes;
this module counts characters, as the Python, Java and PubTator tools do.)

Reading (:func:`read_bioc`; the XML or JSON flavour is told from the first character; ``.gz`` allowed):

* ``unit="document"`` (default): one record per BioC document, id = the document id. Its text places every
  passage (or every sentence, for sentence-level BioC) at its offset, the gaps filled with spaces — so PubTator's
  title passage (offset 0) and abstract passage (offset len(title) + 1) give ``title + " " + abstract``, the
  convention of the project's BC5CDR records, and span offsets equal the file's offsets. Annotations and
  relations are read at document, passage and sentence level (also from the sentences of a passage that has
  its own text).
* ``unit="passage"``: one record per passage, id ``{document id}_s{k}``, ``meta`` with ``doc_id``,
  ``passage_index`` and ``doc_start`` (the passage offset, as :func:`ade_distill.data.unlabeled.to_sentences`
  writes it). Annotations and relations that cross passages are counted and skipped.
* An annotation → a :class:`Span` labelled by its ``type`` infon (through the label map); one location →
  a contiguous span whose text must equal the annotation text; several locations → the discontinuous policy;
  no location → an ungrounded span (``alignment="unaligned"``), which BioC, unlike BRAT, can hold.
* A relation with two nodes → a :class:`Relation` labelled by its ``type`` (or PubTator's ``relation``) infon,
  head and tail found by the roles of the label map (``Arg1``/``Arg2`` by default). A relation with another number
  of nodes (BC5CDR's concept-level CID relations have none) is kept whole in ``meta["bioc_relations"]`` and
  counted.
* Infons written by this module (``ade-distill``: score, alignment, meta) are restored; other infons are kept in
  ``meta["bioc_infons"]`` of the span, relation or record.

Writing (:func:`write_bioc`; JSON when the file name ends in ``.json``/``.json.gz``, else XML): one BioC document
per record (id = record id). A record with ``meta["title_end"]`` whose text has a space there and no span across
it gets PubTator's two passages (title, abstract); any other record one passage at offset 0. Relations go at
document level. Every field of the schema is held; a character XML 1.0 cannot hold (a control character) raises
:class:`DataError` — write JSON instead.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal
from xml.etree import ElementTree as ET

from pydantic import ValidationError

from ade_distill.data.standoff import (
    EXTRAS_KEY,
    FormatOptions,
    FormatReport,
    apply_extras,
    count_overlaps,
    covering_fragments,
    dump_extras,
    fragment_span,
    mapped_relations,
    mapped_spans,
    parse_extras,
    relation_extras,
    span_extras,
)
from ade_distill.errors import DataError
from ade_distill.records import AlignmentStatus, Example, Relation, Span

Unit = Literal["document", "passage"]
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# -- reading -----------------------------------------------------------------------------------------------------
def read_bioc(
    path: str | Path, options: FormatOptions | None = None, report: FormatReport | None = None,
    *, unit: Unit = "document",
) -> list[Example]:
    """Read a BioC XML or JSON file into records (see the module docstring).

    Raises:
        DataError: malformed XML (with its line) or JSON, a wrong structure, offsets outside the text, an
            annotation whose text differs from the text at its location, an unknown relation argument, roles
            that do not match the label map — each naming the file and the document.
    """
    options = options or FormatOptions()
    p = Path(path)
    report = report if report is not None else FormatReport("bioc", "read")
    report.path = report.path or str(p)
    if unit not in ("document", "passage"):
        raise DataError(f"unknown BioC unit {unit!r}; expected document or passage", path=p)
    docs = _iter_xml_documents(p) if is_xml(p) else _iter_json_documents(p)
    out: list[Example] = []
    seen: set[str] = set()
    for doc in docs:
        for ex in _DocumentReader(doc, p, options, report, unit).records():
            if ex.id in seen:
                raise DataError("duplicate record id", path=p, record_id=ex.id)
            seen.add(ex.id)
            out.append(ex)
    report.records += len(out)
    return out


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise DataError("file not found", path=path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def is_xml(path: Path) -> bool:
    """True when the file's first non-blank character is ``<`` (XML), False for JSON (``{`` or ``[``)."""
    try:
        with _open(path) as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read: {err}", path=path) from None
    return head.startswith(b"<")


def _iter_xml_documents(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with _open(path) as fh:
            root: ET.Element | None = None
            for event, el in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = el
                        if el.tag != "collection":
                            raise DataError(f"the root element is <{el.tag}>, not a BioC <collection>", path=path)
                    continue
                if el.tag == "document":
                    yield _xml_document(el, path)
                    el.clear()
                    if root is not None:
                        root.clear()
    except ET.ParseError as err:
        line = err.position[0] if hasattr(err, "position") else None
        raise DataError(f"malformed XML: {err}", path=path, line=line) from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read: {err}", path=path) from None


def _infons(el: ET.Element) -> dict[str, str]:
    return {i.get("key", ""): i.text or "" for i in el.findall("infon")}


def _xml_int(el: ET.Element, what: str | None, path: Path, doc_id: str | None) -> int:
    """The integer attribute ``what`` of ``el``, or its text when ``what`` is None."""
    raw = (el.text or "").strip() if what is None else el.get(what, "")
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"<{el.tag}> {what or 'text'} {raw!r} is not an integer", path=path, record_id=doc_id) from None


def _xml_annotation(el: ET.Element, path: Path, doc_id: str) -> dict[str, Any]:
    return {"id": el.get("id"), "infons": _infons(el), "text": el.findtext("text") or "",
            "locations": [{"offset": _xml_int(loc, "offset", path, doc_id), "length": _xml_int(loc, "length", path, doc_id)}
                          for loc in el.findall("location")]}


def _xml_relation(el: ET.Element) -> dict[str, Any]:
    return {"id": el.get("id"), "infons": _infons(el),
            "nodes": [{"refid": n.get("refid", ""), "role": n.get("role", "")} for n in el.findall("node")]}


def _xml_passage(el: ET.Element, path: Path, doc_id: str) -> dict[str, Any]:
    off = el.find("offset")
    if off is None:
        raise DataError(f"<{el.tag}> without <offset>", path=path, record_id=doc_id)
    return {"offset": _xml_int(off, None, path, doc_id), "infons": _infons(el), "text": el.findtext("text"),
            "sentences": [_xml_passage(s, path, doc_id) for s in el.findall("sentence")],
            "annotations": [_xml_annotation(a, path, doc_id) for a in el.findall("annotation")],
            "relations": [_xml_relation(r) for r in el.findall("relation")]}


def _xml_document(el: ET.Element, path: Path) -> dict[str, Any]:
    doc_id = (el.findtext("id") or "").strip()
    if not doc_id:
        raise DataError("<document> without <id>", path=path)
    return {"id": doc_id, "infons": _infons(el),
            "passages": [_xml_passage(p, path, doc_id) for p in el.findall("passage")],
            "annotations": [_xml_annotation(a, path, doc_id) for a in el.findall("annotation")],
            "relations": [_xml_relation(r) for r in el.findall("relation")]}


def _iter_json_documents(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with _open(path) as fh:
            obj = json.loads(fh.read().decode("utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON: {err.msg}", path=path, line=err.lineno) from None
    except UnicodeDecodeError as err:
        raise DataError(f"invalid UTF-8 at byte {err.start}", path=path) from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read: {err}", path=path) from None
    collections = obj if isinstance(obj, list) else [obj]
    for coll in collections:
        if not isinstance(coll, dict) or not isinstance(coll.get("documents"), list):
            raise DataError("not a BioC JSON collection: expected an object with a 'documents' list", path=path)
        for doc in coll["documents"]:
            if not isinstance(doc, dict) or not isinstance(doc.get("id"), (str, int)) or str(doc["id"]) == "":
                raise DataError("a BioC JSON document needs an 'id'", path=path)
            yield doc


@dataclass
class _Piece:
    """A passage (or sentence) text at its document offset."""

    offset: int
    text: str


@dataclass
class _Group:
    """The passages that become one record, and their annotations and relations."""

    index: int
    pieces: list[_Piece] = field(default_factory=list)
    infons: dict[str, str] = field(default_factory=dict)
    base: int = 0
    end: int = 0
    text: str = ""


class _DocumentReader:
    """One BioC document (as a JSON-shaped dict) → one record, or one per passage."""

    def __init__(self, doc: dict[str, Any], path: Path, options: FormatOptions, report: FormatReport,
                 unit: Unit) -> None:
        self.doc, self.path, self.options, self.report, self.unit = doc, path, options, report, unit
        self.doc_id = str(doc["id"])

    def error(self, msg: str) -> DataError:
        return DataError(msg, path=self.path, record_id=self.doc_id)

    def records(self) -> list[Example]:
        groups, annotations, relations = self._collect()
        for g in groups:
            self._layout(g)
        spans, owner = self._spans(annotations, groups)
        rels, loose = self._relations(relations, spans, owner)
        meta = self._meta()
        if loose:
            meta["bioc_relations"] = loose
        out = []
        for g in groups:
            g_spans = [s for sid, s in spans.items() if owner[sid] == g.index]
            g_rels = [r for r, k in rels if k == g.index]
            ids = {sid: s.id for sid, s in spans.items()}
            g_rels = [r.model_copy(update={"head": ids[r.head], "tail": ids[r.tail]}) for r in g_rels]
            rid, rmeta = self.doc_id, meta
            if self.unit == "passage":
                rid = f"{self.doc_id}_s{g.index}"
                rmeta = {**meta, "doc_id": self.doc_id, "passage_index": g.index, "doc_start": g.base}
                if g.infons:
                    rmeta["passage_infons"] = g.infons
            try:
                ex = Example(id=rid, text=g.text, spans=tuple(g_spans), relations=tuple(g_rels), meta=rmeta)
            except ValidationError as err:
                raise DataError("; ".join(e["msg"] for e in err.errors()), path=self.path, record_id=rid) from None
            self.report.spans += len(ex.spans)
            self.report.relations += len(ex.relations)
            overlaps = count_overlaps(ex.spans)
            if overlaps:
                self.report.note("overlapping_span_pairs", overlaps)
            out.append(ex)
        return out

    # -- structure -----------------------------------------------------------------------------------------------
    def _collect(self) -> tuple[list[_Group], list[dict[str, Any]], list[dict[str, Any]]]:
        passages = self._list(self.doc, "passages")
        if not passages:
            raise self.error("a BioC document needs at least one passage")
        annotations = list(self._list(self.doc, "annotations"))
        relations = list(self._list(self.doc, "relations"))
        groups: list[_Group] = []
        for k, p in enumerate(passages):
            g = _Group(index=k if self.unit == "passage" else 0, infons=dict(p.get("infons") or {}))
            sentences = self._list(p, "sentences")
            # the text: the passage's, else (sentence-level BioC) its sentences' at their offsets
            parts = sentences if sentences and not p.get("text") else [p]
            for part in parts:
                g.pieces.append(_Piece(self._int(part.get("offset"), "passage offset"), part.get("text") or ""))
            # the annotations and relations of the passage and of its sentences, either way (their offsets are
            # document offsets, inside the passage text when the passage has one)
            for part in (p, *sentences):
                annotations += self._list(part, "annotations")
                relations += self._list(part, "relations")
            if self.unit == "passage" or not groups:
                groups.append(g)
            else:
                groups[0].pieces += g.pieces
        return groups, annotations, relations

    def _layout(self, g: _Group) -> None:
        """The group's text: its pieces at their offsets, gaps filled with spaces (from 0 for a document)."""
        pieces = sorted(g.pieces, key=lambda x: x.offset)
        g.base = pieces[0].offset if self.unit == "passage" else 0
        cur, chunks = g.base, []
        for piece in pieces:
            if piece.offset < cur:
                raise self.error(f"passages overlap: one at offset {piece.offset} starts before the previous one "
                                 f"ends at {cur}")
            chunks.append(" " * (piece.offset - cur) + piece.text)
            cur = piece.offset + len(piece.text)
        g.text, g.end = "".join(chunks), cur

    def _meta(self) -> dict[str, Any]:
        infons = dict(self.doc.get("infons") or {})
        raw = infons.pop(EXTRAS_KEY, None)
        meta: dict[str, Any] = {}
        if raw is not None:
            meta = dict(parse_extras(raw, path=self.path, record_id=self.doc_id).get("meta") or {})
        if infons:
            meta["bioc_infons"] = infons
        return meta

    # -- annotations ---------------------------------------------------------------------------------------------
    def _spans(self, annotations: list[dict[str, Any]], groups: list[_Group]) -> tuple[dict[str, Span], dict[str, int]]:
        spans: dict[str, Span] = {}
        owner: dict[str, int] = {}
        self.skipped: set[str] = set()
        for k, a in enumerate(annotations):
            aid = str(a.get("id") or f"_A{k}")
            if aid in spans or aid in self.skipped:
                raise self.error(f"annotation id {aid!r} is used twice")
            span, group = self._span(aid, a, groups)
            if span is None:
                self.skipped.add(aid)
                continue
            spans[aid], owner[aid] = span, group
        return spans, owner

    def _span(self, aid: str, a: dict[str, Any], groups: list[_Group]) -> tuple[Span | None, int]:
        where = f"{self.doc_id}/{aid}"
        infons = dict(a.get("infons") or {})
        raw_extras = infons.pop(EXTRAS_KEY, None)
        ext_label = infons.pop("type", None)
        if not ext_label:
            raise self.error(f"annotation {aid!r} has no 'type' infon (its label)")
        try:
            label = self.options.entity_from_external(ext_label)
        except DataError as err:
            raise self.error(err.reason) from None
        if label is None:
            self.report.add("unmapped_spans_skipped", where)
            return None, 0
        locs = [(self._int(loc.get("offset"), "location offset"), self._int(loc.get("length"), "location length"))
                for loc in self._list(a, "locations")]
        text = a.get("text") or ""
        if not locs:
            span: Span | None = Span(id=aid, label=label, text=text, alignment=AlignmentStatus.UNALIGNED)
            group = groups[0].index
        else:
            g = self._group_of(locs, groups)
            if g is None:
                self.report.add("annotations_across_passages_skipped", where)
                return None, 0
            frags = [(o - g.base, o - g.base + n) for o, n in locs]
            for s, e in frags:
                if not 0 <= s < e <= len(g.text):
                    raise self.error(f"annotation {aid!r} location [{s + g.base}, {e + g.base}) is empty or outside "
                                     "the passages")
            if len(frags) == 1 and g.text[frags[0][0]:frags[0][1]] != text:
                s, e = frags[0]
                raise self.error(f"annotation {aid!r} text {text!r} differs from the passage text at its location "
                                 f"{g.text[s:e]!r}")
            span = fragment_span(aid, label, frags, g.text, self.options, self.report, where, path=self.path,
                                 record_id=self.doc_id)
            group = g.index
        if span is None:
            return None, 0
        try:
            if raw_extras is not None:
                span = apply_extras(span, parse_extras(raw_extras, path=self.path, record_id=self.doc_id))
            if infons:
                span = span.model_copy(update={"meta": {**span.meta, "bioc_infons": infons}})
        except ValidationError as err:
            raise self.error(f"annotation {aid!r}: " + "; ".join(e["msg"] for e in err.errors())) from None
        return span, group

    def _group_of(self, locs: list[tuple[int, int]], groups: list[_Group]) -> _Group | None:
        lo, hi = min(o for o, _n in locs), max(o + n for o, n in locs)
        for g in groups:
            if g.base <= lo and hi <= max(g.end, g.base):
                return g
        if self.unit == "document":
            raise self.error(f"annotation location [{lo}, {hi}) lies outside the document text")
        return None

    # -- relations -----------------------------------------------------------------------------------------------
    def _relations(
        self, relations: list[dict[str, Any]], spans: dict[str, Span], owner: dict[str, int]
    ) -> tuple[list[tuple[Relation, int]], list[dict[str, Any]]]:
        out: list[tuple[Relation, int]] = []
        loose: list[dict[str, Any]] = []
        for k, r in enumerate(relations):
            rid = str(r.get("id") or f"_R{k}")
            where = f"{self.doc_id}/{rid}"
            nodes = self._list(r, "nodes")
            infons = dict(r.get("infons") or {})
            if len(nodes) != 2:
                loose.append({"id": rid, "infons": infons, "nodes": nodes})
                self.report.add("relations_without_two_nodes_kept_in_meta", where)
                continue
            raw_extras = infons.pop(EXTRAS_KEY, None)
            ext_label = infons.pop("type", None) or infons.pop("relation", None)
            if not ext_label:
                raise self.error(f"relation {rid!r} has no 'type' (or 'relation') infon")
            try:
                found = self.options.relation_from_external(ext_label)
            except DataError as err:
                raise self.error(err.reason) from None
            if found is None:
                self.report.add("unmapped_relations_skipped", where)
                continue
            label, mapping = found
            roles = {str(n.get("role", "")): str(n.get("refid", "")) for n in nodes}
            if set(roles) != {mapping.head_role, mapping.tail_role}:
                raise self.error(f"relation {rid!r} ({ext_label}) has roles {sorted(roles)}; expected "
                                 f"{mapping.head_role!r} (head) and {mapping.tail_role!r} (tail) — set "
                                 "head_role/tail_role in the label map")
            head, tail = roles[mapping.head_role], roles[mapping.tail_role]
            if head in self.skipped or tail in self.skipped:
                self.report.add("relations_skipped_argument_not_read", where)
                continue
            for ref in (head, tail):
                if ref not in spans:
                    raise self.error(f"relation {rid!r} refers to unknown annotation {ref!r}")
            if owner[head] != owner[tail]:
                self.report.add("relations_across_passages_skipped", where)
                continue
            extras = parse_extras(raw_extras, path=self.path, record_id=self.doc_id) if raw_extras else {}
            meta = dict(extras.get("meta") or {})
            if infons:
                meta["bioc_infons"] = infons
            try:
                rel = Relation(head=head, tail=tail, label=label, score=extras.get("score"), meta=meta)
            except ValidationError as err:
                raise self.error(f"relation {rid!r}: " + "; ".join(e["msg"] for e in err.errors())) from None
            out.append((rel, owner[head]))
        return out, loose

    # -- checks --------------------------------------------------------------------------------------------------
    def _list(self, obj: dict[str, Any], key: str) -> list[Any]:
        value = obj.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(f"'{key}' must be a list of objects")
        return value

    def _int(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(f"{what} {value!r} is not an integer")
        try:
            return int(value)
        except ValueError:
            raise self.error(f"{what} {value!r} is not an integer") from None


# -- writing -----------------------------------------------------------------------------------------------------
def write_bioc(
    path: str | Path, records: Iterable[Example], options: FormatOptions | None = None,
    report: FormatReport | None = None, *, as_json: bool | None = None,
) -> FormatReport:
    """Write records as one BioC collection (XML, or JSON for ``.json``/``.json.gz`` names or ``as_json``),
    atomically (a temporary file renamed into place). See the module docstring.

    Raises:
        DataError: a record whose text or labels XML cannot hold (control characters) when writing XML.
    """
    options = options or FormatOptions()
    p = Path(path)
    report = report if report is not None else FormatReport("bioc", "write")
    report.path = report.path or str(p)
    if as_json is None:
        as_json = p.name.lower().endswith((".json", ".json.gz"))
    docs = [_document(ex, options, report) for ex in records]
    report.records += len(docs)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with (gzip.open(tmp, "wt", encoding="utf-8", newline="") if p.suffix == ".gz"
              else tmp.open("w", encoding="utf-8", newline="")) as fh:
            chunks = _json_chunks(docs) if as_json else _xml_chunks(docs)
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return report


def _passages(ex: Example) -> list[tuple[int, int, str | None]]:
    """``(start, end, type)`` of the passages of a record: title and abstract when ``meta.title_end`` splits the
    text at a space no span crosses, else the whole text."""
    n = len(ex.text)
    t = ex.meta.get("title_end")
    if isinstance(t, int) and not isinstance(t, bool) and 0 < t < n - 1 and ex.text[t] == " " and not any(
        s.start is not None and s.end is not None and s.start < t + 1 and s.end > t for s in ex.spans
    ):
        return [(0, t, "title"), (t + 1, n, "abstract")]
    return [(0, n, None)]


def _document(ex: Example, options: FormatOptions, report: FormatReport) -> dict[str, Any]:
    passages = []
    for start, end, kind in _passages(ex):
        passages.append({"offset": start, "infons": {"type": kind} if kind else {}, "text": ex.text[start:end],
                         "sentences": [], "annotations": [], "relations": []})
    for span, label in mapped_spans(ex, options, report):
        frags = covering_fragments(span)
        infons = {"type": label}
        extras = span_extras(span, drop_meta=("fragments",) if frags else ())
        if extras:
            infons[EXTRAS_KEY] = dump_extras(extras)
        if span.start is None or span.end is None:
            locs, text, k = [], span.text, 0
        else:
            pieces = frags or [(span.start, span.end)]
            locs = [{"offset": a, "length": b - a} for a, b in pieces]
            text = " ".join(ex.text[a:b] for a, b in pieces)
            k = max(i for i, p in enumerate(passages) if p["offset"] <= span.start)
        passages[k]["annotations"].append({"id": span.id, "infons": infons, "text": text, "locations": locs})
        report.spans += 1
    written = {a["id"] for p in passages for a in p["annotations"]}
    relations = []
    for rel, mapping in mapped_relations(ex, options, report, written):
        infons = {"type": mapping.label}
        extras = relation_extras(rel)
        if extras:
            infons[EXTRAS_KEY] = dump_extras(extras)
        relations.append({"id": f"R{len(relations) + 1}", "infons": infons,
                          "nodes": [{"refid": rel.head, "role": mapping.head_role},
                                    {"refid": rel.tail, "role": mapping.tail_role}]})
        report.relations += 1
    infons = {EXTRAS_KEY: dump_extras({"meta": ex.meta})} if ex.meta else {}
    return {"id": ex.id, "infons": infons, "passages": passages, "annotations": [], "relations": relations}


_COLLECTION = {"source": "ade-distill", "date": "", "key": "ade-distill.key", "infons": {}}


def _json_chunks(docs: list[dict[str, Any]]) -> Iterator[str]:
    head = json.dumps({**_COLLECTION, "documents": []}, ensure_ascii=False)
    yield head[: -len("[]}")] + "[\n"
    for i, doc in enumerate(docs):
        yield json.dumps(doc, ensure_ascii=False) + (",\n" if i < len(docs) - 1 else "\n")
    yield "]}\n"


def _esc(s: str, doc_id: str) -> str:
    bad = _XML_BAD.search(s)
    if bad:
        raise DataError(f"character U+{ord(bad.group()):04X} cannot be written in XML 1.0; write BioC JSON "
                        "(a .json file name) instead", record_id=doc_id)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(s: str, doc_id: str) -> str:
    return _esc(s, doc_id).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


def _xml_infons(infons: dict[str, str], ind: str, doc_id: str) -> list[str]:
    return [f'{ind}<infon key="{_attr(k, doc_id)}">{_esc(v, doc_id)}</infon>' for k, v in infons.items()]


def _xml_relation_lines(r: dict[str, Any], ind: str, did: str) -> list[str]:
    lines = [f'{ind}<relation id="{_attr(r["id"], did)}">', *_xml_infons(r["infons"], ind + "  ", did)]
    lines += [f'{ind}  <node refid="{_attr(n["refid"], did)}" role="{_attr(n["role"], did)}"/>' for n in r["nodes"]]
    return [*lines, f"{ind}</relation>"]


def _xml_document_lines(doc: dict[str, Any]) -> list[str]:
    did = doc["id"]
    lines = ["  <document>", f"    <id>{_esc(did, did)}</id>", *_xml_infons(doc["infons"], "    ", did)]
    for p in doc["passages"]:
        lines += ["    <passage>", *_xml_infons(p["infons"], "      ", did), f"      <offset>{p['offset']}</offset>",
                  f"      <text>{_esc(p['text'], did)}</text>"]
        for a in p["annotations"]:
            lines += [f'      <annotation id="{_attr(a["id"], did)}">', *_xml_infons(a["infons"], "        ", did)]
            lines += [f'        <location offset="{loc["offset"]}" length="{loc["length"]}"/>' for loc in a["locations"]]
            lines += [f"        <text>{_esc(a['text'], did)}</text>", "      </annotation>"]
        lines.append("    </passage>")
    for r in doc["relations"]:
        lines += _xml_relation_lines(r, "    ", did)
    return [*lines, "  </document>"]


def _xml_chunks(docs: list[dict[str, Any]]) -> Iterator[str]:
    yield ("<?xml version='1.0' encoding='UTF-8'?>\n<!DOCTYPE collection SYSTEM 'BioC.dtd'>\n<collection>\n"
           f"  <source>{_COLLECTION['source']}</source>\n  <date></date>\n  <key>{_COLLECTION['key']}</key>\n")
    for doc in docs:
        yield "\n".join(_xml_document_lines(doc)) + "\n"
    yield "</collection>\n"


__all__ = ["read_bioc", "write_bioc", "is_xml"]
