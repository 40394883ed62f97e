"""The labeling job for a batch teacher (``openai-batch:MODEL``): upload → submit → poll → download → records.

:func:`~ade_distill.teacher.label.label_examples` reads the input, the records already in ``OUT`` and holds
``OUT.lock``, exactly as for a synchronous teacher, then hands the rest to :func:`run_batch`. The records are
those of the synchronous path — the same request bodies, and every answer goes through the same parse → ground
code (:meth:`~ade_distill.teacher.label._Job.build`) — priced at batch prices (``cost.BATCH_DISCOUNT``).

Guarantees:

* **Never paid twice.** Before a batch is created its input file id is written to ``OUT.batch.json`` (the
  state), and its batch id right after; a rerun of a killed job polls those batches instead of submitting
  again (a batch whose create call was cut off is found again by its input file). Answers downloaded are put in
  the response cache before any record is written, so a record cut from ``OUT`` is rewritten from the cache.
* **Every record accounted for.** A request line in the error file is written with status ``error``, one the
  batch's completion window ended before (error code ``batch_expired``, or no line at all in an expired batch)
  with status ``expired``, and both are resubmitted by the next run (``RETRY_STATUSES``); a batch that failed
  as a whole (e.g. an invalid input file) makes every one of its records ``error`` with the batch's errors.
* **In order, resumable.** Records are appended in input order up to the first one whose batch is still
  running; with ``max_wait_s`` the job returns then (``summary.batches_pending``), and a rerun collects.
* **Split** into batches of at most ``max_requests`` lines and ``max_bytes`` (the API allows 50,000 and 200 MB).
* **Budget** (``max_cost``): the *estimated* cost (prompt tokens counted, ``OUTPUT_TOKENS_PER_RECORD`` output
  tokens a record) of the batches in the state file — submitted by this run or an earlier one, and not yet
  written to ``OUT`` — plus what this run submits stays within ``max_cost``; a rerun of a job whose batches still
  run therefore submits nothing more until they are collected (rerunning with ``max_wait_s=0`` never spends the
  budget twice).
* **A broken result line** (not JSON, or without ``custom_id``) is logged and counted, not fatal: the record it
  would have answered is ``error`` (no answer in the batch's output), and a rerun resubmits it.

The state file holds, per batch: input file id, batch id, the record ids submitted (``custom_id``), a hash of
each one's cache key and a digest of them all (a rerun with other prompt options is refused rather than mapping
answers to other prompts, even when some of the batch's records were written before a kill), and the batch's
estimated cost. It is deleted once every record of its batches is in ``OUT``; each record keeps
``meta.batch_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ade_distill.errors import BackendError, ConfigError, DataError
from ade_distill.records import Example, JsonlAppender
from ade_distill.teacher.backends.base import TeacherResponse, TransientError
from ade_distill.teacher.backends.openai_batch import TERMINAL, BadResultLine, BatchInfo, OpenAIBatchBackend
from ade_distill.teacher.cost import token_counter
from ade_distill.teacher.label import OUTPUT_TOKENS_PER_RECORD, _Job, _Unit, run_coroutine

log = logging.getLogger(__name__)

__all__ = ["BatchConfig", "BatchPart", "BatchState", "state_path", "run_batch"]

_T = TypeVar("_T")


class BatchConfig(BaseModel):
    """How a batch job polls and splits its requests.

    Attributes:
        poll_interval_s: seconds between two looks at a running batch.
        max_wait_s: stop polling after this long and return (the batches keep running; rerun to collect);
            ``None`` waits until every batch has ended, ``0`` submits and returns at once.
        max_requests: request lines per batch (the API's limit is 50,000).
        max_bytes: bytes per batch input file (the API's limit is 200 MB).
        completion_window: the only window the API offers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    poll_interval_s: float = Field(60.0, gt=0)
    max_wait_s: float | None = Field(None, ge=0)
    max_requests: int = Field(50_000, ge=1, le=50_000)
    max_bytes: int = Field(190_000_000, ge=1_000, le=200_000_000)
    completion_window: Literal["24h"] = "24h"


class BatchPart(BaseModel):
    """One submitted batch: its input file, its id once created, the record ids it answers, a hash of each one's
    cache key (``key_hashes``, parallel to ``ids``; ``None`` in a state written before they were kept) and a
    digest of them all, and its estimated cost in USD (``None``: unpriced model, or an older state file)."""

    input_file_id: str
    batch_id: str | None = None
    status: str | None = None
    ids: list[str]
    keys_digest: str
    key_hashes: list[str] | None = None
    est_cost_usd: float | None = None
    uploaded_at: float


class BatchState(BaseModel):
    """``OUT.batch.json``: the batches of one output file, and the job they belong to."""

    version: Literal[1] = 1
    teacher: str
    model: str
    task: str
    template_version: str | None
    parts: list[BatchPart] = []


def state_path(out: Path) -> Path:
    """``OUT.batch.json`` beside ``OUT``."""
    return out.with_name(out.name + ".batch.json")


def _save_state(path: Path, state: BatchState) -> None:
    """Write atomically (temporary file, fsync, rename): a kill leaves the old state or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(state.model_dump_json(indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _digest(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _key_hash(key: str) -> str:
    """A short hash of one cache key (64 bits: enough to tell two prompts apart, small in the state file)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class _Failure:
    status: str  # error | expired
    message: str
    batch_id: str | None


def run_batch(job: _Job, out: Path, start: int, config: BatchConfig, *, progress: bool = False) -> int:
    """Label ``job.units[start:]`` with the batch teacher ``job.backend``, appending to ``out`` (whose lock the
    caller holds). Returns the index of the first unit not written. Closes the backend and the cache.

    Raises:
        ConfigError: ``OUT.batch.json`` belongs to another job, or names records of another input.
        DataError: two records to submit share an id (``custom_id`` must be unique).
    """
    try:
        runner = _BatchJob(job, out, start, config, progress)
    except BaseException:
        if job.cache is not None:
            job.cache.close()
        raise
    return run_coroutine(runner.run())


class _BatchJob:
    def __init__(self, job: _Job, out: Path, start: int, config: BatchConfig, progress: bool) -> None:
        if job.cache is None:
            raise ConfigError("a batch teacher needs the response cache")
        self.job, self.out, self.start, self.config, self.progress = job, out, start, config, progress
        self.backend: OpenAIBatchBackend = job.backend
        self.cache = job.cache
        self.todo = job.units[start:]
        self.by_id = {u.example.id: u for u in self.todo}
        if len(self.by_id) != len(self.todo):
            dup = Counter(u.example.id for u in self.todo).most_common(1)[0][0]
            raise DataError("two records to label share this id; the Batch API maps answers back by id, so ids "
                            "must be unique", record_id=dup)
        self.keys = {u.index: job.key(job.request(u), job.prompts[u.index]) for u in self.todo}
        self.path = state_path(out)
        self.failures: dict[str, _Failure] = {}
        self.infos: dict[str, BatchInfo] = {}
        self.bad_lines: Counter[str] = Counter()  # batch id -> result lines that could not be read
        self._counter: Any = None  # the prompt token counter, made on first use

    # -- the job ------------------------------------------------------------------------------------------------
    async def run(self) -> int:
        try:
            state = self._load_state()
            try:
                await self._submit(state, self._to_submit(state))
                await self._wait(state)
                for part in state.parts:
                    info = self.infos.get(part.batch_id or "")
                    if info is not None and info.terminal:
                        await self._collect(part, info)
            except BackendError as err:  # write what is resolved, then stop
                self.job.fatal = err
            nxt = self._write()
            self._finish_state(state, nxt)
            if self.bad_lines:
                log.warning("%d batch result line(s) could not be read (%s); their records are errors, resubmitted "
                            "by a rerun", sum(self.bad_lines.values()),
                            ", ".join(f"{b}: {n}" for b, n in self.bad_lines.items()))
            return nxt
        finally:
            await self.backend.aclose()
            self.cache.close()

    def _job_fields(self) -> dict[str, Any]:
        j = self.job
        return {"teacher": j.teacher, "model": self.backend.model, "task": j.task.name,
                "template_version": j.task.prompt_template}

    def _load_state(self) -> BatchState:
        """The state of an earlier run (checked to be this job's), without batches whose records are all written."""
        if not self.path.exists():
            return BatchState(**self._job_fields())
        try:
            state = BatchState.model_validate_json(self.path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ConfigError(f"{self.path}: not a batch state file ({str(err)[:200]}); it names batches that may "
                              "still be running — fix or delete it") from None
        found = {k: getattr(state, k) for k in self._job_fields()}
        if found != self._job_fields():
            raise ConfigError(f"{self.path} holds batches of another job ({found}); this run is "
                              f"{self._job_fields()}. Rerun with the options that submitted them, or delete the "
                              "file (its batches keep running and are billed)")
        written = {u.example.id for u in self.job.units[: self.start]}
        kept = []
        for part in state.parts:
            if all(i in written for i in part.ids):
                continue
            self._check_part(part, written)
            kept.append(part)
        state.parts = kept
        return state

    def _check_part(self, part: BatchPart, written: set[str]) -> None:
        """Refuse a batch naming records not in this input, or submitted with other prompts or options than this
        run's for any record still to write (its answers would be cached under this run's keys)."""
        name = part.batch_id or part.input_file_id
        unknown = [i for i in part.ids if i not in self.by_id and i not in written]
        if unknown:
            raise ConfigError(f"{self.path}: batch {name} answers record {unknown[0]!r}, which is not in this "
                              "input; rerun with the input that submitted it or delete the file")
        other = ConfigError(f"{self.path}: batch {name} was submitted with other prompts or generation options "
                            "than this run's; rerun with the same options (--shots, --seed, --max-tokens, "
                            "--response-format, --demo-pool) or delete the file")
        todo = [(k, self.keys[self.by_id[i].index]) for k, i in enumerate(part.ids) if i in self.by_id]
        if part.key_hashes is not None:
            if len(part.key_hashes) != len(part.ids):
                raise ConfigError(f"{self.path}: batch {name}: {len(part.ids)} ids but {len(part.key_hashes)} key "
                                  "hashes; the file is damaged — fix or delete it")
            if any(part.key_hashes[k] != _key_hash(key) for k, key in todo):
                raise other
        elif len(todo) == len(part.ids):  # a state without key hashes: only the digest of them all
            if _digest([key for _, key in todo]) != part.keys_digest:
                raise other
        else:
            raise ConfigError(f"{self.path}: batch {name} has records written already and its state file predates "
                              "per-record key hashes, so its answers cannot be checked against this run's prompts; "
                              "delete the file to go on (its batches keep running and are billed)")

    def _to_submit(self, state: BatchState) -> list[_Unit]:
        """Units neither answered (cached) nor in a batch of ``state``, within the budget."""
        submitted = {i for p in state.parts for i in p.ids}
        todo = [u for u in self.todo if u.example.id not in submitted and self.keys[u.index] not in self.cache]
        return self._within_budget(todo, state)

    def _estimate(self, u: _Unit) -> float | None:
        """The estimated cost of one request: its prompt tokens counted, ``OUTPUT_TOKENS_PER_RECORD`` output
        tokens; ``None`` for an unpriced model."""
        price = self.job.prices.lookup(self.backend.model)
        if price is None:
            return None
        if self._counter is None:
            self._counter = token_counter(self.backend.model)
        ptok = sum(self._counter.count(m["content"]) + 4 for m in self.job.prompts[u.index].messages)
        return price.cost(ptok, OUTPUT_TOKENS_PER_RECORD)

    def _committed(self, state: BatchState) -> float:
        """The estimated cost of the batches of ``state`` (submitted, not yet all written): spent, or about to
        be, whether or not this run collects them. A part of an older state file without its estimate is
        estimated from its records still to write."""
        total = 0.0
        for p in state.parts:
            if p.est_cost_usd is not None:
                total += p.est_cost_usd
            else:
                total += sum(self._estimate(self.by_id[i]) or 0.0 for i in p.ids if i in self.by_id)
        return total

    def _within_budget(self, units: list[_Unit], state: BatchState) -> list[_Unit]:
        """The longest prefix of ``units`` whose *estimated* cost fits what is left of ``max_cost`` once the
        batches of ``state`` (earlier runs' included, until their records are written) and this run's spending
        are counted."""
        j = self.job
        if j.max_cost is None or not units:
            return units
        committed = self._committed(state)
        left, total = j.max_cost - j.summary.spent_usd - committed, 0.0
        for k, u in enumerate(units):
            total += self._estimate(u) or 0.0
            if total > left:
                j.summary.stopped_by_budget = True
                log.warning("budget: submitting %d of %d records (estimated cost within $%.4f of $%g; $%.4f "
                            "estimated for batches submitted and not yet written)", k, len(units), max(0.0, left),
                            j.max_cost, committed)
                return units[:k]
        return units

    # -- submit ---------------------------------------------------------------------------------------------------
    def _chunks(self, units: list[_Unit]) -> Iterator[tuple[list[_Unit], bytes]]:
        """Request files of at most ``max_requests`` lines and ``max_bytes`` bytes."""
        batch: list[_Unit] = []
        lines: list[bytes] = []
        size = 0
        for u in units:
            line = (json.dumps(self.backend.request_line(u.example.id, self.job.request(u)), ensure_ascii=False)
                    + "\n").encode("utf-8")
            if batch and (len(batch) >= self.config.max_requests or size + len(line) > self.config.max_bytes):
                yield batch, b"".join(lines)
                batch, lines, size = [], [], 0
            batch.append(u)
            lines.append(line)
            size += len(line)
        if batch:
            yield batch, b"".join(lines)

    async def _submit(self, state: BatchState, units: list[_Unit]) -> None:
        """Create the batches of ``state`` lacking an id (found again if an earlier create did go through), then
        upload and create new ones for ``units``; the state is saved before and after each create."""
        for part in state.parts:
            if part.batch_id is None:
                await self._create(state, part)
        for k, (chunk, data) in enumerate(self._chunks(units)):
            name = f"{self.out.name}.{len(state.parts)}.jsonl"
            file_id = await self._retrying("upload", lambda d=data, n=name: self.backend.upload(d, n))
            keys = [self.keys[u.index] for u in chunk]
            costs = [self._estimate(u) for u in chunk]
            part = BatchPart(input_file_id=file_id, ids=[u.example.id for u in chunk], uploaded_at=time.time(),
                             keys_digest=_digest(keys), key_hashes=[_key_hash(k) for k in keys],
                             est_cost_usd=None if None in costs else sum(c for c in costs if c is not None))
            state.parts.append(part)
            _save_state(self.path, state)
            await self._create(state, part)
            self.job.summary.calls += len(chunk)
            log.info("submitted batch %s (%d requests, part %d)", part.batch_id, len(chunk), k)

    async def _create(self, state: BatchState, part: BatchPart) -> None:
        meta = {"ade_distill_out": self.out.name[:500]}
        for attempt in range(self.job.retry.attempts):
            found = await self._retrying("list batches", lambda: self.backend.find(part.input_file_id))
            if found is None:
                try:
                    found = await self.backend.create(part.input_file_id, meta)
                except TransientError as err:  # the batch may exist all the same: look again before retrying
                    log.info("create batch (attempt %d): %s", attempt + 1, err)
                    await _sleep(min(self.job.retry.max_wait, self.job.retry.initial * 2 ** attempt))
                    continue
            part.batch_id, part.status = found.id, found.status
            self.infos[found.id] = found
            _save_state(self.path, state)
            return
        raise BackendError(f"{self.backend.kind}: could not create a batch of {part.input_file_id} after "
                           f"{self.job.retry.attempts} attempts; rerun to try again")

    # -- poll, download ---------------------------------------------------------------------------------------------
    async def _wait(self, state: BatchState) -> None:
        """Poll every batch of ``state`` until all have ended or ``max_wait_s`` has passed."""
        deadline = None if self.config.max_wait_s is None else time.monotonic() + self.config.max_wait_s
        with self._status() as show:
            while True:
                for part in state.parts:  # an ended batch once per run (to download it), a running one each time
                    if part.batch_id is not None and (part.status not in TERMINAL or part.batch_id not in self.infos):
                        info = await self._retrying("retrieve batch",
                                                    lambda b=part.batch_id: self.backend.retrieve(b))
                        self.infos[info.id], part.status = info, info.status
                running = [p for p in state.parts if p.status not in TERMINAL]
                if state.parts:
                    _save_state(self.path, state)
                if not running or (deadline is not None and time.monotonic() >= deadline):
                    self.job.summary.batches_pending = len(running)
                    return
                show(self._status_text(state))
                wait = self.config.poll_interval_s
                await _sleep(wait if deadline is None else max(0.0, min(wait, deadline - time.monotonic())))

    def _status_text(self, state: BatchState) -> str:
        parts = []
        for p in state.parts:
            info = self.infos.get(p.batch_id or "")
            c = (info.counts or {}) if info else {}
            parts.append(f"{p.batch_id} {p.status} {c.get('completed', 0):,}/{c.get('total', len(p.ids)):,}")
        return "batches: " + "; ".join(parts)

    @contextmanager
    def _status(self) -> Iterator[Callable[[str], None]]:
        if not self.progress:
            yield lambda text: log.info("%s", text)
            return
        from rich.console import Console

        with Console(stderr=True).status("batches submitted") as st:
            yield lambda text: st.update(text)

    async def _collect(self, part: BatchPart, info: BatchInfo) -> None:
        """Download an ended batch: answers into the cache, failures (error / expired) into ``self.failures``."""
        seen: set[str] = set()
        for file_id in (info.output_file_id, info.error_file_id):
            if not file_id:
                continue
            lines = await self._retrying("download", lambda f=file_id: self.backend.content(f))
            for n, line in enumerate(lines, start=1):
                try:
                    res = self.backend.result(line)
                except BadResultLine as err:  # its record has no answer: an error, resubmitted by a rerun
                    self.bad_lines[info.id] += 1
                    self.job.summary.bad_result_lines += 1
                    log.warning("batch %s: could not read a result line (line %d of %s): %s", info.id, n, file_id,
                                err)
                    continue
                u = self.by_id.get(res.custom_id)
                if u is None or res.custom_id not in part.ids or res.custom_id in seen:
                    log.warning("batch %s: ignoring a result for %r (not submitted in it, or repeated)", info.id,
                                res.custom_id)
                    continue
                seen.add(res.custom_id)
                if res.response is not None:
                    self._store(u, res.response, info.id)
                else:
                    self.failures[res.custom_id] = _Failure(res.failure or "error", res.message or "", info.id)
        for i in part.ids:
            if i not in seen and i in self.by_id:
                self.failures[i] = self._missing(info, self.bad_lines[info.id])

    @staticmethod
    def _missing(info: BatchInfo, bad_lines: int = 0) -> _Failure:
        """Why a request of an ended batch has no line in its output or error file (``bad_lines``: lines of the
        batch's files that could not be read, one of which may have been its answer)."""
        bad = (f" ({bad_lines} result line{'s' if bad_lines != 1 else ''} of this batch could not be read)"
               if bad_lines else "")
        if info.status == "expired":
            return _Failure("expired", "batch_expired: the batch's completion window ended before this request ran"
                            + bad, info.id)
        why = info.errors or ("no answer for this request in the batch's output" if info.status == "completed"
                              else "no answer")
        return _Failure("error", f"batch {info.status}: {why}{bad}", info.id)

    def _store(self, u: _Unit, resp: TeacherResponse, batch_id: str) -> None:
        key = self.keys[u.index]
        if key in self.cache:  # downloaded by an earlier run already: paid then
            return
        resp = replace(resp, raw={**(resp.raw or {}), "_batch_id": batch_id})
        self.cache.put(key, resp, kind=self.backend.kind, model=self.backend.model)
        self.job.summary.spent_usd += self.job.cost(resp) or 0.0

    # -- write ------------------------------------------------------------------------------------------------------
    def _write(self) -> int:
        """Append the records of ``todo`` in order, up to the first one not answered and not failed."""
        j = self.job
        nxt = self.start
        with JsonlAppender(self.out, sync_every_s=0.5) as appender:
            for u in self.todo:
                ex = self._record(u)
                if ex is None:
                    break
                appender.write(ex)
                j.summary.add(ex)
                j.summary.written_now += 1
                nxt += 1
        return nxt

    def _record(self, u: _Unit) -> Example | None:
        j, p = self.job, self.job.prompts[u.index]
        resp = self.cache.get(self.keys[u.index])
        if resp is not None:
            ex, batch_id = j.build(u, p, resp, None), (resp.raw or {}).get("_batch_id")
        elif u.example.id in self.failures:
            f = self.failures[u.example.id]
            ex, batch_id = j.build(u, p, None, f.message, failed_status=f.status), f.batch_id
        else:
            return None
        if batch_id:
            ex = ex.model_copy(update={"meta": {**ex.meta, "batch_id": batch_id}})
        return ex

    def _finish_state(self, state: BatchState, nxt: int) -> None:
        """Drop batches whose records are all written; delete the state file when none is left."""
        written = {u.example.id for u in self.job.units[:nxt]}
        state.parts = [p for p in state.parts if not all(i in written for i in p.ids)]
        if state.parts:
            _save_state(self.path, state)
        elif self.path.exists():
            self.path.unlink()

    # -- retries ------------------------------------------------------------------------------------------------------
    async def _retrying(self, what: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """``fn()`` retried on :class:`TransientError` by the job's retry policy (``Retry-After`` honoured)."""
        r = self.job.retry
        for attempt in range(1, r.attempts + 1):
            try:
                return await fn()
            except TransientError as err:
                if attempt == r.attempts:
                    raise BackendError(f"{self.backend.kind}: {what} failed {r.attempts} times: {err}; rerun "
                                       "to resume (submitted batches are kept in the state file)") from None
                self.job.summary.retries += 1
                wait = err.retry_after if err.retry_after is not None else r.initial * 2 ** (attempt - 1)
                log.info("%s (attempt %d): %s; retrying in %.1f s", what, attempt, err, wait)
                await _sleep(min(wait, r.max_wait))
        raise AssertionError("unreachable")  # pragma: no cover


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
