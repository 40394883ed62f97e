"""CLI command of the signals stage (registered by ade_distill.cli): ``ade-distill aggregate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ade_distill.cli_options import TaskOpt


def register(app: typer.Typer) -> None:
    """Add ``aggregate`` to the root app."""

    @app.command("aggregate")
    def aggregate(
        pred: Annotated[list[Path], typer.Option("--pred", help="Prediction records: JSONL or Parquet (predict "
                                                 "--engine ray output); a folder: its *.jsonl and *.parquet "
                                                 "files. Repeat for several files.")],
        out: Annotated[Path, typer.Option("--out", help="Table to write: .csv or .parquet.")],
        task: TaskOpt = "ade",
        min_documents: Annotated[int, typer.Option("--min-documents", min=1, help="Keep pairs found in at least "
                                                   "this many documents.")] = 1,
        top: Annotated[int, typer.Option("--top", min=0, help="Rows to print.")] = 10,
    ) -> None:
        """Predictions → one table of normalised (drug, adverse effect) pairs with mentions, documents, PMIDs
        and publication years, sorted by the number of documents (the literature signal table)."""
        from rich.console import Console
        from rich.table import Table

        from ade_distill.signals.table import aggregate_pairs, iter_predictions, write_table
        from ade_distill.tasks.spec import load_task

        spec = load_task(task)
        table = aggregate_pairs(iter_predictions(pred, task=spec), spec, min_documents=min_documents)
        write_table(table, out)
        console = Console()
        if top and table.rows:
            view = Table(title=f"Top {min(top, len(table.rows))} of {len(table.rows):,} pairs")
            for col in (table.head_key, table.tail_key, "documents", "mentions", "years"):
                view.add_column(col, justify="right" if col in ("documents", "mentions") else "left")
            for r in table.rows[:top]:
                years = f"{r.first_year}–{r.last_year}" if r.years else ""
                view.add_row(r.head, r.tail, f"{r.n_documents:,}", f"{r.n_mentions:,}", years)
            console.print(view)
        console.print(f"{table.records:,} records from {table.documents:,} documents: {table.relations:,} relations "
                      f"→ {len(table.rows):,} pairs" + (f" ({table.other_relations:,} relations of other labels "
                      "not counted)" if table.other_relations else "") + f"; wrote {out}", highlight=False)
