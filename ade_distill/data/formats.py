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

    with _open(p) as fh:
        head = fh.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
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
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown records format {fmt!r}; expected one of {list(FORMATS)} (or none to detect)")
    return fmt


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
    """The format to write: ``fmt``, else ``bioc`` for ``.xml``/``.json`` names, ``jsonl`` for ``.jsonl``,
    ``brat`` for a name without suffix."""
    if _check_format(fmt) is not None:
        return fmt  # type: ignore[return-value]
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith((".xml", ".json", ".bioc")):
        return "bioc"
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


__all__ = ["FORMATS", "FormatOptions", "FormatReport", "detect_format", "is_bioc", "is_brat", "output_format",
           "read_records", "write_records", "load_format_options"]
