"""``openai-batch:MODEL`` (``openai-batch:URL:MODEL``, ``azure-batch:ENDPOINT:DEPLOYMENT``): the Files and Batches
API of the official async ``openai`` client (3.x) — upload a JSONL of requests, create a batch, retrieve it,
download its output and error files.

This backend is not called once per record (:meth:`complete` refuses): the labeling job hands it to
:mod:`ade_distill.teacher.batch`, which drives upload → submit → poll → download. Each request line's body is
what the synchronous :class:`~ade_distill.teacher.backends.openai_backend.OpenAIBackend` would send
(:meth:`~ade_distill.teacher.backends.openai_backend.OpenAIBackend.request_body`), and each answer is mapped back
by the same code (:meth:`~ade_distill.teacher.backends.openai_backend.OpenAIBackend.response_from_body`), so a
batch record and a synchronous one differ only in price and latency.

Request lines, output lines and error lines follow OpenAI's batch file format::

    {"custom_id": ID, "method": "POST", "url": "/v1/chat/completions", "body": {...}}
    {"id": ..., "custom_id": ID, "response": {"status_code": 200, "request_id": ..., "body": {...}}, "error": null}
    {"id": ..., "custom_id": ID, "response": null, "error": {"code": "batch_expired", "message": ...}}

No fallback between output formats is possible inside a batch: ``--response-format auto`` asks for
``json_schema``, and a server that rejects it fails every line (use ``json_object`` there).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ade_distill.errors import BackendError, ConfigError
from ade_distill.teacher.backends.base import TeacherRequest, TeacherResponse, TransientError
from ade_distill.teacher.backends.openai_backend import OpenAIBackend, parse_retry_after, redact

log = logging.getLogger(__name__)

__all__ = ["OpenAIBatchBackend", "BatchInfo", "LineResult", "TERMINAL", "BadResultLine", "parse_result_line"]

TERMINAL = ("completed", "expired", "failed", "cancelled")
_T = TypeVar("_T")


@dataclass(frozen=True)
class BatchInfo:
    """What the job needs of a Batch object."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] | None = None
    errors: str | None = None
    created_at: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_api(cls, b: Any) -> BatchInfo:
        errs = getattr(getattr(b, "errors", None), "data", None) or []
        text = "; ".join(f"{getattr(e, 'code', None) or 'error'}: {getattr(e, 'message', '')}" for e in errs)
        rc = getattr(b, "request_counts", None)
        counts = ({k: int(getattr(rc, k, 0) or 0) for k in ("total", "completed", "failed")} if rc is not None
                  else None)
        return cls(id=b.id, status=b.status, input_file_id=b.input_file_id, output_file_id=b.output_file_id,
                   error_file_id=b.error_file_id, counts=counts, errors=text or None,
                   created_at=int(getattr(b, "created_at", 0) or 0))


class BadResultLine(ValueError):
    """A line of an output or error file that is not a batch result line (not JSON, or no ``custom_id``): it
    cannot be mapped to a request, so the job counts it and goes on."""


@dataclass(frozen=True)
class LineResult:
    """One line of an output or error file: an answer, or why there is none (``failure`` is ``error`` or
    ``expired``)."""

    custom_id: str
    response: TeacherResponse | None = None
    failure: str | None = None
    message: str | None = None


def parse_result_line(line: Any, to_response: Callable[[dict[str, Any]], TeacherResponse]) -> LineResult:
    """Map one output/error line (as :meth:`OpenAIBatchBackend.content` gives it: a parsed JSON value, or the
    text of a line that is not JSON) to a :class:`LineResult` (``to_response`` turns a 200 body into a response).

    Raises:
        BadResultLine: the line is not JSON, or has no ``custom_id`` (not a batch result line).
    """
    if isinstance(line, str):
        raise BadResultLine(f"not JSON: {line[:200]!r}")
    cid = line.get("custom_id") if isinstance(line, dict) else None
    if not isinstance(cid, str):
        raise BadResultLine(f"no custom_id: {str(line)[:200]!r}")
    err = line.get("error")
    if err:
        code = (err.get("code") if isinstance(err, dict) else None) or "error"
        msg = err.get("message", "") if isinstance(err, dict) else str(err)
        return LineResult(cid, failure="expired" if code == "batch_expired" else "error", message=f"{code}: {msg}")
    resp = line.get("response") or {}
    status, body = resp.get("status_code"), resp.get("body")
    if status == 200 and isinstance(body, dict):
        try:
            return LineResult(cid, response=to_response(body))
        except TransientError as e:
            return LineResult(cid, failure="error", message=str(e))
    detail = body.get("error", {}).get("message", "") if isinstance(body, dict) and isinstance(body.get("error"), dict) else ""
    return LineResult(cid, failure="error", message=redact(f"HTTP {status}: {detail}".strip()))


class OpenAIBatchBackend:
    """The Files and Batches API around an :class:`OpenAIBackend` (its client, key, request bodies, answers)."""

    billable = True
    cacheable = True
    uses_prompt = True
    batch = True

    def __init__(self, kind: str, inner: OpenAIBackend) -> None:
        if kind not in ("openai-batch", "azure-batch"):
            raise ConfigError(f"unknown batch backend kind {kind!r}")
        self.kind = kind
        self.inner = inner
        self.model = inner.model
        self.host = inner.host
        self.endpoint = inner.endpoint
        # Azure's batch lines and batches name the deployment's path without the /v1 prefix
        self.url = "/chat/completions" if kind == "azure-batch" else "/v1/chat/completions"

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        raise ConfigError(f"{self.kind} is a batch teacher: label with ade_distill.teacher.label.label_examples "
                          "(it submits one batch), not request by request")

    def request_line(self, custom_id: str, request: TeacherRequest) -> dict[str, Any]:
        """One line of the batch input file."""
        return {"custom_id": custom_id, "method": "POST", "url": self.url, "body": self.inner.request_body(request)}

    def result(self, line: Any) -> LineResult:
        return parse_result_line(line, self.inner.response_from_body)

    async def _call(self, what: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run one API call, mapping ``openai`` errors to :class:`TransientError` (429, 5xx, 408/409, timeouts,
        dropped connections) or :class:`BackendError` (auth, permission, not found, other 4xx)."""
        import openai

        try:
            return await fn()
        except openai.APITimeoutError:
            raise TransientError(f"{what}: timed out after {self.inner.timeout:g} s") from None
        except openai.APIConnectionError as err:
            raise TransientError(f"{what}: connection error: {redact(str(err.__cause__ or err))}") from None
        except openai.APIStatusError as err:
            code, msg = err.status_code, redact(str(err))
            if (code == 429 and getattr(err, "code", None) != "insufficient_quota") or code >= 500 or code in (408, 409):
                raise TransientError(f"{what}: HTTP {code}: {msg[:200]}",
                                     retry_after=parse_retry_after(err.response.headers)) from None
            raise BackendError(f"{self.kind} teacher {self.model!r} at {self.host}: {what}: HTTP {code}: {msg}") from None
        except openai.APIResponseValidationError as err:
            raise TransientError(f"{what}: malformed response body: {redact(str(err))[:200]}") from None

    async def upload(self, data: bytes, filename: str) -> str:
        """Upload a batch input file (``purpose="batch"``); returns its file id."""
        client = self.inner.client()
        f = await self._call("upload", lambda: client.files.create(file=(filename, data, "application/jsonl"),
                                                                   purpose="batch"))
        return str(f.id)

    async def create(self, input_file_id: str, metadata: dict[str, str] | None = None) -> BatchInfo:
        """Submit a batch of the uploaded requests (completion window 24 h)."""
        client = self.inner.client()
        extra: dict[str, Any] = {"metadata": metadata} if metadata else {}
        b = await self._call("create batch", lambda: client.batches.create(
            input_file_id=input_file_id, endpoint=self.url, completion_window="24h", **extra))
        return BatchInfo.from_api(b)

    async def retrieve(self, batch_id: str) -> BatchInfo:
        client = self.inner.client()
        return BatchInfo.from_api(await self._call("retrieve batch", lambda: client.batches.retrieve(batch_id)))

    async def find(self, input_file_id: str, *, scan: int = 1000) -> BatchInfo | None:
        """The batch made from ``input_file_id`` among the ``scan`` most recent ones, if any (a create whose
        answer was lost may still have created it)."""
        client = self.inner.client()

        async def _scan() -> BatchInfo | None:
            n = 0
            async for b in client.batches.list(limit=100):
                if b.input_file_id == input_file_id:
                    return BatchInfo.from_api(b)
                n += 1
                if n >= scan:
                    break
            return None

        return await self._call("list batches", _scan)

    async def content(self, file_id: str) -> list[Any]:
        """The lines of an output or error file, parsed; a line that is not JSON is kept as its text (for
        :func:`parse_result_line` to refuse, so that one broken line does not lose the file's other answers)."""
        client = self.inner.client()

        async def _get() -> bytes:
            return (await client.files.content(file_id)).content

        raw = await self._call("download", _get)
        out = []
        for k, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    log.debug("download of %s: line %d is not JSON", file_id, k)
                    out.append(line)
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()
