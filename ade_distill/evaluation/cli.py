"""CLI commands of the evaluation stage (registered by ade_distill.cli): ``ade-distill score``,
``ade-distill browse`` (the error browser page) and ``ade-distill baseline`` (rule baselines to score beside)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ade_distill.cli_options import InputFormatOpt, LabelMapOpt, TaskOpt

if TYPE_CHECKING:
    from ade_distill.records import Example

FORMATS = ("table", "json", "markdown")


def _parse_pred(spec: str) -> tuple[str, Path]:
    from ade_distill.errors import ConfigError

    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"--pred must be NAME=PATH (e.g. --pred student=preds.jsonl), got {spec!r}")
    return name.strip(), Path(path.strip())


def _read_gold(path: Path, fmt: str | None = None, label_map: Path | None = None) -> list[Example]:
    """Gold records; :class:`DataError` when there are none (scores of nothing would read as a score of 0)."""
    from ade_distill.data.formats import read_records
    from ade_distill.errors import DataError

    gold = read_records(path, fmt, options=label_map)
    if not gold:
        raise DataError("no gold records (empty file): nothing to score", path=path)
    return gold


def _unknown_labels(ex: Example, entity_labels: set[str], relation_labels: set[str]) -> list[str]:
    """Labels of ``ex`` that the gold never uses (a level without any gold label is not checked)."""
    out = [s.label for s in ex.spans if entity_labels and s.label not in entity_labels]
    return out + [r.label for r in ex.relations if relation_labels and r.label not in relation_labels]


def _first_line_with(path: Path, labels: set[str], preds: Sequence[Example] = ()) -> tuple[int | None, str | None]:
    """Line and record id of the first record of ``path`` using one of ``labels`` (a second pass, only taken
    when there is something to report); no line for BRAT and BioC input."""
    from ade_distill.data.formats import detect_format
    from ade_distill.records import iter_jsonl, parse_example

    if detect_format(path) != "jsonl":
        uses = (ex.id for ex in preds if {s.label for s in ex.spans} & labels or {r.label for r in ex.relations} & labels)
        return None, next(uses, None)
    for line, obj in iter_jsonl(path):
        ex = parse_example(obj, path=path, line=line)
        if any(s.label in labels for s in ex.spans) or any(r.label in labels for r in ex.relations):
            return line, ex.id
    return 0, None  # pragma: no cover - the caller found such a record


def _check_labels(path: Path, preds: Sequence[Example], gold: Sequence[Example], allow: bool) -> None:
    """Name the labels of ``preds`` that the gold does not know (they can only score as false positives):
    :class:`DataError` at the first record using one, or a warning with ``allow``."""
    from ade_distill.errors import DataError

    ents = {s.label for g in gold for s in g.spans}
    rels = {r.label for g in gold for r in g.relations}
    unknown = Counter(lab for ex in preds for lab in _unknown_labels(ex, ents, rels))
    if not unknown:
        return
    line, rid = _first_line_with(path, set(unknown), preds)
    counts = ", ".join(f"{lab!r} {n:,}x" for lab, n in unknown.most_common())
    err = DataError(f"labels the gold does not use: {counts} (gold entity labels {sorted(ents)}, relation labels "
                    f"{sorted(rels)}); they can only count as false positives — rename them, or pass "
                    "--allow-unknown-labels to score them so", path=path, line=line, record_id=rid)
    if not allow:
        raise err
    typer.echo(f"warning: {err}", err=True)


def _load_systems(
    gold: Path, pred: Sequence[str], input_format: str | None, label_map: Path | None, allow_unknown_labels: bool,
) -> tuple[list[Example], dict[str, list[Example]]]:
    """``score`` and ``browse``: the gold records and each ``--pred NAME=PATH`` system's records (names unique,
    every predicted label known to the gold unless ``allow_unknown_labels``).

    Raises:
        ConfigError: a malformed ``NAME=PATH``, a name given twice, an unknown format or label map.
        DataError: no gold records, malformed input, a predicted label the gold never uses.
    """
    from ade_distill.data.formats import read_records
    from ade_distill.errors import ConfigError

    specs = [_parse_pred(p) for p in pred]
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"--pred names must be unique, got {names}")
    gold_ex = _read_gold(gold, input_format, label_map)
    systems = {name: read_records(path, input_format, options=label_map) for name, path in specs}
    for name, path in specs:
        _check_labels(path, systems[name], gold_ex, allow_unknown_labels)
    return gold_ex, systems


def score(
    gold: Annotated[Path, typer.Option("--gold", help="Gold examples: JSONL, a BRAT folder or a BioC file.")],
    pred: Annotated[list[str], typer.Option("--pred", help="NAME=PATH (JSONL, BRAT folder, BioC file); repeat "
                                            "for several systems.")],
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="strict|boundaries|lenient|text|concept|all; repeat or comma-separate for several"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for results.json, report.md, errors.md/json.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap samples (0: no CIs, no paired tests).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    missing_as_empty: Annotated[
        bool, typer.Option("--missing-as-empty", help="Score gold ids without prediction as empty predictions.")
    ] = False,
    allow_unknown_labels: Annotated[
        bool, typer.Option("--allow-unknown-labels", help="Score predicted labels the gold never uses as false "
                           "positives (with a warning) instead of stopping.")
    ] = False,
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Score systems against gold: P/R/F1 with 95% bootstrap CIs per mode and level, paired tests, errors.

    Gold and predictions may be JSONL, BRAT folders or BioC files (detected, or --input-format)."""
    from rich.console import Console

    from ade_distill.errors import ConfigError
    from ade_distill.evaluation.scoring import resolve_modes, score_systems, write_report_dir

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {list(FORMATS)}, not {fmt!r}")
    gold_ex, systems = _load_systems(gold, pred, input_format, label_map, allow_unknown_labels)
    modes = resolve_modes(mode or ["all"], gold_ex)
    report = score_systems(gold_ex, systems, modes=modes, n_boot=n_boot, seed=seed,
                           missing_as_empty=missing_as_empty)
    console = Console(width=200)
    if fmt == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    elif fmt == "markdown":
        typer.echo(report.to_markdown())
    else:
        for t in report.rich_tables():
            console.print(t)
    if out is not None:
        paths = write_report_dir(report, out)
        msg = "wrote " + ", ".join(str(p) for p in paths)
        if fmt == "table":
            console.print(msg)
        else:
            typer.echo(msg, err=True)


def browse(
    gold: Annotated[Path, typer.Option("--gold", help="Gold examples (JSONL, BRAT or BioC).")],
    pred: Annotated[list[str], typer.Option("--pred", help="NAME=PATH (JSONL, BRAT folder, BioC file); repeat "
                                            "for several systems.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write (one self-contained page).")],
    mode: Annotated[str, typer.Option("--mode", help="strict, boundaries or lenient: what counts as correct.")] = "strict",
    title: Annotated[str, typer.Option("--title", help="Page title (default: the gold file's name).")] = "",
    missing_as_empty: Annotated[
        bool, typer.Option("--missing-as-empty", help="Show gold ids without prediction as empty predictions.")
    ] = False,
    allow_unknown_labels: Annotated[
        bool, typer.Option("--allow-unknown-labels", help="Accept predicted labels the gold never uses.")
    ] = False,
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Write an error browser: one HTML page (no server, no network) with every sentence's gold and predicted
    spans and relations, each marked correct or with its error category. With --mode strict the counts equal
    `score`'s errors; with boundaries or lenient they are the error analysis under the same mode (score's
    errors.md is strict)."""
    from ade_distill.reports.browse import write_browse

    gold_ex, systems = _load_systems(gold, pred, input_format, label_map, allow_unknown_labels)
    page = write_browse(out, gold_ex, systems, mode, title=title or f"Errors on {gold.name}",
                        missing_as_empty=missing_as_empty)
    size = page.stat().st_size / 1e6
    typer.echo(f"wrote {page} ({len(gold_ex):,} sentences, {len(systems)} system(s), {mode}, {size:.1f} MB)")


def baseline(
    input_path: Annotated[Path, typer.Option("--input", help="Records with their entity mentions (JSONL, BRAT, "
                                             "BioC), e.g. the gold test set.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions JSONL (common schema) to score with `score`.")],
    task: TaskOpt = "ade",
    window: Annotated[str, typer.Option("--window", help="sentence: link entity pairs that share a sentence; "
                                        "text: every pair of the text.")] = "sentence",
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Co-occurrence baseline over given entity mentions: every (head, tail) entity pair sharing a sentence (or a
    text) is predicted as the task's relation — the floor a learned extractor in the gold-entities setting
    should clear."""
    from ade_distill.data.formats import read_records
    from ade_distill.errors import ConfigError
    from ade_distill.evaluation.baselines import cooccurrence_all
    from ade_distill.records import write_examples
    from ade_distill.tasks.spec import load_task

    if window not in ("sentence", "text"):
        raise ConfigError(f"--window must be sentence or text, not {window!r}")
    if out.resolve() == input_path.resolve():
        raise ConfigError(f"--out {str(out)!r} is the input file; write the predictions elsewhere")
    spec = load_task(task)
    records = read_records(input_path, input_format, options=label_map)
    labels = {spec.head_label, spec.tail_label}
    if records and not any(labels <= {s.label for s in ex.spans if s.start is not None} for ex in records):
        found = sorted({s.label for ex in records for s in ex.spans})
        raise ConfigError(f"{input_path}: no record has both {spec.head_label} and {spec.tail_label} mentions "
                          f"with offsets (task {spec.name!r}; the records' span labels: {found or 'none'}); the "
                          "baseline links given entity mentions — pass the task of these records (--task)")
    preds = cooccurrence_all(records, spec, window)  # type: ignore[arg-type]
    write_examples(out, preds)
    typer.echo(f"wrote {len(preds)} records ({sum(len(p.relations) for p in preds)} relations, co-occurrence "
               f"in one {window}) to {out}")


def register(app: typer.Typer) -> None:
    """Add ``score``, ``browse`` and ``baseline`` to the root app."""
    app.command("score")(score)
    app.command("browse")(browse)
    app.command("baseline")(baseline)
