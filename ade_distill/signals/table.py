"""The literature signal table: predicted relations → one row per normalised (drug, adverse effect) pair.

:func:`aggregate_pairs` is pure (records in, :class:`SignalTable` out); reading predictions
(:func:`iter_predictions`) and writing CSV or Parquet (:func:`write_table`) are the edges.

Counting rules, per pair of normalised argument strings of the task's primary relation (ADE: DRUG → ADE):

* ``n_mentions`` — relations predicted, one per relation of a record (a record lists a relation once);
* ``n_documents`` — distinct documents with at least one mention: ``Example.document_id()`` (``meta.pmid``, else
  ``meta.doc_id``, else the record id), so the sentences of one abstract count once;
* ``pmids`` — those documents' ids, sorted (numerically when they are numbers);
* ``years`` — documents per publication year (``meta.year``, set by the MEDLINE reader and carried by
  ``to_sentences``, ``label`` and ``predict``); ``first_year`` / ``last_year`` over them. A document without a
  year counts in ``n_documents`` only.

Normalisation (:func:`normalize_term`) case-folds and collapses whitespace; pass ``normalize`` to map synonyms
as well (:func:`with_synonyms`). Rows are sorted by ``n_documents``, then ``n_mentions`` (both descending), then
the pair. A silver record that merged identical texts of several documents (``meta.source_ids``) counts for its
own document only.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec

__all__ = ["PairSignal", "SignalTable", "aggregate_pairs", "normalize_term", "with_synonyms", "iter_predictions",
           "write_table", "Normalizer"]

Normalizer = Callable[[str], str]


def normalize_term(text: str) -> str:
    """Case-fold and collapse runs of whitespace: ``" Acute  Renal\\nFailure"`` → ``"acute renal failure"``."""
    return " ".join(text.casefold().split())


def with_synonyms(synonyms: Mapping[str, str], base: Normalizer = normalize_term) -> Normalizer:
    """A normaliser that maps a term to its preferred name after ``base``: ``{"ASA": "aspirin"}`` makes
    "asa" and "Aspirin" one row. Keys and values are normalised by ``base`` too."""
    table = {base(k): base(v) for k, v in synonyms.items()}

    def normalize(text: str) -> str:
        key = base(text)
        return table.get(key, key)

    return normalize


def _doc_order(doc: str) -> tuple[int, int, str]:
    return (0, int(doc), doc) if doc.isdigit() else (1, 0, doc)


@dataclass(frozen=True)
class PairSignal:
    """One row: a normalised (head, tail) pair and where it was found."""

    head: str
    tail: str
    n_mentions: int
    pmids: tuple[str, ...]
    years: dict[int, int]  # publication year → documents

    @property
    def n_documents(self) -> int:
        return len(self.pmids)

    @property
    def first_year(self) -> int | None:
        return min(self.years) if self.years else None

    @property
    def last_year(self) -> int | None:
        return max(self.years) if self.years else None


@dataclass
class SignalTable:
    """The rows, the column names of the pair (the task's output keys, e.g. ``drug`` and ``ade``) and what was
    read: ``records``, ``relations`` counted, ``other_relations`` (of another label, not counted)."""

    head_key: str
    tail_key: str
    rows: list[PairSignal]
    records: int = 0
    relations: int = 0
    other_relations: int = 0
    documents: int = 0

    @property
    def columns(self) -> list[str]:
        return [self.head_key, self.tail_key, "n_mentions", "n_documents", "first_year", "last_year", "years",
                "pmids"]

    def records_as_dicts(self) -> list[dict[str, Any]]:
        """Rows as plain values: ``years`` a {year: documents} dict, ``pmids`` a list."""
        return [{self.head_key: r.head, self.tail_key: r.tail, "n_mentions": r.n_mentions,
                 "n_documents": r.n_documents, "first_year": r.first_year, "last_year": r.last_year,
                 "years": dict(sorted(r.years.items())), "pmids": list(r.pmids)} for r in self.rows]


@dataclass
class _Acc:
    mentions: int = 0
    docs: set[str] = field(default_factory=set)


def aggregate_pairs(examples: Iterable[Example], task: TaskSpec, *, normalize: Normalizer = normalize_term,
                    min_documents: int = 1) -> SignalTable:
    """Count the task's primary relations in ``examples`` by normalised (head, tail) pair (rules: module doc).

    Args:
        examples: prediction records (spans with text; relations naming them).
        task: which relation is counted (``task.primary``) and the column names (its entities' keys).
        normalize: string → key of a term (:func:`normalize_term`, or :func:`with_synonyms`).
        min_documents: keep pairs found in at least this many documents.

    Raises:
        ConfigError: ``min_documents`` < 1.
    """
    if min_documents < 1:
        raise ConfigError(f"min_documents must be >= 1, got {min_documents}")
    rel = task.primary
    accs: dict[tuple[str, str], _Acc] = {}
    doc_years: dict[str, int] = {}
    docs: set[str] = set()
    n_records = n_rel = n_other = 0
    for ex in examples:
        n_records += 1
        doc = ex.document_id()
        docs.add(doc)
        year = ex.meta.get("year")
        if isinstance(year, int) and not isinstance(year, bool):
            doc_years.setdefault(doc, year)
        spans = ex.span_by_id()
        for r in ex.relations:
            if r.label != rel.label:
                n_other += 1
                continue
            key = (normalize(spans[r.head].text), normalize(spans[r.tail].text))
            acc = accs.setdefault(key, _Acc())
            acc.mentions += 1
            acc.docs.add(doc)
            n_rel += 1
    rows = [_row(pair, acc, doc_years) for pair, acc in accs.items() if len(acc.docs) >= min_documents]
    rows.sort(key=lambda r: (-r.n_documents, -r.n_mentions, r.head, r.tail))
    return SignalTable(task.entity(rel.head).key, task.entity(rel.tail).key, rows, records=n_records,
                       relations=n_rel, other_relations=n_other, documents=len(docs))


def _row(pair: tuple[str, str], acc: _Acc, doc_years: Mapping[str, int]) -> PairSignal:
    years = Counter(doc_years[d] for d in acc.docs if d in doc_years)
    return PairSignal(pair[0], pair[1], acc.mentions, tuple(sorted(acc.docs, key=_doc_order)), dict(years))


# -- I/O at the edges ---------------------------------------------------------------------------------------------
def iter_predictions(paths: Sequence[str | Path], task: TaskSpec | None = None) -> Iterator[Example]:
    """Stream the records of prediction files: JSONL (``.jsonl.gz`` too; through
    :func:`ade_distill.data.formats.read_records`) or Parquet (``.parquet``, as ``predict --engine ray
    --out-format parquet`` writes it; needs pyarrow). A folder stands for its ``*.jsonl``, ``*.jsonl.gz`` and
    ``*.parquet`` files, in name order (a Ray output folder: its shards; ``manifest.json`` is not read).

    Raises:
        ConfigError: no path, a path given twice (its records would count twice), a folder without prediction
            files, Parquet without pyarrow.
        DataError: a missing file or a malformed record (file, line and record id named); an unknown label.
    """
    if not paths:
        raise ConfigError("no predictions given: pass --pred FILE (or a folder of JSONL files)")
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted([*p.glob("*.jsonl"), *p.glob("*.jsonl.gz"), *p.glob("*.parquet")])
            if not found:
                raise ConfigError(f"--pred {str(p)!r} is a folder without .jsonl or .parquet files")
            files += found
        elif not p.is_file():
            raise DataError("prediction file not found", path=p)
        else:
            files.append(p)
    resolved = [f.resolve() for f in files]
    if len(set(resolved)) != len(resolved):
        dup = next(f for f in resolved if resolved.count(f) > 1)
        raise ConfigError(f"{dup} is given twice; its records would be counted twice")
    for f in files:
        yield from _read_predictions(f, task)


def _read_predictions(path: Path, task: TaskSpec | None) -> Iterator[Example]:
    """One prediction file: Parquet through :func:`ade_distill.student.shards.read_shard` (labels checked against
    ``task``), anything else as JSONL through :func:`ade_distill.data.formats.read_records`."""
    if path.suffix.lower() != ".parquet":
        from ade_distill.data.formats import read_records

        yield from read_records(path, "jsonl", task=task)
        return
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(f"reading {str(path)!r} needs pyarrow: pip install 'ade-distill[parquet]'") from None
    from ade_distill.records import _check_argument_types, check_labels
    from ade_distill.student.shards import read_shard

    for ex in read_shard(path):
        if task is not None:
            check_labels(ex, task.entity_labels, task.relation_labels, path=path)
            _check_argument_types(ex, task, path=path)
        yield ex


def _csv_value(column: str, value: Any) -> Any:
    if column == "years":
        return ";".join(f"{y}:{n}" for y, n in value.items())
    if column == "pmids":
        return ";".join(value)
    return "" if value is None else value


def write_table(table: SignalTable, path: str | Path) -> Path:
    """Write ``table`` as CSV (``.csv``: ``years`` as ``2015:3;2016:1``, ``pmids`` ``;``-separated) or Parquet
    (``.parquet``: ``years`` a map year → documents, ``pmids`` a list of strings; needs pyarrow).

    Raises:
        ConfigError: another suffix, or Parquet without pyarrow installed.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {str(p)!r}: expected a .csv or .parquet file")
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = table.records_as_dicts()
    if suffix == ".parquet":
        _write_parquet(table, rows, p)
        return p
    with open(p, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=table.columns)
        w.writeheader()
        for row in rows:
            w.writerow({c: _csv_value(c, v) for c, v in row.items()})
    return p


def _write_parquet(table: SignalTable, rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("writing Parquet needs pyarrow: pip install 'ade-distill[parquet]' (or write a .csv "
                          "file)") from None
    schema = pa.schema([
        (table.head_key, pa.string()), (table.tail_key, pa.string()), ("n_mentions", pa.int64()),
        ("n_documents", pa.int64()), ("first_year", pa.int32()), ("last_year", pa.int32()),
        ("years", pa.map_(pa.int32(), pa.int64())), ("pmids", pa.list_(pa.string())),
    ])
    data = [{**r, "years": list(r["years"].items())} for r in rows]
    pq.write_table(pa.Table.from_pylist(data, schema=schema), path)
