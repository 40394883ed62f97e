"""The one interface every teacher backend implements. Backends return raw responses and never parse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ade_distill.errors import AdeDistillError

__all__ = ["TeacherRequest", "TeacherResponse", "Backend", "TransientError", "ResponseFormat"]

ResponseFormat = Literal["auto", "json_schema", "json_object", "function", "text"]


@dataclass(frozen=True)
class TeacherRequest:
    """One call: chat messages, the raw input text (replay looks responses up by it), and generation params."""

    messages: list[dict[str, str]]
    text: str
    schema: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    response_format: ResponseFormat = "auto"
    title: str | None = None


@dataclass(frozen=True)
class TeacherResponse:
    """A raw chat-completion answer.

    Attributes:
        content: message text (``None`` when the answer is a function/tool call).
        function_arguments: JSON text of the function-call / tool-call arguments, when any.
        finish_reason: ``stop``, ``length``, ``content_filter``, ``function_call``, ``tool_calls`` or ``None``.
        usage: ``{"prompt_tokens": int, "completion_tokens": int}``.
        model: model name reported by the endpoint.
        raw: the response as JSON-able data (what the cache stores; never holds credentials).
        found: ``False`` when a replay file has no recording for the input (no call was made).
        refusal: the model's refusal message (structured-output refusals), when any.
    """

    content: str | None
    function_arguments: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    raw: dict[str, Any] | None = None
    found: bool = True
    refusal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "function_arguments": self.function_arguments,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "model": self.model,
            "raw": self.raw,
            "found": self.found,
            "refusal": self.refusal,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeacherResponse:
        return cls(
            content=d.get("content"),
            function_arguments=d.get("function_arguments"),
            finish_reason=d.get("finish_reason"),
            usage=dict(d.get("usage") or {}),
            model=d.get("model"),
            raw=d.get("raw"),
            found=bool(d.get("found", True)),
            refusal=d.get("refusal"),
        )


class TransientError(AdeDistillError):
    """A failure worth retrying (429, 5xx, timeout, dropped connection, malformed body).

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class Backend(Protocol):
    """A teacher endpoint.

    Attributes:
        kind: ``openai``, ``openai-compatible``, ``azure``, ``hf`` or ``replay``.
        model: the model name (or path).
        host: endpoint host (never a key), ``None`` for local backends.
        endpoint: what the response cache keys the endpoint by — ``scheme://host:port/path`` of a server, a
            digest of the weights for ``hf``, ``None`` for replay (not cached).
        billable: whether calls cost money (the budget counts only these).
        cacheable: whether responses go to the on-disk cache (replay does not need it).
        uses_prompt: ``False`` when the answer does not depend on the rendered prompt (replay).
    """

    kind: str
    model: str
    host: str | None
    endpoint: str | None
    billable: bool
    cacheable: bool
    uses_prompt: bool

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        """Return the raw answer. Raises :class:`TransientError` (retryable) or ``BackendError`` (permanent)."""
        ...

    async def aclose(self) -> None: ...
