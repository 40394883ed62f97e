"""`ade-distill` command line: one thin command per pipeline stage.

    data stats | folds | export | download   → ade_distill.data
    tasks                                    → ade_distill.tasks (the gallery)
    label                                    → ade_distill.teacher
    train | predict                          → ade_distill.student
    aggregate                                → ade_distill.signals
    score | browse | baseline                → ade_distill.evaluation
    reproduce                                → ade_distill.experiments

Each stage module exposes ``register(app)``; heavy imports (torch, transformers, openai) happen inside the
commands, so ``ade-distill --help`` and ``data`` commands start fast.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ade_distill.cli_options import InputFormatOpt, LabelMapOpt
from ade_distill.errors import AdeDistillError

app = typer.Typer(
    name="ade-distill",
    help="Distil an LLM teacher into a small biomedical relation extractor (adverse drug events and beyond).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Corpora: statistics, folds, export to JSONL, download.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

# Stage modules that add commands through ``register(app)``.
STAGE_MODULES = (
    "ade_distill.teacher.cli",
    "ade_distill.student.cli",
    "ade_distill.signals.cli",
    "ade_distill.evaluation.cli",
    "ade_distill.experiments.cli",
)


# Loggers whose INFO lines report progress (a line per epoch and every 5% of the steps of training, of
# masked-LM adaptation and of compression); shown without --verbose when stdout is not a terminal.
PROGRESS_LOGGERS = ("ade_distill.student.train", "ade_distill.student.adapt", "ade_distill.student.compress")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    interactive = sys.stdout.isatty()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s" if interactive else
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    if not interactive:  # CI, nohup, a notebook's subprocess: no progress bar is drawn, so log the progress
        for name in PROGRESS_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)


def _data_root(data: Path | None) -> Path:
    from ade_distill.errors import ConfigError
    from ade_distill.paths import data_dir

    if data is not None:
        if not data.is_dir():
            raise ConfigError(f"--data {str(data)!r} is not a folder; point it at the data folder")
        return data
    return data_dir()


DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="Data folder (default: $ADE_DISTILL_DATA, else ../shared/data)."),
]


@data_app.command("stats")
def data_stats(
    data: DataOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Counts per corpus and split: ADE corpus v2, BC5CDR, unlabeled PubMed, recorded teacher outputs."""
    from ade_distill.data.stats import corpus_stats

    if fmt not in ("table", "json"):
        # a ConfigError (not typer.BadParameter): main() turns it into one line and exit code 2
        from ade_distill.errors import ConfigError

        raise ConfigError(f"--format must be table or json, not {fmt!r}")
    stats = corpus_stats(_data_root(data))
    if fmt == "json":
        typer.echo(json.dumps(stats, indent=2))
        return
    table = Table(title=f"Corpora in {stats['data_dir']}")
    table.add_column("corpus")
    table.add_column("split / file")
    table.add_column("counts")
    if "ade" in stats:
        a = stats["ade"]
        table.add_row(
            "ADE corpus v2", "DRUG-AE.rel",
            f"{a['relations']:,} relations (of {a['relation_lines']:,} lines) in {a['positive_examples']:,} "
            f"(PMID, sentence) examples, {a['distinct_positive_texts']:,} distinct texts, {a['pmids_positive']:,} PMIDs; "
            f"spans {a['spans']}; mentions {a['mention_resolution']}; unlocated {a['unlocated_mentions']}",
        )
        table.add_row(
            "", "ADE-NEG.txt",
            f"{a['negative_examples']:,} negative examples from {a['negative_lines']:,} lines "
            f"({a['negative_duplicates_dropped']} duplicate lines dropped, "
            f"{a['negative_also_positive_dropped']} equal to a positive sentence dropped)",
        )
        table.add_row("", "DRUG-DOSE.rel", f"{a['drug_dose_relations']:,} drug-dose relations (corpus ade-dose, task drug_dose)")
    for split, c in stats.get("cdr", {}).items():
        table.add_row("BC5CDR", split, f"{c['documents']:,} documents, {c['cid_relations']:,} CID relations, "
                      f"mentions {c['mentions']}, unanchored {c['unanchored_relations']}")
    for name, info in stats.get("unlabeled", {}).items():
        table.add_row("unlabeled PubMed", name, json.dumps(info))
    for name, info in stats.get("teacher_outputs", {}).items():
        table.add_row("teacher outputs", name, f"{info['responses']:,} responses, finish {info['finish_reason']}")
    console.print(table)
    if "ade" in stats:
        console.print(f"[dim]ADE-NEG policy: {stats['ade']['negative_policy']}[/dim]")


@data_app.command("folds")
def data_folds(
    out: Annotated[Path, typer.Option("--out", help="Folds file to write (JSON).")],
    corpus: Annotated[str, typer.Option("--corpus", help="ade, ade-positive, ade-dose, cdr, cdr-test, ... or a records "
                                        "file (JSONL, BioC) or BRAT folder")] = "ade",
    k: Annotated[int, typer.Option("-k", "--k", help="Number of folds.")] = 10,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    data: DataOpt = None,
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Write k folds grouped by PubMed ID (no document in two folds); same seed → same file."""
    from ade_distill.data.corpora import load_corpus
    from ade_distill.data.folds import make_folds

    examples = load_corpus(corpus, _data_root(data), fmt=input_format, options=label_map)
    folds = make_folds(examples, k=k, seed=seed, corpus=corpus)
    folds.save(out)
    byid = {e.id: e for e in examples}
    table = Table(title=f"{k} folds of {corpus} (seed {seed}) → {out}")
    for col in ("fold", "documents", "examples", "with relations"):
        table.add_column(col, justify="right")
    for j, ids in enumerate(folds.folds):
        table.add_row(str(j), str(len(folds.groups[j])), str(len(ids)), str(sum(1 for i in ids if byid[i].relations)))
    console.print(table)


@data_app.command("export")
def data_export(
    out: Annotated[Path, typer.Option("--out", help="File (JSONL, BioC .xml/.json) or BRAT folder to write.")],
    corpus: Annotated[str, typer.Option("--corpus", help="ade, ade-positive, ade-dose, cdr, cdr-train|dev|test, or records "
                                        "to convert: silver/predictions JSONL, a BioC file, a BRAT folder")] = "ade",
    only_with_relations: Annotated[
        bool, typer.Option("--only-with-relations", help="Keep only examples that have at least one relation.")
    ] = False,
    data: DataOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Output: jsonl, brat (a folder to correct in a BRAT "
                                            "server) or bioc (XML; JSON for a .json --out) (default: from the --out "
                                            "name: .jsonl, .xml/.json, no suffix → BRAT).")] = None,
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Export a gold corpus, or convert records between JSONL, BRAT and BioC (e.g. silver → BRAT for expert
    correction, then the corrected BRAT folder → JSONL). What the output format cannot hold is counted."""
    from ade_distill.data.corpora import CORPORA, load_corpus
    from ade_distill.data.formats import output_format, write_records

    fmt = output_format(out, fmt)  # before reading: a --format the --out name contradicts is refused at once
    examples = load_corpus(corpus, _data_root(data) if corpus in CORPORA else None, fmt=input_format,
                           options=label_map)
    if only_with_relations:
        examples = [e for e in examples if e.relations]
    report = write_records(out, examples, fmt, options=label_map)
    console.print(f"wrote {report.records:,} examples of {corpus} to {out} ({report.fmt})", highlight=False)
    if report.issues:
        err_console.print(f"[yellow]warning:[/yellow] {escape(report.summary())}", highlight=False, soft_wrap=True)


@data_app.command("download")
def data_download(
    out: Annotated[Path, typer.Option("--out", help="Folder to download into (then set ADE_DISTILL_DATA).")],
    what: Annotated[str, typer.Option("--what", help="Comma-separated: ade,cdr,medline,hf-ade")] = "ade,cdr,medline",
) -> None:
    """Download the corpora from their public sources (needs the internet)."""
    from ade_distill.data.download import download

    for p in download(out, [w.strip() for w in what.split(",") if w.strip()]):
        console.print(f"wrote {p}")
    console.print(f"set ADE_DISTILL_DATA={out}")


@app.command("tasks")
def tasks() -> None:
    """The task gallery: each shipped task, its relation, the student that fits it, its gold corpus, scorer
    modes and reproduce config. A task of your own is a task YAML file (pass its path as --task)."""
    from ade_distill.tasks.gallery import load_gallery

    table = Table(title="task gallery (ade_distill/tasks/)")
    for col in ("task", "unit", "relation", "student", "gold corpus", "scoring", "config"):
        table.add_column(col)
    for entry in load_gallery():
        spec = entry.spec()
        rel = spec.primary
        table.add_row(entry.task, spec.unit, f"{rel.label}: {rel.head} → {rel.tail}", entry.student,
                      entry.corpus, ", ".join(entry.scoring), entry.config or "")
    console.print(table)


def _register_stages() -> None:
    for name in STAGE_MODULES:
        importlib.import_module(name).register(app)


_register_stages()


def main() -> None:
    """Console-script entry point. Usage errors are handled by click (exit 2, one message); package errors
    (bad data, bad config, failing backend) are printed as one line, also with exit code 2 — no traceback. An
    int8 model refused by its accuracy guard (``quantize``, ``export-onnx --int8``) exits with 3, so scripts can
    tell a measured refusal from a failure."""
    from ade_distill.student.int8_guard import AccuracyGuardError

    try:
        app()
    except AdeDistillError as err:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(3 if isinstance(err, AccuracyGuardError) else 2)
