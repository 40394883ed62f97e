"""Sharded prediction: one input file is one shard and gives one output file, and a manifest makes a run resumable.

    OUT/
      manifest.json            {"version": 1, "settings": {...}, "shards": {"medline16n0902": {...}, ...}}
      medline16n0902.jsonl     the records of input medline16n0902.xml.gz (or .parquet)

This module holds everything of a sharded run that is not an execution engine; :mod:`ade_distill.student.ray_engine`
only decides where :func:`predict_shard` runs. A shard's records are :func:`shard_records`: the documents of the
input file (:func:`~ade_distill.data.unlabeled.iter_documents`, format sniffed or given) predicted by
:func:`~ade_distill.student.predict.predict_documents`, the loop ``ade-distill predict`` runs on one file — so a
shard's output holds the records that ``predict --input SHARD`` writes, in the same order.

**Finished** means: the manifest has an entry for the shard whose output file exists with the recorded SHA-256,
and the input still has the size it had. A shard is written to a hidden temporary file in the output folder
(``.NAME.PID.RANDOM.tmp``), fsynced, renamed into place, and only then entered in the manifest, which is itself
replaced atomically. A run killed at any point leaves every shard finished or not finished — never one that looks
finished but is partial: a half-written temporary file is never read (the next run removes it), a complete output
file without a manifest entry is predicted again, an output whose hash no longer matches is predicted again.

A manifest also records the settings that decide the records (model folders and their hashes, runtime,
quantization, ensemble vote, split, input and output format); a rerun with other settings is refused rather than
mixing shards of two models in one folder. ``batch_size`` and ``chunk`` are recorded but not compared: they change
speed, not records (beyond float rounding).

Only one run at a time may write into an output folder: a run holds ``OUT/.lock`` (:func:`exclusive_out_dir`) from
planning to its last manifest entry, and a second run on the same folder fails at once.

A folder given as an input contributes its files with a known input suffix (:data:`FOLDER_INPUT_SUFFIXES`; a
checksum or a note beside them is skipped, and logged); a BRAT folder is refused (a document there is a ``.txt`` +
``.ann`` pair, not one file).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError, DataError
from ade_distill.hashing import file_sha256, path_sha256
from ade_distill.records import (
    Example,
    atomic_write_text,
    example_to_json,
    fsync_dir,
    parse_example,
    temp_path,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
OUT_FORMATS = ("jsonl", "parquet")
# settings that decide the records; a resumed run must match them
BINDING_SETTINGS = ("models", "runtime", "quantize", "precision", "compile", "min_votes", "boundary", "split",
                    "input_format", "out_format")
# what a manifest written before these settings existed was predicted with (an older checkout resuming a newer
# manifest ignores them: resume a bf16 or compiled run with the code that started it)
SETTING_DEFAULTS = {"precision": "fp32", "compile": False}
_INPUT_SUFFIXES = re.compile(r"(\.(xml|jsonl|json|txt|text))?(\.gz)?$", re.IGNORECASE)
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{12}\.tmp$")
# what a folder given as --input contributes: the files the readers know by name (MEDLINE / BioC XML, records or
# abstracts JSONL, BioC JSON, text), gzipped or not; anything else in the folder (*.md5, README, ...) is skipped
FOLDER_INPUT_SUFFIXES = tuple(f"{s}{z}" for s in (".xml", ".bioc", ".jsonl", ".json", ".txt", ".text")
                              for z in ("", ".gz"))
LOCK = ".lock"  # OUT/.lock: held (flock) by the one run writing into OUT


@dataclass(frozen=True)
class Shard:
    """One input file and the output file it gives (``key`` names both in the manifest)."""

    key: str
    input: Path
    output: Path


# -- planning --------------------------------------------------------------------------------------------------
def is_input_file(path: str | Path) -> bool:
    """Whether a file of a folder is an input the readers know by its name (:data:`FOLDER_INPUT_SUFFIXES`)."""
    return Path(path).name.lower().endswith(FOLDER_INPUT_SUFFIXES)


def _folder_inputs(folder: Path) -> list[Path]:
    """The input files of a folder: its visible files with a known input suffix; the others (checksums such as
    ``*.xml.gz.md5``, notes, configuration) are logged as skipped, never predicted.

    Raises:
        ConfigError: a BRAT collection (``.ann`` files: one document is a ``.txt`` + ``.ann`` pair, not a file),
            or a folder without any input file (the skipped names are listed).
    """
    from ade_distill.data.formats import is_brat

    if is_brat(folder):
        raise ConfigError(f"--input {folder} is a BRAT collection (.ann files): the Ray engine predicts one file per "
                          "shard, and a BRAT document is a .txt + .ann pair; predict it with the single-process "
                          f"engine (ade-distill predict --input {folder}), or give its text files as a pattern "
                          f"('{folder}/*.txt') in a folder without the .ann files")
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    keep = [f for f in files if is_input_file(f)]
    skipped = [f.name for f in files if not is_input_file(f)]
    if skipped:
        log.info("--input %s: skipped %d files that are not inputs (%s%s); inputs end in %s", folder, len(skipped),
                 ", ".join(skipped[:5]), ", ..." if len(skipped) > 5 else "", " ".join(FOLDER_INPUT_SUFFIXES))
    if files and not keep:
        raise ConfigError(f"--input {folder} holds no input file ({', '.join(skipped[:5])}"
                          f"{', ...' if len(skipped) > 5 else ''}); inputs end in {' '.join(FOLDER_INPUT_SUFFIXES)}")
    return keep


def expand_inputs(patterns: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files named by ``patterns``: files, folders (their visible files that end in a known input
    suffix, :data:`FOLDER_INPUT_SUFFIXES`; not a BRAT collection) and glob patterns (``*``, ``?``, ``[...]``,
    ``**``), sorted by path within each pattern, each file once. A file or pattern is taken as given.

    Raises:
        ConfigError: a pattern that matches no file, a folder without input files, a BRAT folder.
    """
    items = [patterns] if isinstance(patterns, str | Path) else list(patterns)
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found = _folder_inputs(p)
        elif p.is_file():
            found = [p]
        else:
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not found:
            raise ConfigError(f"--input {text!r} matches no file")
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                out.append(f)
    return out


def shard_key(path: str | Path) -> str:
    """The output name of an input file: its name less ``.gz`` and a format suffix (``medline16n0902.xml.gz``
    → ``medline16n0902``)."""
    name = Path(path).name
    return _INPUT_SUFFIXES.sub("", name) or name


def check_out_format(out_format: str) -> None:
    """Raise :class:`ConfigError` for an unknown output format, or Parquet without pyarrow installed."""
    if out_format not in OUT_FORMATS:
        raise ConfigError(f"output format must be one of {OUT_FORMATS}, not {out_format!r}")
    if out_format == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ConfigError("--out-format parquet needs pyarrow: pip install 'ade-distill[parquet]' (or write "
                              "jsonl)") from None


def plan_shards(inputs: Sequence[Path], out_dir: str | Path, out_format: str = "jsonl") -> list[Shard]:
    """One :class:`Shard` per input file, output ``OUT/KEY.jsonl`` (or ``.parquet``).

    Raises:
        ConfigError: an unknown output format, or two inputs that would write the same output file (same name
            in two folders): give them distinct names.
    """
    check_out_format(out_format)
    out = Path(out_dir)
    by_key: dict[str, Path] = {}
    shards = []
    for p in inputs:
        key = shard_key(p)
        if key in by_key:
            raise ConfigError(f"inputs {by_key[key]} and {p} would both write {key}.{out_format}; one output file "
                              "per input file needs distinct file names")
        if key == Path(MANIFEST).stem:
            raise ConfigError(f"input {p} would write over the manifest; rename it")
        by_key[key] = p
        shards.append(Shard(key, p, out / f"{key}.{out_format}"))
    return shards


def run_settings(model_dirs: Sequence[str | Path], **options: Any) -> dict[str, Any]:
    """The settings a manifest records: each model folder with the hash of its files, and ``options``."""
    models = [{"path": str(Path(d).resolve()), "sha256": path_sha256(d)} for d in model_dirs]
    return {"models": models, **options}


# -- one shard -------------------------------------------------------------------------------------------------
def shard_records(
    model: Any, input_path: str | Path, *, input_format: str | None = None, batch_size: int = 64,
    split: str = "auto", chunk: int = 2048,
) -> Iterator[Example]:
    """The records of one shard: its documents predicted in input order — exactly what ``ade-distill predict``
    writes for that file (:func:`~ade_distill.student.predict.predict_documents`). ``model``: anything with the
    ``predict`` of :class:`~ade_distill.student.model.StudentExtractor` (a student, an ensemble)."""
    from ade_distill.data.unlabeled import iter_documents
    from ade_distill.student.predict import predict_documents

    docs = iter_documents(input_path, input_format)
    return predict_documents(model, docs, batch_size=batch_size, split=split, chunk=chunk)


def write_records_atomic(path: str | Path, records: Iterable[Example], out_format: str = "jsonl") -> dict[str, Any]:
    """Write ``records`` to ``path`` so that it either does not appear or appears complete: into a hidden
    temporary file beside it, fsynced, then renamed (and the folder fsynced). Returns ``records`` (count),
    ``spans``, ``relations``, ``sentences`` (prediction units: a record split into k sentences counts k),
    ``bytes`` and ``sha256`` of the written file. An error while writing (including in ``records``) removes the
    temporary file and is raised."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(p)
    counts = {"records": 0, "spans": 0, "relations": 0, "sentences": 0}

    def counted() -> Iterator[Example]:
        for ex in records:
            counts["records"] += 1
            counts["spans"] += len(ex.spans)
            counts["relations"] += len(ex.relations)
            counts["sentences"] += int(ex.meta.get("sentences", ex.meta.get("windows", 1)))
            yield ex

    try:
        if out_format == "jsonl":
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                for ex in counted():
                    fh.write(example_to_json(ex))
                    fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
        elif out_format == "parquet":
            _write_parquet(tmp, counted())
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            raise ConfigError(f"output format must be one of {OUT_FORMATS}, not {out_format!r}")
        digest = file_sha256(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, p)
        fsync_dir(p.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {**counts, "bytes": size, "sha256": digest}


def predict_shard(
    model: Any, shard: Shard, *, input_format: str | None = None, batch_size: int = 64, split: str = "auto",
    chunk: int = 2048, out_format: str = "jsonl",
) -> dict[str, Any]:
    """Predict one shard into its output file (:func:`write_records_atomic`) and return its manifest entry:
    ``key``, ``input``, ``input_bytes``, ``output`` (file name in the output folder), counts, ``bytes``,
    ``sha256``, ``seconds`` and ``finished_at`` (UTC, ISO 8601).

    Raises:
        DataError: the input cannot be read (no output file is left behind).
    """
    t0 = time.perf_counter()
    input_bytes = shard.input.stat().st_size if shard.input.is_file() else 0
    records = shard_records(model, shard.input, input_format=input_format, batch_size=batch_size, split=split,
                            chunk=chunk)
    written = write_records_atomic(shard.output, records, out_format)
    return {"key": shard.key, "input": str(shard.input), "input_bytes": input_bytes, "output": shard.output.name,
            **written, "seconds": round(time.perf_counter() - t0, 3),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# -- the manifest ----------------------------------------------------------------------------------------------
class Manifest:
    """``OUT/manifest.json``: the settings of the run and one entry per finished shard (see the module
    docstring). Every :meth:`record` rewrites the file atomically."""

    def __init__(self, out_dir: Path, settings: dict[str, Any], shards: dict[str, dict[str, Any]]) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.shards = shards

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST

    @classmethod
    def open(cls, out_dir: str | Path, settings: dict[str, Any]) -> Manifest:
        """The manifest of ``out_dir`` (created with ``settings`` if there is none).

        Raises:
            ConfigError: ``out_dir`` is a file, or a folder with files but no manifest (not an output folder of
                this command), or its manifest was written with other settings (named).
            DataError: the manifest is not valid JSON of this format.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; the Ray engine writes a folder of shards")
        path = out / MANIFEST
        if not path.is_file():
            visible = [f.name for f in out.iterdir() if not f.name.startswith(".")] if out.is_dir() else []
            if visible:
                raise ConfigError(f"--out {out} holds files but no {MANIFEST} ({', '.join(sorted(visible)[:3])}, ...);"
                                  " give a new or empty folder")
            out.mkdir(parents=True, exist_ok=True)
            manifest = cls(out, settings, {})
            manifest.save()
            return manifest
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("shards"), dict):
                raise ValueError(f"expected version {MANIFEST_VERSION} with 'shards'")
        except (ValueError, AttributeError) as err:
            raise DataError(f"not a shard manifest: {err}", path=path) from None
        old = data.get("settings", {})

        def value(d: dict[str, Any], k: str) -> Any:
            return d.get(k, SETTING_DEFAULTS.get(k))

        differ = [k for k in BINDING_SETTINGS if value(old, k) != value(settings, k)]
        if differ:
            detail = "; ".join(f"{k}: {value(old, k)!r} then, {value(settings, k)!r} now" for k in differ)
            raise ConfigError(f"{out} holds shards predicted with other settings ({detail}); use a new --out, or "
                              f"delete {path} to predict every shard again")
        return cls(out, {**old, **settings}, data["shards"])

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "settings": self.settings, "shards": self.shards}
        atomic_write_text(self.path, json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                          sync_dir=True)

    def is_finished(self, shard: Shard) -> bool:
        """True when the manifest's entry for ``shard`` names its output file, that file has the recorded size
        and SHA-256, and the input has the recorded size (see the module docstring)."""
        entry = self.shards.get(shard.key)
        if not entry or entry.get("output") != shard.output.name or not shard.output.is_file():
            return False
        if shard.input.is_file() and shard.input.stat().st_size != entry.get("input_bytes"):
            return False
        if shard.output.stat().st_size != entry.get("bytes"):
            return False
        return file_sha256(shard.output) == entry.get("sha256")

    def record(self, entry: dict[str, Any]) -> None:
        """Enter a finished shard (an entry of :func:`predict_shard`) and save the manifest atomically.

        Raises:
            DataError: the output file named by the entry is not in the output folder as described — e.g. a Ray
                worker on another machine wrote it to a disk this machine does not see.
        """
        out = self.out_dir / entry["output"]
        if not out.is_file() or out.stat().st_size != entry["bytes"]:
            raise DataError(f"shard {entry['key']!r} was written by a worker but {out} is "
                            f"{'missing' if not out.is_file() else 'of another size'} here; on a cluster --out must "
                            "be a folder every node sees at the same path (a shared filesystem)", path=out)
        self.shards[entry["key"]] = {k: v for k, v in entry.items() if k != "key"}
        self.save()


def remove_stale_temps(out_dir: str | Path) -> int:
    """Remove the hidden temporary files that killed writers left in ``out_dir``; returns how many."""
    n = 0
    for f in Path(out_dir).iterdir():
        if f.is_file() and _TEMP.match(f.name):
            f.unlink(missing_ok=True)
            n += 1
    if n:
        log.info("removed %d partial files of an interrupted run from %s", n, out_dir)
    return n


# -- a whole run -----------------------------------------------------------------------------------------------
@contextmanager
def exclusive_out_dir(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``OUT/.lock`` (an exclusive, non-blocking ``flock``, released by the kernel however the process ends:
    :func:`~ade_distill.teacher.outlock.exclusive_output`) for the ``with`` block — one run per output folder.
    Creates the folder.

    Raises:
        ConfigError: ``out_dir`` is a file, or another run holds its lock.
    """
    from ade_distill.teacher.outlock import exclusive_output

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the Ray engine writes a folder of shards")
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_output(out, lock=out / LOCK, command="predict --engine ray") as lock:
        yield lock


def prepare_run(
    inputs: str | Path | Sequence[str | Path], out_dir: str | Path, settings: dict[str, Any],
) -> tuple[Manifest, list[Shard], list[Shard]]:
    """Plan a run: the manifest (opened or created), every shard, and the shards not finished yet (in input
    order). Removes the temporary files of an interrupted run."""
    shards = plan_shards(expand_inputs(inputs), out_dir, settings.get("out_format", "jsonl"))
    manifest = Manifest.open(out_dir, settings)
    remove_stale_temps(out_dir)
    todo = [s for s in shards if not manifest.is_finished(s)]
    return manifest, shards, todo


def collect_results(
    manifest: Manifest, shards: Sequence[Shard], todo: Sequence[Shard], results: Iterable[dict[str, Any]],
    on_shard: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Enter each finished shard of ``results`` in the manifest as it arrives (any order) and call
    ``on_shard(entry)``; a result with an ``error`` is counted, not entered. Returns the summary of the run
    (``shards``, ``skipped``, ``predicted``, ``failed``, totals over the predicted shards, ``errors``).

    Raises:
        DataError: after every result is in, when some shards failed (each named with its error); the shards
            that finished stay finished, and a rerun retries only the others.
    """
    summary: dict[str, Any] = {"shards": len(shards), "skipped": len(shards) - len(todo), "predicted": 0,
                               "failed": 0, "records": 0, "spans": 0, "relations": 0, "sentences": 0,
                               "errors": {}}
    pending = {s.key for s in todo}
    for res in results:
        key = res["key"]
        if key not in pending:
            raise DataError(f"result for shard {key!r}, which this run did not send or already has")
        pending.discard(key)
        if res.get("error"):
            summary["failed"] += 1
            summary["errors"][key] = res["error"]
            log.error("shard %s failed: %s", key, res["error"])
            continue
        manifest.record(res)
        summary["predicted"] += 1
        for k in ("records", "spans", "relations", "sentences"):
            summary[k] += int(res[k])
        if on_shard is not None:
            on_shard(res)
    if pending:
        raise DataError(f"{len(pending)} shards got no result: {', '.join(sorted(pending)[:5])}")
    if summary["errors"]:
        lines = "; ".join(f"{k}: {v}" for k, v in list(summary["errors"].items())[:5])
        raise DataError(f"{summary['failed']} of {len(todo)} shards failed ({lines}); {summary['predicted']} "
                        f"others finished and are in {manifest.path}. Fix or remove the failed inputs and rerun: "
                        "finished shards are skipped")
    return summary


def read_shard(path: str | Path) -> Iterator[Example]:
    """The records of an output shard, JSONL or Parquet (by suffix)."""
    p = Path(path)
    if p.suffix == ".parquet":
        yield from _read_parquet(p)
    else:
        from ade_distill.records import read_examples

        yield from read_examples(p)


# -- Parquet ---------------------------------------------------------------------------------------------------
def _parquet_schema() -> Any:
    import pyarrow as pa

    span = pa.struct([("id", pa.string()), ("label", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                      ("text", pa.string()), ("score", pa.float64()), ("alignment", pa.string()),
                      ("meta", pa.string())])
    relation = pa.struct([("head", pa.string()), ("tail", pa.string()), ("label", pa.string()),
                          ("score", pa.float64()), ("meta", pa.string())])
    return pa.schema([("id", pa.string()), ("text", pa.string()), ("spans", pa.list_(span)),
                      ("relations", pa.list_(relation)), ("meta", pa.string())])


def _json_or_none(d: dict[str, Any] | None) -> str | None:
    return json.dumps(d, ensure_ascii=False, sort_keys=True) if d else None


def _to_row(ex: Example) -> dict[str, Any]:
    d = json.loads(example_to_json(ex))
    spans = [{**{k: s.get(k) for k in ("id", "label", "start", "end", "text", "score", "alignment")},
              "meta": _json_or_none(s.get("meta"))} for s in d["spans"]]
    rels = [{**{k: r.get(k) for k in ("head", "tail", "label", "score")}, "meta": _json_or_none(r.get("meta"))}
            for r in d["relations"]]
    return {"id": d["id"], "text": d["text"], "spans": spans, "relations": rels, "meta": json.dumps(d["meta"],
            ensure_ascii=False)}


def _write_parquet(path: Path, records: Iterable[Example], rows_per_group: int = 4096) -> None:
    """Records as Parquet: ``id``, ``text``, ``spans`` and ``relations`` as lists of structs, each ``meta`` as a
    JSON string (meta holds free keys). Written in row groups, so a shard never sits whole in memory."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("--out-format parquet needs pyarrow: pip install 'ade-distill[parquet]' (or write "
                          "jsonl)") from None
    schema = _parquet_schema()
    with pq.ParquetWriter(str(path), schema) as writer:
        buf: list[dict[str, Any]] = []
        for ex in records:
            buf.append(_to_row(ex))
            if len(buf) >= rows_per_group:
                writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                buf = []
        if buf:
            writer.write_table(pa.Table.from_pylist(buf, schema=schema))


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if v is not None and k != "meta"}
    if d.get("meta"):
        out["meta"] = json.loads(d["meta"])
    return out


def _read_parquet(path: Path) -> Iterator[Example]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(str(path))
    for batch in table.iter_batches():
        for row in batch.to_pylist():
            obj = {"id": row["id"], "text": row["text"], "spans": [_strip(s) for s in row["spans"]],
                   "relations": [_strip(r) for r in row["relations"]], "meta": json.loads(row["meta"] or "{}")}
            yield parse_example(obj, path=path)


__all__ = [
    "FOLDER_INPUT_SUFFIXES", "LOCK", "MANIFEST", "OUT_FORMATS", "Manifest", "Shard", "check_out_format",
    "collect_results", "exclusive_out_dir", "expand_inputs", "is_input_file", "plan_shards",
    "predict_shard", "prepare_run", "read_shard", "remove_stale_temps", "run_settings", "shard_key",
    "shard_records", "write_records_atomic",
]
