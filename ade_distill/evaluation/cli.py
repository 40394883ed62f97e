"""CLI commands of the evaluation stage (registered by ade_distill.cli): ``ade-distill score``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

FORMATS = ("table", "json", "markdown")


def _parse_pred(spec: str) -> tuple[str, Path]:
    from ade_distill.errors import ConfigError

    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"--pred must be NAME=PATH (e.g. --pred student=preds.jsonl), got {spec!r}")
    return name.strip(), Path(path.strip())


def score(
    gold: Annotated[Path, typer.Option("--gold", help="Gold examples (JSONL, common schema).")],
    pred: Annotated[list[str], typer.Option("--pred", help="NAME=PRED.jsonl; repeat for several systems.")],
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
) -> None:
    """Score systems against gold: P/R/F1 with 95% bootstrap CIs per mode and level, paired tests, errors."""
    from rich.console import Console

    from ade_distill.errors import ConfigError
    from ade_distill.evaluation.scoring import resolve_modes, score_systems, write_report_dir
    from ade_distill.records import read_examples

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {list(FORMATS)}, not {fmt!r}")
    specs = [_parse_pred(p) for p in pred]
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"--pred names must be unique, got {names}")
    gold_ex = list(read_examples(gold))
    systems = {name: list(read_examples(path)) for name, path in specs}
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


def register(app: typer.Typer) -> None:
    """Add ``score`` to the root app."""
    app.command("score")(score)
