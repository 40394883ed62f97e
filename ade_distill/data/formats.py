"""One place to read and write records in any supported format: the project's JSONL, BRAT standoff, BioC.

    read_records("gold_brat/")                     # a folder with .ann files → BRAT
    read_records("preds.xml")                      # a BioC collection (XML or JSON) → BioC
    read_records("silver.jsonl", task=spec)        # anything else → JSONL (labels checked against the task)
    write_records("for_correction/", silver, "brat", options=load_format_options("n2c2_2018"))

Every command that reads records goes through :func:`read_records`, so ``--input-format brat|bioc|jsonl`` (or
detection) works everywhere. What a format cannot hold is counted in a :class:`FormatReport` (logged as a
warning, and returned by :func:`write_records`); see :mod:`ade_distill.data.brat` and :mod:`ade_distill.data.bioc`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ade_distill.data.standoff import FormatOptions, FormatReport, load_format_options
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example, _check_argument_types, check_labels, read_examples, write_examples

if TYPE_CHECKING:
    from ade_distill.tasks.spec import TaskSpec

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "brat", "bioc")
# The inputs of predict / label / adapt-encoder: records (the project's JSONL; ``jsonl`` is the same) and unlabeled
# documents. One vocabulary: ``jsonl`` and ``records`` name the same format everywhere.
DOCUMENT_FORMATS = ("records", "abstracts", "medline", "text", "brat", "bioc")
ALIASES = {"records": "jsonl"}


def is_brat(path: str | Path) -> bool:
    """A folder holding ``.ann`` files, an ``.ann`` file, or a ``.txt`` file beside its ``.ann``."""
    p = Path(path)
    if p.is_dir():
        return next(p.rglob("*.ann"), None) is not None
    return p.suffix == ".ann" or (p.suffix == ".txt" and p.with_suffix(".ann").is_file())


def is_bioc(path: str | Path) -> bool:
    """An ``.xml``/``.bioc`` file whose root is ``<collection>``, or a ``.json`` file holding a BioC collection
    (an object with ``documents``, or a list of such objects; pretty-printed JSON counts as BioC since JSONL
    records are one per line). ``.gz`` allowed."""
    p = Path(path)
    name = p.name.lower().removesuffix(".gz")
    if not p.is_file() or not name.endswith((".xml", ".bioc", ".json")):
        return False
    from ade_distill.data.bioc import _open

    try:
        with _open(p) as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    except (OSError, EOFError) as err:  # a corrupt or truncated .gz (gzip.BadGzipFile is an OSError)
        raise DataError(f"cannot read: {err}", path=p) from None
    if head.startswith("<"):
        return "<collection" in head.split("<document", 1)[0]
    if head.startswith("["):
        return True
    first, newline, _rest = head.partition("\n")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        # a first line longer than what was read, or a pretty-printed (multi-line) object
        return '"documents"' in head if not newline else head.startswith("{")
    return isinstance(obj, dict) and "documents" in obj


def detect_format(path: str | Path) -> str:
    """``brat``, ``bioc`` or ``jsonl`` for an input path (see :func:`is_brat`, :func:`is_bioc`)."""
    if is_brat(path):
        return "brat"
    if Path(path).is_dir():
        raise DataError("a folder without .ann files is neither a BRAT collection nor a records file", path=path)
    if is_bioc(path):
        return "bioc"
    return "jsonl"


def _check_format(fmt: str | None) -> str | None:
    """``fmt`` as one of :data:`FORMATS` (``records`` → ``jsonl``), ``None`` kept (detect)."""
    if fmt is None:
        return None
    fmt = ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown records format {fmt!r}; expected one of {list(FORMATS)} (records is jsonl; "
                          "or none to detect)")
    return fmt


def document_format(fmt: str | None) -> str | None:
    """An input format of predict / label / adapt-encoder as one of :data:`DOCUMENT_FORMATS` (``jsonl`` →
    ``records``), ``None`` kept (sniff).

    Raises:
        ConfigError: an unknown format (the message lists the choices).
    """
    if fmt is None:
        return None
    canon = "records" if fmt in ("jsonl", "records") else fmt
    if canon not in DOCUMENT_FORMATS:
        raise ConfigError(f"unknown input format {fmt!r}; expected one of {['jsonl', *DOCUMENT_FORMATS]} (jsonl "
                          "and records are the same; or none to detect)")
    return canon


def read_records(
    path: str | Path,
    fmt: str | None = None,
    task: TaskSpec | None = None,
    *,
    options: FormatOptions | str | Path | None = None,
    report: FormatReport | None = None,
    unit: str = "document",
) -> list[Example]:
    """Read records from JSONL, a BRAT folder/pair or a BioC file (``fmt`` detected when ``None``).

    ``options`` is a :class:`FormatOptions` or a label-map YAML path (BRAT/BioC only); ``unit`` is BioC's
    ``document`` or ``passage``. With ``task``, labels and relation argument types are checked. What the format
    cannot hold is counted in ``report`` and logged as a warning.

    Raises:
        ConfigError: an unknown format or a bad label map.
        DataError: malformed input (naming file, line where known, and record); an unknown label for ``task``.
    """
    fmt = _check_format(fmt) or detect_format(path)
    if fmt == "jsonl":
        if options is not None:
            log.warning("%s: the label map is not used for JSONL input (it maps BRAT/BioC labels only); the "
                        "records' labels are read as written", path)
        return list(read_examples(path, task=task))
    opts = options if isinstance(options, FormatOptions) else load_format_options(options)
    report = report if report is not None else FormatReport(fmt, "read", str(path))
    if fmt == "brat":
        from ade_distill.data.brat import read_brat

        records = read_brat(path, opts, report)
    else:
        from ade_distill.data.bioc import read_bioc

        records = read_bioc(path, opts, report, unit=unit)  # type: ignore[arg-type]
    report.log()
    if task is not None:
        for ex in records:
            check_labels(ex, task.entity_labels, task.relation_labels, path=path)
            _check_argument_types(ex, task, path=path)
    return records


def output_format(path: str | Path, fmt: str | None) -> str:
    """The format to write: ``bioc`` for ``.xml``/``.json``/``.bioc`` names, ``jsonl`` for ``.jsonl``, ``brat``
    for a name without suffix; ``fmt`` when given.

    Raises:
        ConfigError: an unknown ``fmt``; a ``fmt`` the name contradicts (JSONL into ``out.xml``, BioC into
            ``out.jsonl``, a BRAT folder named ``out.json``; a ``.json`` name may hold JSONL); no ``fmt`` and a
            name that does not tell.
    """
    fmt = _check_format(fmt)
    name = Path(path).name.lower().removesuffix(".gz")
    fits: tuple[str, ...] | None = None  # the formats the name allows; None: the name does not tell
    if name.endswith(".jsonl"):
        fits = ("jsonl",)
    elif name.endswith((".xml", ".bioc")):
        fits = ("bioc",)
    elif name.endswith(".json"):
        fits = ("bioc", "jsonl")
    if fmt is not None:
        if fits is not None and fmt not in fits:
            raise ConfigError(f"--format {fmt} contradicts the name {str(path)!r} (a {fits[0]} name); drop "
                              f"--format, or name the output for {fmt}")
        return fmt
    if fits is not None:
        return fits[0]
    if not Path(path).suffix:
        return "brat"
    raise ConfigError(f"cannot tell the format of {str(path)!r} from its name; give one of {list(FORMATS)}")


def write_records(
    path: str | Path,
    records: Iterable[Example],
    fmt: str | None = None,
    *,
    options: FormatOptions | str | Path | None = None,
) -> FormatReport:
    """Write records as JSONL, a BRAT folder or a BioC file (XML, or JSON for ``.json`` names); returns the
    report of what was written and what the format could not hold (``report.issues``; not logged — the caller
    shows it)."""
    fmt = output_format(path, fmt)
    report = FormatReport(fmt, "write", str(path))
    if fmt == "jsonl":
        records = list(records)
        report.records = write_examples(path, records)
        report.spans = sum(len(e.spans) for e in records)
        report.relations = sum(len(e.relations) for e in records)
        return report
    opts = options if isinstance(options, FormatOptions) else load_format_options(options)
    if fmt == "brat":
        from ade_distill.data.brat import write_brat

        write_brat(path, records, opts, report)
    else:
        from ade_distill.data.bioc import write_bioc

        write_bioc(path, records, opts, report)
    return report


__all__ = ["ALIASES", "DOCUMENT_FORMATS", "FORMATS", "FormatOptions", "FormatReport", "detect_format",
           "document_format", "is_bioc", "is_brat", "output_format", "read_records", "write_records",
           "load_format_options"]
