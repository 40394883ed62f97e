"""What the BRAT and BioC readers/writers share: the label map, the discontinuous-span policy, the report of what a
format could not hold, and the extras (score, alignment, meta) carried beside each annotation.

**Label map** (:class:`FormatOptions`, a small YAML file passed as ``--label-map``)::

    entities: {DRUG: Drug, ADE: ADE}            # project label -> label in the BRAT/BioC files
    relations:
      ADE: {label: ADE-Drug, head_role: Arg2, tail_role: Arg1}   # n2c2 2018: Arg1 is the ADE, Arg2 the drug
    unmapped: skip                              # labels not in the map: keep (as is), skip (counted) or error
    discontinuous: skip                         # discontinuous spans: skip (counted), cover or error

Labels not named in the map pass through unchanged (``unmapped: keep``, the default); a relation not named uses
the roles ``Arg1`` (head) and ``Arg2`` (tail), BRAT's defaults. ``ade_distill/data/mappings/n2c2_2018.yaml`` is
the map for the n2c2 2018 ADE track.

**Discontinuous spans** (BRAT ``T1\\tADE 10 15;20 30\\t...``, a BioC annotation with several locations): the record
schema holds contiguous ``[start, end)`` spans only, so

* ``skip`` (default): the span is not read, nor any relation that uses it; both are counted in the report;
* ``cover``: the span becomes its covering extent ``[first start, last end)`` (the text in between included) with
  the fragments kept in ``span.meta["fragments"]``; a writer writes such a span back as its fragments, so
  ``cover`` round-trips — but scoring sees the covering extent;
* ``error``: :class:`DataError` at the first one.

**Extras**: a span's or relation's ``score``, ``alignment`` and ``meta`` (and a span id BRAT cannot hold) travel as
one compact JSON object: a BRAT ``AnnotatorNotes`` line ``#3\\tAnnotatorNotes T1\\tade-distill {"score": 0.91}``, or a
BioC ``<infon key="ade-distill">`` of the annotation/relation/document.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import AlignmentStatus, Example, Relation, Span

log = logging.getLogger(__name__)

EXTRAS_KEY = "ade-distill"
"""BRAT note prefix and BioC infon key of the JSON extras."""

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"


class RelationMapping(BaseModel):
    """How one project relation is written in a BRAT/BioC project: its label there and the argument roles that
    hold the project's head and tail."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str = Field(min_length=1)
    head_role: str = Field(default="Arg1", min_length=1)
    tail_role: str = Field(default="Arg2", min_length=1)

    @model_validator(mode="after")
    def _distinct_roles(self) -> RelationMapping:
        if self.head_role == self.tail_role:
            raise ValueError(f"head_role and tail_role must differ, both are {self.head_role!r}")
        return self


class FormatOptions(BaseModel):
    """Label map and policies for BRAT/BioC reading and writing (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    entities: dict[str, str] = Field(default_factory=dict, description="project entity label -> external label")
    relations: dict[str, RelationMapping] = Field(default_factory=dict, description="project relation label -> mapping")
    unmapped: Literal["keep", "skip", "error"] = "keep"
    discontinuous: Literal["skip", "cover", "error"] = "skip"

    @field_validator("relations", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ``ADE: ADE-Drug`` is short for ``ADE: {label: ADE-Drug}``
        if isinstance(value, dict):
            return {k: {"label": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _invertible(self) -> FormatOptions:
        for kind, pairs in (("entities", self.entities.items()),
                            ("relations", ((k, v.label) for k, v in self.relations.items()))):
            seen: dict[str, str] = {}
            for project, external in pairs:
                if external in seen:
                    raise ValueError(f"{kind}: {seen[external]!r} and {project!r} both map to {external!r}; "
                                     "the map must be one-to-one so files can be read back")
                seen[external] = project
        return self

    # -- lookups ---------------------------------------------------------------------------------------------
    def entity_to_external(self, label: str) -> str | None:
        """The external label of a project entity label; ``None`` when unmapped and ``unmapped: skip``."""
        return self._out(self.entities.get(label), label, "entity")

    def entity_from_external(self, label: str) -> str | None:
        inverse = {v: k for k, v in self.entities.items()}
        return self._out(inverse.get(label), label, "entity")

    def relation_to_external(self, label: str) -> RelationMapping | None:
        found = self.relations.get(label)
        if found is not None:
            return found
        return None if self._out(None, label, "relation") is None else RelationMapping(label=label)

    def relation_from_external(self, label: str) -> tuple[str, RelationMapping] | None:
        """``(project label, mapping)`` for an external relation label; ``None`` to skip it."""
        for project, mapping in self.relations.items():
            if mapping.label == label:
                return project, mapping
        return None if self._out(None, label, "relation") is None else (label, RelationMapping(label=label))

    def _out(self, mapped: str | None, label: str, kind: str) -> str | None:
        if mapped is not None:
            return mapped
        if self.unmapped == "error":
            known = sorted(self.entities) + sorted(self.entities.values()) if kind == "entity" else \
                sorted(self.relations) + sorted(m.label for m in self.relations.values())
            raise DataError(f"{kind} label {label!r} is not in the label map (knows {known}); add it, or set "
                            "unmapped: keep or skip")
        if self.unmapped == "skip":
            return None
        return label


def load_format_options(path: str | Path | None) -> FormatOptions:
    """Read a label-map YAML (or a shipped name such as ``n2c2_2018``); ``None`` → the identity map.

    Raises:
        ConfigError: missing or invalid file, naming the field.
    """
    from ade_distill.yamlio import read_yaml_mapping

    if path is None:
        return FormatOptions()
    p = Path(path)
    shipped = MAPPINGS_DIR / f"{path}.yaml"
    if not p.is_file() and shipped.is_file():
        p = shipped
    raw = read_yaml_mapping(
        p, not_found=f"label map {str(path)!r} not found: give a YAML file or one of {shipped_maps()}",
        not_mapping="a label map must be a YAML mapping (entities, relations, unmapped, discontinuous)")
    try:
        return FormatOptions.model_validate(raw)
    except ValidationError as err:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                        for e in err.errors())
        raise ConfigError(f"{p}: invalid label map: {msg}") from None


def shipped_maps() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


@dataclass
class FormatReport:
    """Counts of one read or write: records, spans and relations carried, and — under ``issues`` — everything
    the format could not hold or the options chose to skip, by kind; ``where`` keeps the first few locations of
    each kind (``file:line`` or ``record/annotation``)."""

    fmt: str
    direction: Literal["read", "write"]
    path: str = ""
    records: int = 0
    spans: int = 0
    relations: int = 0
    issues: Counter[str] = field(default_factory=Counter)
    info: Counter[str] = field(default_factory=Counter)
    where: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str | None = None, n: int = 1) -> None:
        """Count ``n`` losses of ``kind`` (and remember up to 5 locations)."""
        self.issues[kind] += n
        if where is not None:
            spots = self.where.setdefault(kind, [])
            if len(spots) < 5:
                spots.append(where)

    def note(self, kind: str, n: int = 1) -> None:
        """Count something worth knowing that loses nothing (e.g. overlapping spans, which the schema holds)."""
        self.info[kind] += n

    @property
    def lossless(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        """One line: what was carried, then each issue with its count and first locations."""
        verb = "read" if self.direction == "read" else "wrote"
        head = (f"{verb} {self.records:,} records ({self.spans:,} spans, {self.relations:,} relations) "
                f"{'from' if self.direction == 'read' else 'to'} {self.fmt} {self.path}")
        if self.info:
            head += "; " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.info.items()))
        if not self.issues:
            return head + "; nothing lost"
        parts = []
        for kind, n in sorted(self.issues.items()):
            spots = self.where.get(kind)
            parts.append(f"{kind} {n:,}" + (f" (e.g. {', '.join(spots[:3])})" if spots else ""))
        return head + "; NOT carried: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.fmt, "direction": self.direction, "path": self.path, "records": self.records,
                "spans": self.spans, "relations": self.relations, "issues": dict(sorted(self.issues.items())),
                "info": dict(sorted(self.info.items())), "where": self.where}

    def log(self) -> None:
        """Log the summary: a warning when something was not carried, else at INFO."""
        (log.warning if self.issues else log.info)("%s", self.summary())


# -- extras: score, alignment, meta (and an id the format cannot hold) ------------------------------------------
def span_extras(span: Span, *, original_id: str | None = None, drop_meta: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON extras of a span (empty when it has none)."""
    out: dict[str, Any] = {}
    if original_id is not None:
        out["id"] = original_id
    if span.score is not None:
        out["score"] = span.score
    if span.alignment is not None and span.alignment is not AlignmentStatus.UNALIGNED:
        out["alignment"] = span.alignment.value
    meta = {k: v for k, v in span.meta.items() if k not in drop_meta}
    if meta:
        out["meta"] = meta
    return out


def relation_extras(rel: Relation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rel.score is not None:
        out["score"] = rel.score
    if rel.meta:
        out["meta"] = rel.meta
    return out


def dump_extras(extras: dict[str, Any]) -> str:
    return json.dumps(extras, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def parse_extras(raw: str, *, path: str | Path | None = None, line: int | None = None,
                 record_id: str | None = None) -> dict[str, Any]:
    """Decode extras written by :func:`dump_extras`; :class:`DataError` (with location) when malformed."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(f"{EXTRAS_KEY} extras are not valid JSON: {err.msg}", path=path, line=line,
                        record_id=record_id) from None
    if not isinstance(obj, dict) or not set(obj) <= {"id", "score", "alignment", "meta"}:
        raise DataError(f"{EXTRAS_KEY} extras must be an object with keys id, score, alignment, meta; got {raw!r}",
                        path=path, line=line, record_id=record_id)
    if "meta" in obj and not isinstance(obj["meta"], dict):
        raise DataError(f"{EXTRAS_KEY} extras: meta must be an object, got {obj['meta']!r}", path=path, line=line,
                        record_id=record_id)
    return obj


def covering_fragments(span: Span) -> list[tuple[int, int]] | None:
    """The fragments of a span read with ``discontinuous: cover`` (``meta["fragments"]``), when they are
    consistent with its extent; else ``None`` (the span is written as one contiguous piece)."""
    frags = span.meta.get("fragments")
    if span.start is None or not isinstance(frags, list) or len(frags) < 2:
        return None
    try:
        pairs = [(int(a), int(b)) for a, b in frags]
    except (TypeError, ValueError):
        return None
    ok = (pairs[0][0] == span.start and pairs[-1][1] == span.end
          and all(a < b for a, b in pairs) and all(pairs[i][1] <= pairs[i + 1][0] for i in range(len(pairs) - 1)))
    return pairs if ok else None


def fragment_span(
    sid: str, label: str, fragments: list[tuple[int, int]], text: str, options: FormatOptions,
    report: FormatReport, where: str, *, path: str | Path | None = None, line: int | None = None,
    record_id: str | None = None,
) -> Span | None:
    """A span from one or more ``[start, end)`` fragments of ``text``, applying the discontinuous policy:
    ``None`` when it is skipped (counted in ``report``)."""
    if len(fragments) == 1:
        start, end = fragments[0]
        return Span(id=sid, label=label, start=start, end=end, text=text[start:end])
    if options.discontinuous == "error":
        raise DataError(f"span {sid!r} is discontinuous ({len(fragments)} fragments); the record schema holds "
                        "contiguous spans only — set discontinuous: skip or cover in the label map",
                        path=path, line=line, record_id=record_id)
    if options.discontinuous == "skip":
        report.add("discontinuous_spans_skipped", where)
        return None
    report.add("discontinuous_spans_covered", where)
    frags = sorted(fragments)
    start, end = frags[0][0], max(b for _a, b in frags)
    return Span(id=sid, label=label, start=start, end=end, text=text[start:end],
                meta={"fragments": [list(f) for f in frags]})


def apply_extras(span: Span, extras: dict[str, Any]) -> Span:
    """The span with the score, alignment and meta of ``extras`` (an ``id`` in extras replaces the id)."""
    update: dict[str, Any] = {}
    if "score" in extras:
        update["score"] = extras["score"]
    if "alignment" in extras:
        update["alignment"] = extras["alignment"]
    if "meta" in extras:
        update["meta"] = {**span.meta, **extras["meta"]}
    if "id" in extras:
        update["id"] = extras["id"]
    return Span.model_validate({**span.model_dump(), **update}) if update else span


def count_overlaps(spans: list[Span] | tuple[Span, ...]) -> int:
    """How many pairs of located spans overlap (the schema holds them; reported for information)."""
    located = sorted((s.start, s.end) for s in spans if s.start is not None and s.end is not None)
    n = 0
    for i, (_s, e) in enumerate(located):
        for s2, _e2 in located[i + 1:]:
            if s2 >= e:
                break
            n += 1
    return n


def mapped_spans(ex: Example, options: FormatOptions, report: FormatReport) -> Iterator[tuple[Span, str]]:
    """The spans of ``ex`` a writer writes, with their external labels; unmapped ones skipped and counted."""
    for span in ex.spans:
        label = options.entity_to_external(span.label)
        if label is None:
            report.add("unmapped_spans_skipped", f"{ex.id}/{span.id}")
            continue
        yield span, label


def mapped_relations(ex: Example, options: FormatOptions, report: FormatReport,
                     written: Container[str]) -> Iterator[tuple[Relation, RelationMapping]]:
    """The relations of ``ex`` a writer writes, with their external mapping: both arguments among the ``written``
    span ids, label mapped; the others skipped and counted."""
    for rel in ex.relations:
        where = f"{ex.id}/{rel.head}->{rel.tail}"
        if rel.head not in written or rel.tail not in written:
            report.add("relations_not_written_argument_not_written", where)
            continue
        mapping = options.relation_to_external(rel.label)
        if mapping is None:
            report.add("unmapped_relations_skipped", where)
            continue
        yield rel, mapping


__all__ = [
    "EXTRAS_KEY",
    "FormatOptions",
    "FormatReport",
    "RelationMapping",
    "load_format_options",
    "mapped_relations",
    "mapped_spans",
    "shipped_maps",
]
