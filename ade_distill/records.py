"""The one record schema spoken by every stage: gold, silver and predictions alike.

A line of JSONL is one :class:`Example`::

    {"id": "10030778_s0", "text": "Intravenous azithromycin-induced ototoxicity.",
     "spans": [{"id": "T1", "label": "DRUG", "start": 12, "end": 24, "text": "azithromycin"},
               {"id": "T2", "label": "ADE", "start": 33, "end": 44, "text": "ototoxicity"}],
     "relations": [{"head": "T1", "tail": "T2", "label": "ADE"}],
     "meta": {"pmid": "10030778", "source": "ade_corpus_v2"}}

Offsets are half-open character offsets ``[start, end)`` into ``text`` and ``text[start:end]`` must equal the
span's ``text``; this is checked when a record is built, so an invalid record cannot exist in memory. A span
may lack offsets only when it is an ungrounded string returned by an LLM: then it carries
``alignment="unaligned"`` and only its ``text``. Optional ``score`` (a confidence in [0, 1]) and ``meta``
(provenance: source, teacher model, prompt hash, ...) may be attached to spans, relations and examples.
"""

from __future__ import annotations

import gzip
import json
import logging
import operator
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ade_distill.errors import DataError

if TYPE_CHECKING:
    from ade_distill.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

__all__ = [
    "AlignmentStatus",
    "Span",
    "Relation",
    "Example",
    "read_examples",
    "write_examples",
    "atomic_write_text",
    "JsonlAppender",
    "example_to_json",
    "check_labels",
]


class AlignmentStatus(str, Enum):
    """How a string returned by a teacher was aligned to the input text (strongest first)."""

    EXACT = "exact"
    CASE_INSENSITIVE = "case_insensitive"
    NORMALIZED = "normalized"
    FUZZY = "fuzzy"
    UNALIGNED = "unaligned"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(_Frozen):
    """An entity mention. ``start``/``end`` are half-open character offsets into the example's text."""

    id: str = Field(min_length=1)
    label: str = Field(min_length=1)
    start: int | None = None
    end: int | None = None
    text: str
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    alignment: AlignmentStatus | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _integer_offsets(cls, value: Any) -> Any:
        # Pydantic's lax mode would turn "12", 12.0 or true into 12; an offset written as anything but an
        # integer is a bug in whatever wrote the record, so say so (numpy integers are accepted).
        if value is None:
            return None
        if isinstance(value, (bool, str, bytes, float)):
            raise ValueError(f"offsets must be integers, found {type(value).__name__} {value!r}")
        try:
            return operator.index(value)
        except TypeError:
            raise ValueError(f"offsets must be integers, found {type(value).__name__} {value!r}") from None

    @model_validator(mode="after")
    def _check_offsets(self) -> Span:
        if (self.start is None) != (self.end is None):
            raise ValueError(f"span {self.id!r}: give both start and end, or neither")
        if self.start is None:
            if self.alignment is not AlignmentStatus.UNALIGNED:
                raise ValueError(
                    f"span {self.id!r} has no offsets; only an ungrounded LLM string may lack them "
                    f"(set alignment='unaligned')"
                )
        else:
            assert self.end is not None
            if self.start < 0 or self.end <= self.start:
                raise ValueError(f"span {self.id!r}: offsets [{self.start}, {self.end}) are not a non-empty range")
            if self.alignment is AlignmentStatus.UNALIGNED:
                raise ValueError(f"span {self.id!r} has offsets but alignment='unaligned'")
        return self

    @property
    def grounded(self) -> bool:
        """True when the span has character offsets."""
        return self.start is not None


class Relation(_Frozen):
    """A directed relation between two spans of the same example, by span id."""

    head: str
    tail: str
    label: str = Field(min_length=1)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    meta: dict[str, Any] = Field(default_factory=dict)


class Example(_Frozen):
    """One unit of text (usually a sentence) with its spans and relations."""

    id: str = Field(min_length=1)
    text: str
    spans: tuple[Span, ...] = ()
    relations: tuple[Relation, ...] = ()
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_consistency(self) -> Example:
        ids: set[str] = set()
        n = len(self.text)
        for span in self.spans:
            if span.id in ids:
                raise ValueError(f"duplicate span id {span.id!r}")
            ids.add(span.id)
            if span.start is None:
                continue
            assert span.end is not None
            if span.end > n:
                raise ValueError(
                    f"span {span.id!r} offsets [{span.start}, {span.end}) lie outside the text (length {n})"
                )
            found = self.text[span.start : span.end]
            if found != span.text:
                raise ValueError(
                    f"span {span.id!r} text {span.text!r} differs from text[{span.start}:{span.end}] = {found!r}"
                )
        for rel in self.relations:
            for role, ref in (("head", rel.head), ("tail", rel.tail)):
                if ref not in ids:
                    raise ValueError(f"relation {rel.label!r} {role} refers to unknown span id {ref!r}")
        return self

    def span_by_id(self) -> dict[str, Span]:
        return {s.id: s for s in self.spans}

    def document_id(self) -> str:
        """The document the example belongs to: ``meta.pmid``, else ``meta.doc_id``, else the example's id. Folds
        and dev splits group examples by it, so the sentences of one abstract stay on one side."""
        for key in ("pmid", "doc_id"):
            if key in self.meta:
                return str(self.meta[key])
        return self.id


def check_labels(
    example: Example,
    entity_labels: Iterable[str],
    relation_labels: Iterable[str],
    *,
    path: str | Path | None = None,
    line: int | None = None,
) -> None:
    """Raise :class:`DataError` if the example uses a label outside the given sets."""
    ents, rels = set(entity_labels), set(relation_labels)
    for span in example.spans:
        if span.label not in ents:
            raise DataError(
                f"unknown entity label {span.label!r} on span {span.id!r}; expected one of {sorted(ents)}",
                path=path, line=line, record_id=example.id,
            )
    for rel in example.relations:
        if rel.label not in rels:
            raise DataError(
                f"unknown relation label {rel.label!r}; expected one of {sorted(rels)}",
                path=path, line=line, record_id=example.id,
            )


def _check_argument_types(
    example: Example, task: TaskSpec, *, path: str | Path | None = None, line: int | None = None
) -> None:
    """Raise :class:`DataError` if a relation's head/tail spans do not have the labels the task declares."""
    spans = example.span_by_id()
    for rel in example.relations:
        for rt in task.relations:
            if rt.label != rel.label:
                continue
            for role, ref, want in (("head", rel.head, rt.head), ("tail", rel.tail, rt.tail)):
                got = spans[ref].label
                if got != want:
                    raise DataError(
                        f"relation {rel.label!r} {role} {ref!r} is a {got} span; task {task.name!r} expects {want}",
                        path=path, line=line, record_id=example.id,
                    )


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and not (k == "meta" and v == {})}


def example_to_json(example: Example) -> str:
    """Serialize one example as a compact, deterministic JSON line (no trailing newline)."""
    d = example.model_dump(mode="json")
    out = {
        "id": d["id"],
        "text": d["text"],
        "spans": [_clean(s) for s in d["spans"]],
        "relations": [_clean(r) for r in d["relations"]],
        "meta": d["meta"],
    }
    return json.dumps(out, ensure_ascii=False)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        msg = e.get("msg", "")
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_example(obj: Any, *, path: str | Path | None = None, line: int | None = None) -> Example:
    """Validate a decoded JSON object as an :class:`Example`, raising :class:`DataError` with location."""
    record_id = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, found {type(obj).__name__}", path=path, line=line)
    try:
        return Example.model_validate(obj)
    except ValidationError as err:
        raise DataError(_format_validation_error(err), path=path, line=line, record_id=record_id) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, decoded_object)`` for each non-blank line; errors name the file and line.

    A ``.gz`` file is decompressed on the fly.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=p)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        for lineno, raw in enumerate(_lines_or_error(fh, p), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"invalid UTF-8 at byte {err.start} of the line", path=p, line=lineno) from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"malformed JSON: {err.msg} (column {err.colno})", path=p, line=lineno) from None


def _lines_or_error(fh: Any, path: Path) -> Iterator[bytes]:
    """Iterate the raw lines of a binary file, turning a corrupt/truncated gzip stream into a DataError."""
    it = iter(fh)
    while True:
        try:
            raw = next(it)
        except StopIteration:
            return
        except (OSError, EOFError) as err:
            raise DataError(f"cannot read: {err}", path=path) from None
        yield raw


def read_examples(
    path: str | Path, *, unique_ids: bool = True, task: TaskSpec | None = None
) -> Iterator[Example]:
    """Stream examples from a JSONL file, validating each line (and its labels against ``task`` if given).

    Raises:
        DataError: naming file, line and record id for malformed JSON, invalid UTF-8, a schema violation
            (offsets outside the text, span text different from the text slice, dangling relation), an
            unknown label or a duplicated record id.
    """
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        ex = parse_example(obj, path=path, line=lineno)
        if task is not None:
            check_labels(ex, task.entity_labels, task.relation_labels, path=path, line=lineno)
            _check_argument_types(ex, task, path=path, line=lineno)
        if unique_ids:
            if ex.id in seen:
                raise DataError("duplicate record id", path=path, line=lineno, record_id=ex.id)
            seen.add(ex.id)
        yield ex


def temp_path(path: str | Path) -> Path:
    """A hidden temporary name beside ``path``, unique to this call: ``.NAME.PID.RANDOM12.tmp``."""
    p = Path(path)
    return p.parent / f".{p.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def fsync_dir(path: str | Path) -> None:
    """fsync a folder (so a rename in it survives a crash); a no-op where folders cannot be opened or synced."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - a filesystem that does not sync directories
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str, *, sync_dir: bool = False) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` so that it either keeps its old content or has the
    new one whole: a hidden temporary file beside it (:func:`temp_path`, created with ``O_EXCL``), fsynced, then
    renamed into place (``os.replace``); ``sync_dir`` also fsyncs the folder (the rename itself made durable). The
    temporary file is removed on any error. Creates missing parent folders; returns ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        if sync_dir:
            fsync_dir(p.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def replace_dir(tmp: str | Path, dest: str | Path) -> Path:
    """Put the finished folder ``tmp`` in place of ``dest`` (a model or export folder): the old folder is first
    renamed aside, the new one renamed into place, then the old one removed — a reader never sees a half-written
    folder, and a crash between the two renames leaves the old one beside it (``.NAME.old-PID``). Returns ``dest``."""
    tmp, dest = Path(tmp), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def write_examples(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples as JSONL atomically (a temporary file renamed into place). Returns the count."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: it creates the file with mode 0600, so the written file would not get the
    # permissions (umask) an ordinary open() gives. O_EXCL keeps the name private to this call.
    tmp = str(temp_path(p))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for ex in examples:
                fh.write(example_to_json(ex))
                fh.write("\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


class JsonlAppender:
    """Append examples to a JSONL file for resumable jobs.

    Every line is handed to the operating system at once (flushed), so a killed process loses nothing; it is
    fsynced to disk after every line (``sync_every_s=0``, the default) or at most every ``sync_every_s`` seconds
    and on close — one fsync per record dominates fast jobs, and a job whose records can be recomputed cheaply
    (e.g. from a response cache) can afford to lose the last half second to a power cut.

    A line cut short by a crash is detected on reopening and truncated, so the file always holds whole
    records only; the number of bytes cut is kept in ``truncated_bytes`` and logged as a warning.
    """

    def __init__(self, path: str | Path, *, sync_every_s: float = 0.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.truncated_bytes = self._truncate_partial_tail()
        self.sync_every_s = sync_every_s
        self._last_sync = time.monotonic()
        self._dirty = False
        self._fh = self.path.open("a", encoding="utf-8", newline="\n")

    def _truncate_partial_tail(self) -> int:
        """Cut an unterminated last line; return the number of bytes removed. Reads only the file's tail."""
        if not self.path.exists():
            return 0
        with self.path.open("r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            pos, cut, block = size, 0, 1 << 16
            while pos > 0:  # scan backwards for the last newline
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                i = fh.read(step).rfind(b"\n")
                if i != -1:
                    cut = pos + i + 1
                    break
            fh.truncate(cut)
        log.warning("%s: removed an incomplete last line (%d bytes) left by an interrupted run", self.path,
                    size - cut)
        return size - cut

    def write(self, example: Example) -> None:
        self._fh.write(example_to_json(example) + "\n")
        self._fh.flush()
        self._dirty = True
        if time.monotonic() - self._last_sync >= self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        """fsync what was written since the last sync."""
        if self._dirty:
            os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
