"""The labeling job: examples → teacher calls → parse → ground → silver records, cached and resumable.

Guarantees:

* **One record per distinct text**, in input order whatever the concurrency: the first id is kept and every
  input id is listed in ``meta["source_ids"]``. Results are kept by input index and appended (fsynced, through
  :class:`~ade_distill.records.JsonlAppender`) as the contiguous prefix completes.
* **Resumable**: records already in ``out`` are skipped (their ids must be the prefix of this input, and their
  ``teacher``, ``template_version`` and ``task`` those of this run, else :class:`ConfigError`: a resume never
  mixes teachers); finished calls live in the response cache (SQLite), the source of truth, so a job
  killed at any moment reruns to a byte-identical file without paying twice. Records with status ``error`` at
  the end of a previous run are relabeled: the file is cut just before the first of them. When the input has
  grown since, ``source_ids`` of the records already written are updated to this input's ids.
* **Fault tolerant**: transient failures (429 with ``Retry-After``, 5xx, timeouts, dropped connections,
  malformed bodies) are retried with exponential backoff (tenacity); a record whose retries run out is written
  with status ``error`` (counted, retried on the next run). Auth/config failures stop the job at once
  (:class:`BackendError`), after writing the finished prefix.
* **One job per output**: an exclusive lock on ``OUT.lock`` (:mod:`~ade_distill.teacher.outlock`) is held for
  the whole job; a second job on the same ``out`` stops with :class:`ConfigError` before touching it.
* **Budget**: with ``max_cost``, no new billable call starts once the money spent by *this run* reaches the
  budget (cache hits and replays are free); records not yet labeled are not written, and a rerun with a larger
  budget resumes.
* **Honest**: record ``meta.status`` is ``ok``, ``refused`` (content filter / refusal — never "no relations"),
  ``truncated`` (length; complete items kept), ``parse_error``, ``no_recording`` (replay miss), ``error``, or
  ``expired`` (a Batch API request the batch's completion window ended before; retried like ``error``).
* **Batch teachers** (``openai-batch:MODEL``): the same records, at batch prices, from one submitted batch per
  50,000 requests — the job driver is :mod:`ade_distill.teacher.batch` (upload, submit, poll, download; the batch
  ids live in ``OUT.batch.json`` until every answer is written, so a killed job resumes polling).
  Ungrounded arguments are kept as ``alignment="unaligned"`` spans without offsets, and counted.

Silver record ``meta``: provenance of the input (``pmid``, ``doc_id``, ``sentence_index``, ``doc_start``,
``source``, ``year``), ``source_ids``, ``teacher`` (spec without credentials), ``task`` (name), ``model``, ``template_version``,
``prompt_hash``, ``status``, ``finish_reason``, ``parse`` (method), ``usage``, ``cost_usd``, ``args`` (per alignment
status), ``ungrounded_args``, for replay ``response_id``, for batch teachers ``batch_id``. No API key is ever part of a record.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ade_distill.errors import BackendError, ConfigError
from ade_distill.records import (
    AlignmentStatus,
    Example,
    JsonlAppender,
    read_examples,
    write_examples,
)
from ade_distill.tasks.spec import Demonstration, TaskSpec
from ade_distill.teacher.backends import make_backend
from ade_distill.teacher.backends.base import TeacherRequest, TeacherResponse, TransientError
from ade_distill.teacher.cache import ResponseCache, cache_key
from ade_distill.teacher.cost import PriceTable, token_counter
from ade_distill.teacher.ground import ground_items
from ade_distill.teacher.outlock import exclusive_output
from ade_distill.teacher.parse import parse_output
from ade_distill.teacher.prompts import Prompt, output_schema, render_prompt

if TYPE_CHECKING:
    from ade_distill.teacher.batch import BatchConfig

log = logging.getLogger(__name__)

__all__ = ["label_examples", "estimate_job", "LabelSummary", "CostEstimate", "RetryPolicy", "dedupe_examples",
           "STATUSES", "RETRY_STATUSES"]

STATUSES = ("ok", "refused", "truncated", "parse_error", "no_recording", "error", "expired")
RETRY_STATUSES = ("error", "expired")  # no answer: relabeled by the next run
_KEEP_META = ("pmid", "doc_id", "sentence_index", "doc_start", "source", "year")
OUTPUT_TOKENS_PER_RECORD = 64  # --dry-run allowance for each answer


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: ``attempts`` in all, waiting ``Retry-After`` when the server sends it
    (capped at ``max_wait``) else exponential backoff with jitter from ``initial`` to ``max_wait`` seconds."""

    attempts: int = 6
    initial: float = 1.0
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"retry attempts must be >= 1, got {self.attempts}")
        if self.initial < 0 or self.max_wait < 0:
            raise ConfigError("retry waits must be >= 0")


@dataclass
class LabelSummary:
    """Counts over every record in the output file (including those written by earlier runs)."""

    teacher: str
    model: str
    inputs: int = 0
    distinct_texts: int = 0
    records: int = 0
    written_now: int = 0
    resumed: int = 0
    remaining: int = 0
    relations: int = 0
    relations_grounded: int = 0
    status: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    args: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in AlignmentStatus})
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_records: int = 0
    spent_usd: float = 0.0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    stopped_by_budget: bool = False
    elapsed_s: float = 0.0
    prices: str = "list prices"
    batches_pending: int = 0
    bad_result_lines: int = 0  # batch result lines that could not be read (their records: status error)

    @property
    def refused(self) -> int:
        return self.status["refused"]

    @property
    def truncated(self) -> int:
        return self.status["truncated"]

    def grounding_rate(self) -> dict[str, float]:
        total = sum(self.args.values())
        return {k: (v / total if total else 0.0) for k, v in self.args.items()}

    def add(self, ex: Example) -> None:
        m = ex.meta
        self.records += 1
        st = m.get("status", "error")
        self.status[st] = self.status.get(st, 0) + 1
        spans = ex.span_by_id()
        self.relations += len(ex.relations)
        self.relations_grounded += sum(1 for r in ex.relations if spans[r.head].grounded and spans[r.tail].grounded)
        for k, v in (m.get("args") or {}).items():
            self.args[k] = self.args.get(k, 0) + int(v)
        u = m.get("usage") or {}
        self.prompt_tokens += int(u.get("prompt_tokens", 0))
        self.completion_tokens += int(u.get("completion_tokens", 0))
        if m.get("cost_usd") is None:
            if u:
                self.unpriced_records += 1
        else:
            self.cost_usd += float(m["cost_usd"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher, "model": self.model, "inputs": self.inputs,
            "distinct_texts": self.distinct_texts, "records": self.records, "written_now": self.written_now,
            "resumed": self.resumed, "remaining": self.remaining, "relations": self.relations,
            "relations_grounded": self.relations_grounded, "status": dict(self.status),
            "refused": self.refused, "truncated": self.truncated,
            "arguments": dict(self.args), "grounding_rate": {k: round(v, 4) for k, v in self.grounding_rate().items()},
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6), "unpriced_records": self.unpriced_records,
            "spent_usd": round(self.spent_usd, 6), "calls": self.calls, "cache_hits": self.cache_hits,
            "retries": self.retries, "stopped_by_budget": self.stopped_by_budget,
            "elapsed_s": round(self.elapsed_s, 3), "prices": self.prices, "batches_pending": self.batches_pending,
            "bad_result_lines": self.bad_result_lines,
        }

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"Silver labels from {self.teacher} ({self.model})", show_header=False)
        t.add_column("what", style="bold")
        t.add_column("value")
        t.add_row("records", f"{self.records:,} of {self.distinct_texts:,} distinct texts "
                  f"({self.inputs:,} inputs; {self.written_now:,} written now, {self.resumed:,} resumed, "
                  f"{self.remaining:,} remaining)")
        t.add_row("status", ", ".join(f"{k} {v:,}" for k, v in self.status.items()))
        t.add_row("refusals / truncations", f"{self.refused:,} refused (content filter), {self.truncated:,} truncated")
        t.add_row("relations", f"{self.relations:,} ({self.relations_grounded:,} with both arguments grounded)")
        total = sum(self.args.values())
        rate = self.grounding_rate()
        t.add_row("arguments by alignment", ", ".join(f"{k} {v:,} ({rate[k]:.1%})" for k, v in self.args.items())
                  + f"; total {total:,}")
        t.add_row("tokens", f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion")
        cost = f"${self.cost_usd:,.4f} at {self.prices}"
        if self.unpriced_records:
            cost += f" ({self.unpriced_records:,} records of an unpriced model not counted)"
        t.add_row("cost", cost + f"; spent by this run ${self.spent_usd:,.4f}")
        t.add_row("calls", f"{self.calls:,} calls, {self.cache_hits:,} cache hits, {self.retries:,} retries"
                  + (" — stopped at the budget" if self.stopped_by_budget else "") + f", {self.elapsed_s:.1f} s")
        if self.batches_pending:
            t.add_row("batches", f"{self.batches_pending:,} still running: rerun the same command to collect them")
        if self.bad_result_lines:
            t.add_row("unreadable batch lines", f"{self.bad_result_lines:,} (their records: status error; a rerun "
                      "resubmits them)")
        return t


@dataclass
class CostEstimate:
    records: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    model: str
    token_estimate: str = "~4 characters a token"  # how prompt tokens were counted (cost.token_counter)
    prices: str = "list prices"  # or "batch prices" (openai-batch teachers)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Unit:
    index: int
    example: Example
    source_ids: list[str]


def run_coroutine(coro: Any) -> Any:
    """``asyncio.run`` that also works where an event loop is already running (Jupyter, IPython): there the
    coroutine runs to completion on a fresh loop in a worker thread, and exceptions propagate unchanged."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ade-distill-label") as pool:
        return pool.submit(asyncio.run, coro).result()


def dedupe_examples(examples: Iterable[Example]) -> tuple[list[_Unit], int]:
    """One unit per distinct text (first id kept, all ids in ``source_ids``). Returns ``(units, inputs)``."""
    by_text: dict[str, _Unit] = {}
    units: list[_Unit] = []
    n = 0
    for ex in examples:
        n += 1
        u = by_text.get(ex.text)
        if u is None:
            u = _Unit(len(units), ex, [ex.id])
            by_text[ex.text] = u
            units.append(u)
        else:
            u.source_ids.append(ex.id)
    return units, n


def _teacher_label(spec: str) -> str:
    return re.sub(r"//[^/@\s]*@", "//", spec)  # drop any user:password@ from URLs


class _Job:
    def __init__(self, task: TaskSpec, teacher: str, backend: Any, units: list[_Unit], prompts: dict[int, Prompt],
                 *, cache: ResponseCache | None, prices: PriceTable, params: dict[str, Any], response_format: str,
                 retry: RetryPolicy, concurrency: int, max_cost: float | None, summary: LabelSummary) -> None:
        self.task, self.teacher, self.backend = task, teacher, backend
        self.units, self.prompts, self.cache, self.prices = units, prompts, cache, prices
        self.params, self.response_format, self.retry = params, response_format, retry
        self.concurrency, self.max_cost, self.summary = concurrency, max_cost, summary
        self.schema = output_schema(task)
        rel = task.primary
        self.keys = (task.entity(rel.head).key, task.entity(rel.tail).key)
        self.aliases = {rel.head: self.keys[0], rel.tail: self.keys[1]}
        self.stop = False
        self.fatal: BaseException | None = None

    def request(self, u: _Unit) -> TeacherRequest:
        p = self.prompts[u.index]
        return TeacherRequest(messages=p.messages, text=u.example.text, schema=self.schema, params=self.params,
                              response_format=self.response_format)  # type: ignore[arg-type]

    def key(self, req: TeacherRequest, p: Prompt) -> str:
        return cache_key(kind=self.backend.kind, model=self.backend.model, endpoint=self.backend.endpoint,
                         params=self.params, response_format=self.response_format,
                         template_version=p.template_version, messages=req.messages)

    async def call(self, req: TeacherRequest) -> TeacherResponse:
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        backoff = wait_exponential_jitter(multiplier=self.retry.initial, max=self.retry.max_wait,
                                          jitter=self.retry.initial)

        def _wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            ra = getattr(exc, "retry_after", None)
            if ra is not None:
                return min(float(ra), self.retry.max_wait)
            return backoff(state)

        def _before_sleep(state: Any) -> None:
            self.summary.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying after transient error (attempt %d): %s", state.attempt_number, exc)

        async for attempt in AsyncRetrying(retry=retry_if_exception_type(TransientError),
                                           stop=stop_after_attempt(self.retry.attempts), wait=_wait,
                                           before_sleep=_before_sleep, reraise=True):
            with attempt:
                self.summary.calls += 1
                return await self.backend.complete(req)
        raise AssertionError("unreachable")  # pragma: no cover

    def cost(self, resp: TeacherResponse) -> float | None:
        if not resp.usage:
            return None
        return self.prices.cost(resp.model or self.backend.model, int(resp.usage.get("prompt_tokens", 0)),
                                int(resp.usage.get("completion_tokens", 0)))

    async def process(self, u: _Unit) -> Example | None:
        p = self.prompts[u.index]
        req = self.request(u)
        key = self.key(req, p) if self.backend.cacheable and self.cache is not None else None
        resp = self.cache.get(key) if key is not None and self.cache is not None else None
        error: str | None = None
        if resp is not None:
            self.summary.cache_hits += 1
        else:
            if self.stop:
                return None
            if self.backend.billable and self.max_cost is not None and self.summary.spent_usd >= self.max_cost:
                self.summary.stopped_by_budget = True
                self.stop = True
                return None
            try:
                resp = await self.call(req)
            except TransientError as err:
                from ade_distill.teacher.backends.openai_backend import redact

                error = redact(str(err))
                log.warning("record %s: giving up after %d attempts: %s", u.example.id, self.retry.attempts, error)
            else:
                if key is not None and resp.found:
                    self.cache.put(key, resp, kind=self.backend.kind, model=self.backend.model)  # type: ignore[union-attr]
                if self.backend.billable:
                    self.summary.spent_usd += self.cost(resp) or 0.0
        return self.build(u, p, resp, error)

    def build(self, u: _Unit, p: Prompt, resp: TeacherResponse | None, error: str | None,
              failed_status: str = "error") -> Example:
        """The silver record of ``u`` from its answer ``resp``; without one, status ``failed_status`` (``error``
        or ``expired``) and ``meta.error``."""
        ex = u.example
        meta: dict[str, Any] = {k: ex.meta[k] for k in _KEEP_META if k in ex.meta}
        meta["source_ids"] = list(u.source_ids)
        meta["teacher"] = self.teacher
        meta["task"] = self.task.name
        meta["model"] = (resp.model if resp is not None and resp.model else None) or self.backend.model
        meta["template_version"] = p.template_version if self.backend.uses_prompt else None
        meta["prompt_hash"] = p.hash if self.backend.uses_prompt else None
        spans: tuple = ()
        relations: tuple = ()
        args = {s.value: 0 for s in AlignmentStatus}
        if resp is None:
            status, meta["error"] = failed_status, error
        elif not resp.found:
            status = "no_recording"
        else:
            meta["finish_reason"] = resp.finish_reason
            if resp.raw and resp.raw.get("id") and not self.backend.uses_prompt:
                meta["response_id"] = resp.raw["id"]
            body = resp.function_arguments if resp.function_arguments else resp.content
            pr = parse_output(body, self.keys, aliases=self.aliases)
            meta["parse"] = pr.method
            if pr.dropped_incomplete or pr.dropped_duplicates:
                meta["dropped_items"] = {"incomplete": pr.dropped_incomplete, "duplicate": pr.dropped_duplicates}
            if resp.finish_reason == "content_filter" or resp.refusal:
                status = "refused"
                meta["refused_partial_items"] = len(pr.items)
            else:
                if resp.finish_reason == "length":
                    status = "truncated"
                elif not pr.ok:
                    status = "parse_error"
                else:
                    status = "ok"
                if pr.items:
                    g = ground_items(ex.text, pr.items, self.task)
                    spans, relations, args = g.spans, g.relations, g.counts
            meta["usage"] = {k: int(resp.usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens")}
            meta["cost_usd"] = (round(c, 8) if (c := self.cost(resp)) is not None else None)
        meta["status"] = status
        meta["args"] = args
        meta["ungrounded_args"] = args[AlignmentStatus.UNALIGNED.value]
        return Example(id=ex.id, text=ex.text, spans=spans, relations=relations, meta=meta)

    async def run(self, start: int, appender: JsonlAppender, progress: Any, ptask: Any) -> int:
        """Label units[start:], writing the contiguous prefix as it completes. Returns the next unwritten index."""
        results: dict[int, Example] = {}
        nxt = start
        todo = iter(range(start, len(self.units)))
        sem = asyncio.Semaphore(self.concurrency)

        def flush() -> None:
            nonlocal nxt
            while nxt in results:
                ex = results.pop(nxt)
                appender.write(ex)
                self.summary.add(ex)
                self.summary.written_now += 1
                nxt += 1
            if progress is not None:
                progress.update(ptask, completed=nxt, description=self._progress_text())

        async def worker() -> None:
            for i in todo:
                if self.stop:
                    return
                async with sem:
                    try:
                        ex = await self.process(self.units[i])
                    except BackendError as err:
                        self.fatal = err
                        self.stop = True
                        return
                if ex is None:
                    return
                results[i] = ex
                flush()

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        flush()
        return nxt

    def _progress_text(self) -> str:
        s = self.summary
        return (f"labeling · {s.prompt_tokens + s.completion_tokens:,} tok · ${s.cost_usd:,.4f} "
                f"(spent ${s.spent_usd:,.4f}) · refused {s.refused} · truncated {s.truncated}")


_JOB_KEYS = ("teacher", "template_version", "task")


def _check_same_job(out: Path, existing: Sequence[Example], job: dict[str, str | None]) -> None:
    """Raise :class:`ConfigError` unless every record in ``out`` was labeled with the teacher, prompt template
    and task of this run (a record written before ``task`` was recorded is compared on the other two)."""
    for k, ex in enumerate(existing):
        found = {key: ex.meta.get(key, job[key] if key == "task" else None) for key in _JOB_KEYS}
        if found != job:
            raise ConfigError(
                f"{out}:{k + 1} (record {ex.id!r}) was labeled by teacher {found['teacher']!r} with prompt "
                f"{found['template_version']!r} for task {found['task']!r}; this run is teacher {job['teacher']!r}, "
                f"prompt {job['template_version']!r}, task {job['task']!r}. Resuming would mix them: choose another "
                "--out, or delete the file to relabel"
            )


def _read_existing(out: Path, units: list[_Unit], job: dict[str, str | None]) -> list[Example]:
    """Records already in ``out``, checked to be the prefix of ``units`` and to come from the same ``job``
    (teacher, template version, task); cut before the first ``error`` or ``expired``."""
    if not out.exists():
        return []
    JsonlAppender(out).close()  # drops a line cut short by a crash
    existing = list(read_examples(out))
    _check_same_job(out, existing, job)
    for k, ex in enumerate(existing):
        if k >= len(units) or units[k].example.id != ex.id or units[k].example.text != ex.text:
            raise ConfigError(
                f"{out} already holds record {ex.id!r} at line {k + 1}, which is not record {k + 1} of this "
                "input; it comes from another job: choose another --out or delete the file"
            )
    rewrite = False
    # An input extended since the last run may repeat a text already labeled: its id belongs to that record.
    for k, ex in enumerate(existing):
        if ex.meta.get("source_ids") != units[k].source_ids:
            existing[k] = ex.model_copy(update={"meta": {**ex.meta, "source_ids": list(units[k].source_ids)}})
            rewrite = True
    if rewrite:
        log.info("%s: source_ids of earlier records updated for this input", out)
    first_err = next((k for k, ex in enumerate(existing) if ex.meta.get("status") in RETRY_STATUSES), None)
    if first_err is not None:
        log.info("%s: relabeling from record %d (status %s in the previous run)", out, first_err + 1,
                 existing[first_err].meta.get("status"))
        existing = existing[:first_err]
        rewrite = True
    if rewrite:
        write_examples(out, existing)
    return existing


def _build_prompts(task: TaskSpec, units: Sequence[_Unit], shots: int, demo_pool: Sequence[Example] | None,
                   demo_strategy: str, seed: int) -> dict[int, Prompt]:
    demos: list[list[Demonstration]]
    if shots and demo_pool is not None:
        from ade_distill.teacher.demos import DemoSelector

        sel = DemoSelector(task, demo_pool, shots, strategy=demo_strategy, seed=seed)
        demos = sel.select_many([u.example.text for u in units])
    elif shots:
        if len(task.demonstrations) < shots:
            raise ConfigError(f"--shots {shots}: task {task.name!r} ships {len(task.demonstrations)} "
                              "demonstrations; pass a labeled demo pool")
        demos = [list(task.demonstrations[:shots]) for _ in units]
    else:
        demos = [[] for _ in units]
    return {u.index: render_prompt(task, u.example.text, d) for u, d in zip(units, demos, strict=True)}


def _params(temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
    return {"temperature": temperature, "max_tokens": max_tokens}


def label_examples(
    task: TaskSpec,
    teacher: str,
    examples: Iterable[Example],
    out: Path,
    *,
    cache_path: Path | None = None,
    concurrency: int = 8,
    max_cost: float | None = None,
    shots: int = 0,
    demo_pool: Sequence[Example] | None = None,
    demo_strategy: str = "random",
    local_only: bool = False,
    progress: bool = True,
    seed: int = 0,
    prices: Path | None = None,
    timeout: float = 60.0,
    retry: RetryPolicy | None = None,
    response_format: str = "auto",
    temperature: float | None = 0.0,
    max_tokens: int | None = 1024,
    api_version: str | None = None,
    batch: BatchConfig | None = None,
) -> LabelSummary:
    """Label ``examples`` with ``teacher`` and append silver records to ``out`` (resuming what is there).

    Args:
        task: the task spec (prompt, output keys, labels).
        teacher: ``openai:MODEL``, ``openai-compatible:URL:MODEL``, ``azure:ENDPOINT:DEPLOYMENT``, ``hf:PATH``,
            ``replay:FILE``, or a batch teacher ``openai-batch:MODEL`` / ``openai-batch:URL:MODEL`` /
            ``azure-batch:ENDPOINT:DEPLOYMENT`` (priced at batch prices; see :mod:`ade_distill.teacher.batch`).
        examples: input records; their ``text`` is labeled as is (gold spans, if any, are ignored); exact
            duplicate texts are merged.
        out: silver JSONL (appended; records already there are kept and skipped).
        cache_path: SQLite response cache (default ``out`` folder / ``teacher_cache.sqlite``).
        concurrency: simultaneous requests (≥ 1).
        max_cost: USD budget for new billable calls of this run.
        shots, demo_pool, demo_strategy, seed: k-shot demonstrations (``random`` or ``nearest``) from the
            caller's labeled pool (never test data), else the task's own demonstrations.
        local_only: refuse endpoints that are not loopback/private.
        prices: user price YAML overriding the shipped table.
        retry: retry policy for transient failures.
        batch: polling and splitting of a batch teacher's job (:class:`~ade_distill.teacher.batch.BatchConfig`);
            ``concurrency`` does not apply to it, ``max_cost`` caps the *estimated* cost of what it submits
            (batches submitted earlier and not yet written included).

    Returns:
        The :class:`LabelSummary` of the whole output file.

    Raises:
        ConfigError: bad options, a non-local endpoint under ``local_only``, ``out`` from another input or another
            teacher, prompt template or task, ``out`` locked by another running job, a budget for a model without
            a price.
        BackendError: the endpoint failed permanently (auth, unknown model); finished records are written first.
    """
    t0 = time.monotonic()
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    if max_cost is not None and max_cost < 0:
        raise ConfigError(f"--max-cost must be >= 0, got {max_cost}")
    out = Path(out)
    price_table = PriceTable.load(prices)
    backend = make_backend(teacher, local_only=local_only, timeout=timeout, response_format=response_format,
                           api_version=api_version)
    is_batch = getattr(backend, "batch", False)
    if is_batch:
        price_table = price_table.for_batch()
    if max_cost is not None and backend.billable and price_table.lookup(backend.model) is None:
        raise ConfigError(f"--max-cost needs a price for model {backend.model!r}; add it to a YAML given with "
                          "--prices (USD per 1M input/output tokens)")
    units, n_inputs = dedupe_examples(examples)
    summary = LabelSummary(teacher=_teacher_label(teacher), model=backend.model, inputs=n_inputs,
                           distinct_texts=len(units), prices="batch prices" if is_batch else "list prices")
    job_id = {"teacher": summary.teacher, "task": task.name,
              "template_version": task.prompt_template if backend.uses_prompt else None}
    with exclusive_output(out):
        existing = _read_existing(out, units, job_id)
        for ex in existing:
            summary.add(ex)
        summary.resumed = start = len(existing)
        prompts = _build_prompts(task, units[start:], shots, demo_pool, demo_strategy, seed)
        cache = ResponseCache(cache_path or out.parent / "teacher_cache.sqlite") if backend.cacheable else None
        job = _Job(task, summary.teacher, backend, units, prompts, cache=cache, prices=price_table,
                   params=_params(temperature, max_tokens), response_format=response_format,
                   retry=retry or RetryPolicy(), concurrency=concurrency, max_cost=max_cost, summary=summary)
        if is_batch:
            from ade_distill.teacher.batch import BatchConfig, run_batch

            done = run_batch(job, out, start, batch or BatchConfig(), progress=progress)
        else:
            done = _run_job(job, out, start, progress)
    summary.remaining = len(units) - done
    summary.elapsed_s = time.monotonic() - t0
    if job.fatal is not None:
        raise job.fatal
    return summary


def _run_job(job: _Job, out: Path, start: int, progress: bool) -> int:
    """Run ``job`` from unit ``start``, appending to ``out``; closes the backend and the cache. Returns the next
    unwritten index."""

    async def _main() -> int:
        prog = None
        ptask = None
        try:
            with JsonlAppender(out, sync_every_s=0.5) as appender:
                if progress:
                    from rich.progress import (
                        BarColumn,
                        MofNCompleteColumn,
                        Progress,
                        TextColumn,
                        TimeRemainingColumn,
                    )

                    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), transient=False)
                    prog.start()
                    ptask = prog.add_task(job._progress_text(), total=len(job.units), completed=start)
                return await job.run(start, appender, prog, ptask)
        finally:
            if prog is not None:
                prog.stop()
            await job.backend.aclose()

    try:
        return run_coroutine(_main())
    finally:
        if job.cache is not None:
            job.cache.close()


def estimate_job(
    task: TaskSpec,
    teacher: str,
    examples: Iterable[Example],
    out: Path,
    *,
    cache_path: Path | None = None,
    shots: int = 0,
    demo_pool: Sequence[Example] | None = None,
    demo_strategy: str = "random",
    seed: int = 0,
    prices: Path | None = None,
    local_only: bool = False,
    response_format: str = "auto",
    temperature: float | None = 0.0,
    max_tokens: int | None = 1024,
    output_tokens_per_record: int = OUTPUT_TOKENS_PER_RECORD,
) -> CostEstimate:
    """Dry run: estimate tokens (prompts counted by :func:`~ade_distill.teacher.cost.token_counter`: tiktoken
    where available, else ~4 characters a token; ``output_tokens_per_record`` per answer) and cost of the records
    not yet in ``out`` and not in the cache, at batch prices for a batch teacher. Makes no call, so it needs no
    API key."""
    backend = make_backend(teacher, local_only=local_only, response_format=response_format, require_key=False)
    counter = token_counter(backend.model)
    price_table = PriceTable.load(prices)
    is_batch = getattr(backend, "batch", False)
    if is_batch:
        price_table = price_table.for_batch()
    units, _ = dedupe_examples(examples)
    existing = 0
    if out.exists():
        JsonlAppender(out).close()
        existing = sum(1 for _ in read_examples(out))
    todo = units[existing:]
    prompts = _build_prompts(task, todo, shots, demo_pool, demo_strategy, seed)
    cache = ResponseCache(cache_path or out.parent / "teacher_cache.sqlite") if backend.cacheable else None
    params = _params(temperature, max_tokens)
    cached = ptok = ctok = 0
    try:
        for u in todo:
            p = prompts[u.index]
            if cache is not None:
                key = cache_key(kind=backend.kind, model=backend.model, endpoint=backend.endpoint, params=params,
                                response_format=response_format, template_version=p.template_version,
                                messages=p.messages)
                if key in cache:
                    cached += 1
                    continue
            ptok += sum(counter.count(m["content"]) + 4 for m in p.messages)
            ctok += output_tokens_per_record
    finally:
        if cache is not None:
            cache.close()
    price = price_table.lookup(backend.model)
    cost = 0.0 if not backend.billable else (price.cost(ptok, ctok) if price else None)
    return CostEstimate(records=len(todo), cached=cached, prompt_tokens=ptok, completion_tokens=ctok,
                        cost_usd=cost, model=backend.model, token_estimate=counter.method,
                        prices="batch prices" if is_batch else "list prices")
