"""CLI commands of the teacher stage (registered by ade_distill.cli): ``ade-distill label``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ade_distill.cli_options import DocumentFormatOpt, LabelMapOpt, TaskOpt


def _load_inputs(path: Path, fmt: str | None, task_unit: str, split: str) -> list:
    """The texts to label; :class:`DataError` when there are none (an empty file is a mistake, not a job)."""
    from ade_distill.data.formats import document_format
    from ade_distill.data.unlabeled import iter_documents, sniff_format, to_sentences
    from ade_distill.errors import ConfigError, DataError

    fmt = document_format(fmt) or sniff_format(path)  # jsonl → records; an unknown name is a ConfigError
    docs = iter_documents(path, fmt)
    if split not in ("auto", "yes", "no"):
        raise ConfigError(f"--split-sentences must be auto, yes or no, got {split!r}")
    # records (JSONL, BRAT, BioC) are labeled as they are unless --split-sentences yes
    do_split = split == "yes" or (split == "auto" and fmt not in ("records", "brat", "bioc") and task_unit == "sentence")
    examples = list(to_sentences(docs) if do_split else docs)
    if not examples:
        raise DataError(f"no text to label (read as {fmt}): the input is empty; nothing was written", path=path)
    return examples


def _failure_line(summary: Any) -> str | None:
    """One line with the counts of records whose call failed (status ``error``, or ``expired`` for a batch
    teacher) and of the other non-ok statuses, or ``None`` when no call failed."""
    failed = summary.status.get("error", 0) + summary.status.get("expired", 0)
    if not failed:
        return None
    nok = ("ok", "error", "expired")
    others = ", ".join(f"{k} {v:,}" for k, v in summary.status.items() if v and k not in nok)
    return (f"{failed:,} of {summary.records:,} records failed (status error {summary.status.get('error', 0):,}, "
            f"expired {summary.status.get('expired', 0):,}: the teacher never answered); "
            f"ok {summary.status.get('ok', 0):,}" + (f", {others}" if others else "")
            + ". Rerun the same command to retry them (answers already received are cached).")


def _is_batch_teacher(teacher: str) -> bool | None:
    """Whether ``--teacher`` names a batch teacher (``None``: not a valid teacher, left to the job to refuse)."""
    from ade_distill.errors import ConfigError
    from ade_distill.teacher.backends import BATCH_KINDS, parse_teacher_spec

    try:
        return parse_teacher_spec(teacher).kind in BATCH_KINDS
    except ConfigError:
        return None


def _warn_ignored(teacher: str, *, concurrency: int | None, poll_interval: float | None,
                  max_wait: float | None) -> None:
    """Warn on stderr of options given (not ``None``) that ``teacher``'s kind does not use: ``--poll-interval`` /
    ``--max-wait`` for a synchronous teacher, ``--concurrency`` for a batch teacher."""
    is_batch = _is_batch_teacher(teacher)
    if is_batch is None:
        return
    given = ({"--concurrency": concurrency} if is_batch
             else {"--poll-interval": poll_interval, "--max-wait": max_wait})
    ignored = [name for name, value in given.items() if value is not None]
    if ignored:
        what = "a batch teacher (it submits every request at once)" if is_batch else "a synchronous teacher"
        typer.echo(f"warning: {', '.join(ignored)} ignored: {teacher.partition(':')[0]} is {what}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``label`` to the root app."""

    @app.command("label")
    def label(
        teacher: Annotated[str, typer.Option("--teacher", help="openai:MODEL | openai-compatible:URL:MODEL | "
                                             "azure:ENDPOINT:DEPLOYMENT | hf:PATH_OR_NAME | replay:FILE | "
                                             "openai-batch:MODEL (Batch API, half price, within 24 h) | "
                                             "openai-batch:URL:MODEL | azure-batch:ENDPOINT:DEPLOYMENT")],
        input: Annotated[Path, typer.Option("--input", help="Records JSONL (text labeled as is), abstracts JSONL, "
                                            "MEDLINE XML(.gz) or text (split into sentences for sentence tasks).")],
        out: Annotated[Path, typer.Option("--out", help="Silver JSONL; an existing file is resumed.")],
        task: TaskOpt = "ade",
        concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="Simultaneous requests "
                                                        "(default 8; not for batch teachers).")] = None,
        max_cost: Annotated[float | None, typer.Option("--max-cost", help="Budget in USD for new calls (batch "
                                              "teachers: estimated, and batches still to collect count).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Estimate tokens and cost; make no call "
                                              "(no API key needed).")] = False,
        local_only: Annotated[bool, typer.Option("--local-only", help="Refuse non-loopback/private "
                                            "endpoints; connect to the checked address only, never via a proxy.")] = False,
        cache: Annotated[Path | None, typer.Option("--cache", help="SQLite response cache "
                                                   "(default: OUT's folder/teacher_cache.sqlite).")] = None,
        shots: Annotated[int, typer.Option("--shots", min=0, help="k demonstrations per prompt.")] = 0,
        demo_pool: Annotated[Path | None, typer.Option("--demo-pool", help="Labeled records (JSONL, BRAT folder "
                                                       "or BioC file) to draw demonstrations from (never test "
                                                       "data).")] = None,
        label_map: LabelMapOpt = None,
        demo_strategy: Annotated[str, typer.Option("--demo-strategy", help="random or nearest.")] = "random",
        seed: Annotated[int, typer.Option("--seed")] = 0,
        input_format: DocumentFormatOpt = None,
        split_sentences: Annotated[str, typer.Option("--split-sentences", help="auto, yes or no.")] = "auto",
        prices: Annotated[Path | None, typer.Option("--prices", help="Price YAML overriding the shipped one.")] = None,
        response_format: Annotated[str, typer.Option("--response-format", help="auto, json_schema, json_object, "
                                                     "function or text.")] = "auto",
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 60.0,
        retries: Annotated[int, typer.Option("--retries", min=0, help="Retries of transient errors.")] = 5,
        backoff: Annotated[float, typer.Option("--backoff", help="First backoff wait in seconds.")] = 1.0,
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 1024,
        api_version: Annotated[str | None, typer.Option("--api-version", help="Azure API version.")] = None,
        poll_interval: Annotated[float | None, typer.Option("--poll-interval", min=0.001, help="Batch teachers: "
                                                            "seconds between two looks at a running batch "
                                                            "(default 60).")] = None,
        max_wait: Annotated[float | None, typer.Option("--max-wait", min=0, help="Batch teachers: stop polling "
                                                       "after this many seconds (0: submit and return); the batch "
                                                       "keeps running, rerun the command to collect it.")] = None,
        summary_json: Annotated[Path | None, typer.Option("--summary-json", help="Also write the summary.")] = None,
        no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    ) -> None:
        """Label unlabeled text with an LLM teacher → silver records (cached, resumable, grounded to offsets).

        A batch teacher (``openai-batch:MODEL``) uploads the requests as one batch per 50,000 and polls until
        they end; its batch ids are kept in ``OUT.batch.json``, so a rerun after a kill polls them again
        instead of paying twice.

        Exit code 1 when records failed (status ``error`` or ``expired``, retried by a rerun); 2 for bad options
        or input."""
        from rich.console import Console
        from rich.markup import escape

        from ade_distill.data.formats import read_records
        from ade_distill.tasks.spec import load_task
        from ade_distill.teacher.label import RetryPolicy, estimate_job, label_examples

        console = Console(stderr=False)
        _warn_ignored(teacher, concurrency=concurrency, poll_interval=poll_interval, max_wait=max_wait)
        spec = load_task(task)
        examples = _load_inputs(input, input_format, spec.unit, split_sentences)
        pool = read_records(demo_pool, task=spec, options=label_map) if demo_pool is not None else None
        common: dict[str, Any] = dict(cache_path=cache, shots=shots, demo_pool=pool, demo_strategy=demo_strategy, seed=seed,
                      prices=prices, local_only=local_only, response_format=response_format, max_tokens=max_tokens)
        if dry_run:
            est = estimate_job(spec, teacher, examples, out, **common)
            cost = ("unknown (model not in the price table)" if est.cost_usd is None
                    else f"${est.cost_usd:,.4f} at {est.prices}")
            console.print(
                f"dry run for {est.model}: {est.records:,} records to label ({est.cached:,} already cached); "
                f"~{est.prompt_tokens:,} prompt + ~{est.completion_tokens:,} completion tokens "
                f"(prompt tokens: {est.token_estimate}; {est.completion_tokens // max(1, est.records - est.cached)} "
                f"output tokens a record assumed); estimated cost {cost}. No call was made.", highlight=False,
                soft_wrap=True,
            )
            if summary_json is not None:
                summary_json.write_text(json.dumps(est.to_dict(), indent=2) + "\n", encoding="utf-8")
            return
        from ade_distill.teacher.batch import BatchConfig

        summary = label_examples(
            spec, teacher, examples, out, concurrency=8 if concurrency is None else concurrency, max_cost=max_cost,
            progress=not no_progress,
            timeout=timeout, retry=RetryPolicy(attempts=retries + 1, initial=backoff), api_version=api_version,
            batch=BatchConfig(poll_interval_s=60.0 if poll_interval is None else poll_interval, max_wait_s=max_wait),
            **common,
        )
        console.print(summary)
        if summary.stopped_by_budget and _is_batch_teacher(teacher):
            console.print(f"[yellow]stopped at the budget of ${max_cost:g}: {summary.remaining:,} records remain. "
                          "The estimated cost of batches submitted and not yet written (this run's and earlier "
                          "runs', in the state file) counts against --max-cost until their records are written: "
                          "rerun to collect them, then again to submit more within the budget, or raise "
                          "--max-cost[/yellow]")
        elif summary.stopped_by_budget:
            console.print(f"[yellow]stopped at the budget of ${max_cost:g}: {summary.remaining:,} records remain; "
                          "rerun with a higher --max-cost to resume[/yellow]")
        if summary.batches_pending:
            console.print(f"[yellow]{summary.batches_pending:,} batch(es) still running: {summary.remaining:,} "
                          "records remain; rerun the same command to collect them (no second submission)[/yellow]")
        console.print(f"wrote {out}")
        if summary_json is not None:
            summary_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
        failure = _failure_line(summary)
        if failure is not None:
            Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(failure)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1)
