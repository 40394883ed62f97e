"""BRAT standoff (``.txt`` + ``.ann``) ↔ records: one record per document, id = the file stem.

Reading (:func:`read_brat`, a folder searched recursively or one ``.txt``/``.ann`` pair):

* ``T1\\tLABEL START END\\tTEXT`` → a :class:`Span` (offsets are characters of the ``.txt`` read verbatim, so
  ``\\r\\n`` counts two); TEXT must equal the text at the offsets (a newline or tab in it written as a space).
  ``START END;START END`` (discontinuous) follows the ``discontinuous`` policy of the label map — skipped and
  counted by default (:mod:`ade_distill.data.standoff`). Overlapping and nested spans are kept (the schema
  holds them; their number is reported for information).
* ``R1\\tLABEL ROLE:T1 ROLE:T2`` → a :class:`Relation`; the roles of the head and tail come from the label map
  (``Arg1`` → head, ``Arg2`` → tail by default). A relation whose argument was not read is counted and skipped.
* ``#1\\tAnnotatorNotes T1\\tade-distill {...}`` → the score, alignment and meta of ``T1`` (written by
  :func:`write_brat`); other notes, attributes/modifiers (``A``/``M``), normalizations (``N``), events (``E``) and
  equivalences (``*``) are not part of the schema: counted in the report, never silently dropped.
* The record ``meta`` and the record order come from ``ade-distill-records.json`` at the folder's top, when
  there is one (written by :func:`write_brat`); without it records come in file-name order with empty meta.
* A malformed line raises :class:`DataError` naming ``file.ann:LINE``.

Writing (:func:`write_brat`): ``{id}.txt`` + ``{id}.ann`` per record (even without annotations), the manifest
above, and an ``annotation.conf`` declaring the labels used (unless the folder has one), so the folder opens in a
BRAT server for correction. What BRAT cannot hold is counted in the report: spans without offsets (ungrounded
LLM strings) and the relations that use them. A span id that is not ``T<n>`` is renumbered and its original id
kept in its note, so ids survive the round trip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from ade_distill.data.textio import iter_lines
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example, Relation, Span

MANIFEST = "ade-distill-records.json"
CONF = "annotation.conf"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_T_ID = re.compile(r"^T\d+$")
_WS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})
_UNSUPPORTED = {"E": "events_not_read", "A": "attributes_not_read", "M": "attributes_not_read",
                "N": "normalizations_not_read", "*": "equivalences_not_read"}


# -- reading -----------------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    """Where we are, for error messages and report locations."""

    ann: Path
    doc_id: str

    def at(self, line: int) -> str:
        return f"{self.ann.name}:{line}"


def read_brat(
    path: str | Path, options: FormatOptions | None = None, report: FormatReport | None = None
) -> list[Example]:
    """Read a BRAT folder (recursively) or one ``.txt``/``.ann`` pair into records (see the module docstring).

    Raises:
        DataError: a malformed ``.ann`` line (``file:line``), an ``.ann`` without its ``.txt``, two documents
            with the same file stem, a malformed manifest.
    """
    options = options or FormatOptions()
    p = Path(path)
    report = report if report is not None else FormatReport("brat", "read")
    report.path = report.path or str(p)
    root = p if p.is_dir() else p.parent
    pairs = _document_pairs(p, report)
    metas, order = _read_manifest(root / MANIFEST)
    rank = {rid: i for i, rid in enumerate(order)}
    pairs.sort(key=lambda t: (rank.get(t[0], len(rank)), t[0]))
    missing = set(order) - {doc_id for doc_id, _t, _a in pairs}
    if missing and p.is_dir():
        report.note("manifest_records_without_files", len(missing))
    out = []
    for doc_id, txt, ann in pairs:
        ex = read_brat_document(txt, ann, doc_id=doc_id, options=options, report=report, meta=metas.get(doc_id))
        out.append(ex)
    report.records += len(out)
    return out


def _document_pairs(p: Path, report: FormatReport) -> list[tuple[str, Path, Path]]:
    if p.is_file():
        if p.suffix not in (".ann", ".txt"):
            raise DataError("a BRAT document is a .txt file with its .ann file (or a folder of them)", path=p)
        ann, txt = p.with_suffix(".ann"), p.with_suffix(".txt")
        if not ann.is_file() or not txt.is_file():
            raise DataError(f"a BRAT document needs both {txt.name} and {ann.name}", path=p)
        return [(p.stem, txt, ann)]
    if not p.is_dir():
        raise DataError("not found: expected a BRAT folder or a .txt/.ann file", path=p)
    seen: dict[str, Path] = {}
    pairs = []
    for ann in sorted(p.rglob("*.ann")):
        txt = ann.with_suffix(".txt")
        if not txt.is_file():
            raise DataError(f"{txt.name} is missing: every .ann file needs the .txt it annotates", path=ann)
        if ann.stem in seen:
            raise DataError(f"document id {ann.stem!r} occurs twice (also {seen[ann.stem]}); record ids are file "
                            "stems, so rename one", path=ann)
        seen[ann.stem] = ann
        pairs.append((ann.stem, txt, ann))
    for txt in sorted(p.rglob("*.txt")):
        if not txt.with_suffix(".ann").is_file():
            report.add("txt_files_without_ann_not_read", txt.name)
    if not pairs:
        raise DataError("no .ann files: not a BRAT folder", path=p)
    return pairs


def _read_manifest(path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Record meta by id and the record order, from the manifest :func:`write_brat` leaves (none: empty)."""
    if not path.is_file():
        return {}, []
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"malformed manifest: {err}", path=path) from None
    recs = obj.get("records") if isinstance(obj, dict) else None
    if not isinstance(recs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("meta", {}), dict) for r in recs
    ):
        raise DataError("malformed manifest: expected {\"records\": [{\"id\": ..., \"meta\": {...}}, ...]}",
                        path=path)
    return {r["id"]: dict(r.get("meta") or {}) for r in recs}, [r["id"] for r in recs]


def read_brat_document(
    txt: Path, ann: Path, *, doc_id: str, options: FormatOptions, report: FormatReport,
    meta: dict[str, Any] | None = None,
) -> Example:
    """One record from a ``.txt``/``.ann`` pair (counts added to ``report``)."""
    try:
        with txt.open(encoding="utf-8", newline="") as fh:  # newline="": offsets count \r\n as two characters
            text = fh.read()
    except UnicodeDecodeError as err:
        raise DataError(f"invalid UTF-8 at byte {err.start}", path=txt) from None
    ctx = _Ctx(ann, doc_id)
    lines: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for lineno, line in iter_lines(ann):
        if not line.strip():
            continue
        ann_id, sep, rest = line.partition("\t")
        if not sep or not ann_id or any(c.isspace() for c in ann_id):
            raise DataError(f"expected 'ID<TAB>...' (a tab after the annotation id), found {line[:60]!r}", path=ann,
                            line=lineno)
        kind = ann_id[0]
        if kind in _UNSUPPORTED:
            report.add(_UNSUPPORTED[kind], ctx.at(lineno))
            lines["unsupported"].append((lineno, ann_id, rest))
        elif kind in ("T", "R", "#"):
            lines[kind].append((lineno, ann_id, rest))
        else:
            raise DataError(f"unknown annotation id {ann_id!r}: BRAT ids start with T, R, E, A, M, N, # or *",
                            path=ann, line=lineno)
    unsupported = {ann_id for _l, ann_id, _r in lines["unsupported"]}
    spans, skipped = _read_spans(lines["T"], text, ctx, options, report)
    spans = _apply_notes(lines["#"], spans, skipped | unsupported, ctx, report)
    relations = _read_relations(lines["R"], spans, skipped | unsupported, ctx, options, report, lines["#"])
    ids = {tid: s.id for tid, s in spans.items()}
    rels = [r.model_copy(update={"head": ids[r.head], "tail": ids[r.tail]}) for r in relations]
    try:
        ex = Example(id=doc_id, text=text, spans=tuple(spans.values()), relations=tuple(rels), meta=meta or {})
    except ValidationError as err:
        raise DataError("; ".join(e["msg"] for e in err.errors()), path=ann, record_id=doc_id) from None
    report.spans += len(ex.spans)
    report.relations += len(ex.relations)
    overlaps = count_overlaps(ex.spans)
    if overlaps:
        report.note("overlapping_span_pairs", overlaps)
    return ex


def _read_spans(
    rows: list[tuple[int, str, str]], text: str, ctx: _Ctx, options: FormatOptions, report: FormatReport
) -> tuple[dict[str, Span], set[str]]:
    spans: dict[str, Span] = {}
    skipped: set[str] = set()
    for lineno, tid, rest in rows:
        if tid in spans or tid in skipped:
            raise DataError(f"annotation id {tid!r} is used twice", path=ctx.ann, line=lineno)
        head, sep, given = rest.partition("\t")
        label, _, frag_str = head.partition(" ")
        if not sep or not label or not frag_str:
            raise DataError(f"text-bound annotation needs '{tid}<TAB>LABEL START END<TAB>TEXT', found {rest!r}",
                            path=ctx.ann, line=lineno)
        frags = _parse_fragments(frag_str, len(text), ctx, lineno)
        found = " ".join(text[a:b] for a, b in frags)
        if found.translate(_WS) != given.translate(_WS):
            raise DataError(f"{tid} text {given!r} differs from the .txt at {frag_str} = {found!r}",
                            path=ctx.ann, line=lineno)
        mapped = _lookup(options.entity_from_external, label, ctx, lineno)
        if mapped is None:
            report.add("unmapped_spans_skipped", ctx.at(lineno))
            skipped.add(tid)
            continue
        span = fragment_span(tid, mapped, frags, text, options, report, ctx.at(lineno), path=ctx.ann, line=lineno)
        if span is None:
            skipped.add(tid)
        else:
            spans[tid] = span
    return spans, skipped


def _parse_fragments(frag_str: str, n: int, ctx: _Ctx, lineno: int) -> list[tuple[int, int]]:
    frags = []
    for piece in frag_str.split(";"):
        parts = piece.split()
        if len(parts) != 2 or not all(x.isdigit() for x in parts):
            raise DataError(f"offsets {frag_str!r} are not 'START END' or 'START END;START END'", path=ctx.ann,
                            line=lineno)
        a, b = int(parts[0]), int(parts[1])
        if not 0 <= a < b <= n:
            raise DataError(f"offsets [{a}, {b}) are not a non-empty range inside the text (length {n})",
                            path=ctx.ann, line=lineno)
        frags.append((a, b))
    return frags


def _lookup(fn: Any, label: str, ctx: _Ctx, lineno: int) -> Any:
    try:
        return fn(label)
    except DataError as err:
        raise DataError(err.reason, path=ctx.ann, line=lineno) from None


def _apply_notes(
    rows: list[tuple[int, str, str]], spans: dict[str, Span], not_read: set[str], ctx: _Ctx, report: FormatReport
) -> dict[str, Span]:
    """Apply ``ade-distill`` notes of spans; relation notes are applied by :func:`_read_relations`."""
    out = dict(spans)
    for lineno, _nid, rest in rows:
        head, _sep, body = rest.partition("\t")
        parts = head.split()
        if len(parts) != 2:
            raise DataError(f"note needs '#ID<TAB>AnnotatorNotes REF<TAB>TEXT', found {rest!r}", path=ctx.ann,
                            line=lineno)
        ref = parts[1]
        ours = parts[0] == "AnnotatorNotes" and body.startswith(EXTRAS_KEY + " ")
        if ref in not_read:
            continue  # its annotation was counted as not read
        if not ours:
            report.add("notes_not_read", ctx.at(lineno))
            continue
        if ref.startswith("R"):
            continue
        if ref not in out:
            raise DataError(f"note refers to unknown annotation {ref!r}", path=ctx.ann, line=lineno)
        extras = parse_extras(body[len(EXTRAS_KEY) + 1:], path=ctx.ann, line=lineno, record_id=ctx.doc_id)
        try:
            out[ref] = apply_extras(out[ref], extras)
        except ValidationError as err:
            raise DataError(f"note of {ref}: " + "; ".join(e["msg"] for e in err.errors()), path=ctx.ann,
                            line=lineno) from None
    return out


def _relation_notes(rows: list[tuple[int, str, str]], ctx: _Ctx) -> dict[str, tuple[int, dict[str, Any]]]:
    out = {}
    for lineno, _nid, rest in rows:
        head, _sep, body = rest.partition("\t")
        parts = head.split()
        if len(parts) == 2 and parts[1].startswith("R") and body.startswith(EXTRAS_KEY + " "):
            out[parts[1]] = (lineno, parse_extras(body[len(EXTRAS_KEY) + 1:], path=ctx.ann, line=lineno,
                                                  record_id=ctx.doc_id))
    return out


def _read_relations(
    rows: list[tuple[int, str, str]], spans: dict[str, Span], not_read: set[str], ctx: _Ctx,
    options: FormatOptions, report: FormatReport, notes: list[tuple[int, str, str]] | None = None,
) -> list[Relation]:
    rels = []
    seen: set[str] = set()
    extras = _relation_notes(notes or [], ctx)
    for lineno, rid, rest in rows:
        if rid in seen:
            raise DataError(f"annotation id {rid!r} is used twice", path=ctx.ann, line=lineno)
        seen.add(rid)
        parts = rest.split()
        if len(parts) != 3 or not all(":" in a for a in parts[1:]):
            raise DataError(f"relation needs '{rid}<TAB>LABEL ROLE:ID ROLE:ID', found {rest!r}", path=ctx.ann,
                            line=lineno)
        args = dict(a.split(":", 1) for a in parts[1:])
        found = _lookup(options.relation_from_external, parts[0], ctx, lineno)
        if found is None:
            report.add("unmapped_relations_skipped", ctx.at(lineno))
            continue
        label, mapping = found
        if set(args) != {mapping.head_role, mapping.tail_role}:
            raise DataError(f"relation {parts[0]!r} has roles {sorted(args)}; expected {mapping.head_role!r} (head) "
                            f"and {mapping.tail_role!r} (tail) — set head_role/tail_role in the label map",
                            path=ctx.ann, line=lineno)
        head, tail = args[mapping.head_role], args[mapping.tail_role]
        if head in not_read or tail in not_read:
            report.add("relations_skipped_argument_not_read", ctx.at(lineno))
            continue
        for ref in (head, tail):
            if ref not in spans:
                raise DataError(f"relation argument {ref!r} is not a text-bound annotation of this file",
                                path=ctx.ann, line=lineno)
        update = extras.get(rid, (0, {}))[1]
        rels.append(Relation(head=head, tail=tail, label=label, score=update.get("score"),
                             meta=update.get("meta") or {}))
    return rels


# -- writing -----------------------------------------------------------------------------------------------------
def write_brat(
    folder: str | Path, records: Iterable[Example], options: FormatOptions | None = None,
    report: FormatReport | None = None,
) -> FormatReport:
    """Write records as a BRAT folder (see the module docstring); the folder appears whole (written beside it,
    then renamed) when it did not exist.

    Raises:
        ConfigError: the folder already holds ``.ann`` files (choose a new one rather than mixing exports).
        DataError: a record id that cannot be a file name, a duplicate id, a label containing whitespace.
    """
    options = options or FormatOptions()
    out = Path(folder)
    report = report if report is not None else FormatReport("brat", "write")
    report.path = report.path or str(out)
    if out.exists() and (not out.is_dir() or any(out.rglob("*.ann"))):
        raise ConfigError(f"{out} already holds BRAT files (or is a file); choose a new folder for the export")
    records = list(records)
    _check_ids(records)
    target = out if out.exists() else out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    target.mkdir(parents=True, exist_ok=True)
    try:
        types = _TypeCollector()
        for ex in records:
            ann = _ann_lines(ex, options, report, types)
            with (target / f"{ex.id}.txt").open("w", encoding="utf-8", newline="") as fh:
                fh.write(ex.text)
            with (target / f"{ex.id}.ann").open("w", encoding="utf-8", newline="\n") as fh:
                fh.write("".join(line + "\n" for line in ann))
        manifest = {"written_by": "ade-distill", "format": "brat",
                    "records": [{"id": ex.id, **({"meta": ex.meta} if ex.meta else {})} for ex in records]}
        (target / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if not (target / CONF).exists():
            (target / CONF).write_text(types.conf(), encoding="utf-8")
        if target != out:
            os.replace(target, out)
    except BaseException:
        if target != out:
            shutil.rmtree(target, ignore_errors=True)
        raise
    report.records += len(records)
    return report


def _check_ids(records: list[Example]) -> None:
    seen: set[str] = set()
    for ex in records:
        if not _SAFE_ID.match(ex.id) or ex.id.endswith((".ann", ".txt")):
            raise DataError("record id cannot be a BRAT file name (letters, digits, '.', '_', '-' only, not "
                            "starting with '.')", record_id=ex.id)
        if ex.id in seen:
            raise DataError("duplicate record id", record_id=ex.id)
        seen.add(ex.id)


class _TypeCollector:
    """The entity and relation types written, for ``annotation.conf``."""

    def __init__(self) -> None:
        self.entities: set[str] = set()
        self.relations: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))

    def conf(self) -> str:
        lines = ["# written by ade-distill: the labels of the exported records; add types as needed", "[entities]"]
        lines += sorted(self.entities)
        lines += ["", "[relations]"]
        for label, roles in sorted(self.relations.items()):
            lines.append(label + "\t" + ", ".join(f"{r}:{'|'.join(sorted(t))}" for r, t in sorted(roles.items())))
        lines += ["", "[events]", "", "[attributes]", ""]
        return "\n".join(lines)


def _ann_lines(ex: Example, options: FormatOptions, report: FormatReport, types: _TypeCollector) -> list[str]:
    lines: list[str] = []
    notes: list[tuple[str, dict[str, Any]]] = []
    tids = _brat_span_ids(ex.spans)
    written: dict[str, tuple[str, str]] = {}  # span id -> (T id, external label)
    for span, label in mapped_spans(ex, options, report):
        if span.start is None or span.end is None:
            report.add("unaligned_spans_not_written", f"{ex.id}/{span.id}")
            continue
        _check_label(label, ex.id)
        frags = covering_fragments(span)
        pieces = frags or [(span.start, span.end)]
        tid = tids[span.id]
        frag_str = ";".join(f"{a} {b}" for a, b in pieces)
        shown = " ".join(ex.text[a:b] for a, b in pieces).translate(_WS)
        lines.append(f"{tid}\t{label} {frag_str}\t{shown}")
        written[span.id] = (tid, label)
        types.entities.add(label)
        extras = span_extras(span, original_id=None if tid == span.id else span.id,
                             drop_meta=("fragments",) if frags else ())
        if extras:
            notes.append((tid, extras))
        report.spans += 1
    k = 0
    for rel, mapping in mapped_relations(ex, options, report, written):
        for name in (mapping.label, mapping.head_role, mapping.tail_role):
            _check_label(name, ex.id)
        k += 1
        (h, hl), (t, tl) = written[rel.head], written[rel.tail]
        args = sorted([(mapping.head_role, h, hl), (mapping.tail_role, t, tl)])
        lines.append(f"R{k}\t{mapping.label} " + " ".join(f"{role}:{ref}" for role, ref, _l in args))
        for role, _ref, lab in args:
            types.relations[mapping.label][role].add(lab)
        extras = relation_extras(rel)
        if extras:
            notes.append((f"R{k}", extras))
        report.relations += 1
    for n, (ref, extras) in enumerate(notes, start=1):
        lines.append(f"#{n}\tAnnotatorNotes {ref}\t{EXTRAS_KEY} {dump_extras(extras)}")
    return lines


def _brat_span_ids(spans: Iterable[Span]) -> dict[str, str]:
    """Span id → BRAT id: ``T<n>`` ids are kept, any other id gets the next free ``T<n>``."""
    spans = list(spans)
    used = {s.id for s in spans if _T_ID.match(s.id)}
    nxt = max((int(i[1:]) for i in used), default=0)
    out = {}
    for s in spans:
        if s.id in used:
            out[s.id] = s.id
        else:
            nxt += 1
            out[s.id] = f"T{nxt}"
    return out


def _check_label(label: str, record_id: str) -> None:
    """BRAT separates fields by spaces: a label or role with whitespace (fine in BioC) cannot be written."""
    if not label or any(c.isspace() for c in label) or ":" in label:
        raise DataError(f"label or role {label!r} contains whitespace or ':', which BRAT cannot hold; map it to "
                        "another name with --label-map", record_id=record_id)


__all__ = ["MANIFEST", "read_brat", "read_brat_document", "write_brat"]
