"""``openai:MODEL``, ``openai-compatible:URL:MODEL`` and ``azure:ENDPOINT:DEPLOYMENT`` through the official
async ``openai`` client (3.x): OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server, the stand-in server.

The client's own retries are off (``max_retries=0``): the labeling job retries with tenacity so that it can
honour ``Retry-After`` and count attempts. Errors are mapped to :class:`TransientError` (429, 5xx, 408/409,
timeouts, dropped connections, malformed bodies) or :class:`~ade_distill.errors.BackendError` (auth, permission,
unknown model, other 4xx, and a 429 whose error code is ``insufficient_quota``: out of credit, not rate limited) —
the latter stops the job at once.

Output format (``response_format``): ``auto`` tries structured output (``json_schema``), and on a 400 that
names the format falls back to ``json_object`` then to plain ``text`` (the parser copes with all of them);
``function`` asks for a forced ``extract_relations`` tool call.

API keys are read from the environment only, passed to the client and nowhere else; every error message is
passed through :func:`redact` before it is logged or stored, and so are the log records of ``httpx`` and
``openai`` (a ``user:password@`` in the endpoint URL would otherwise be printed by ``-v``).

Under ``--local-only`` (``pinned_address``) the client ignores proxy settings and connects only to the address
that was checked (:mod:`~ade_distill.teacher.backends.pinned`).
"""

from __future__ import annotations

import logging
import os
import re
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

from ade_distill.errors import BackendError, ConfigError
from ade_distill.teacher.backends.base import ResponseFormat, TeacherRequest, TeacherResponse, TransientError

log = logging.getLogger(__name__)

__all__ = ["OpenAIBackend", "redact", "parse_retry_after", "endpoint_id"]

_SECRETS: set[str] = set()
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+)")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai._base_client")  # openai 1.x: httpx; 3.x: httpx2
_FALLBACK: dict[str, str] = {"json_schema": "json_object", "json_object": "text"}
FUNCTION_NAME = "extract_relations"


def redact(text: str) -> str:
    """Remove every API key value this process has read, anything that looks like a key, and the
    ``user:password@`` part of URLs."""
    for s in _SECRETS:
        if s:
            text = text.replace(s, "***")
    return _URL_USERINFO.sub("***@", _KEY_LIKE.sub("***", text))


class _RedactingFilter(logging.Filter):
    """Passes every record, with its message run through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return True


_REDACTING = _RedactingFilter()


def _redact_client_logs() -> None:
    """Attach the redacting filter to the HTTP client's loggers (once; called when a backend is built)."""
    for name in _LOGGERS:
        lg = logging.getLogger(name)
        if _REDACTING not in lg.filters:
            lg.addFilter(_REDACTING)


def endpoint_id(url: str) -> str:
    """The endpoint's identity for the response cache: ``scheme://host:port/path`` with the default port made
    explicit, without credentials, query or trailing slash (two servers on one host differ by port or path)."""
    u = urlparse(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme.lower())
    host = (u.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    return f"{u.scheme.lower()}://{host}:{port}{u.path.rstrip('/')}"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``; ``None`` if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        import datetime as _dt

        when = parsedate_to_datetime(ra)
        return max(0.0, (when - _dt.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def _reasoning_model(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


class OpenAIBackend:
    """Chat completions over the OpenAI API or any compatible endpoint (no network I/O at construction)."""

    billable = True
    cacheable = True
    uses_prompt = True

    def __init__(
        self,
        kind: str,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        api_version: str | None = None,
        response_format: ResponseFormat = "auto",
        pinned_address: str | None = None,
        require_key: bool = True,
    ) -> None:
        if kind not in ("openai", "openai-compatible", "azure"):
            raise ConfigError(f"unknown OpenAI backend kind {kind!r}")
        self.kind = kind
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.requested_format: ResponseFormat = response_format
        self._mode: str = "json_schema" if response_format == "auto" else response_format
        env = api_key_env or {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY"}.get(
            kind, "ADE_DISTILL_API_KEY"
        )
        self.api_key_env = env
        key = os.environ.get(env)
        if key:
            _SECRETS.add(key)
        if require_key and kind in ("openai", "azure") and not key:  # a dry run (never calls) needs none
            raise ConfigError(f"{kind} teacher needs an API key: set the environment variable {env}")
        self._key = key or "EMPTY"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        if kind == "openai":
            self.host = urlparse(base_url or "https://api.openai.com/v1").hostname
            self.billable = True
        else:
            self.host = urlparse(base_url or "").hostname
            if not self.host:
                raise ConfigError(f"{kind} teacher needs an http(s) URL, got {base_url!r}")
        self.endpoint = endpoint_id(base_url or "https://api.openai.com/v1")
        self.pinned_address = pinned_address
        self.api_version = api_version or os.environ.get("OPENAI_API_VERSION") or "2024-10-21"
        self._client: Any = None
        _redact_client_logs()

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            http: dict[str, Any] = {}
            if self.pinned_address is not None:
                from ade_distill.teacher.backends.pinned import pinned_client

                http["http_client"] = pinned_client(self.base_url or "", self.pinned_address, timeout=self.timeout)
            if self.kind == "azure":
                self._client = openai.AsyncAzureOpenAI(
                    azure_endpoint=self.base_url or "", api_key=self._key, api_version=self.api_version,
                    timeout=self.timeout, max_retries=0, **http,
                )
            else:
                self._client = openai.AsyncOpenAI(
                    api_key=self._key, base_url=self.base_url, timeout=self.timeout, max_retries=0, **http
                )
        return self._client

    def _kwargs(self, request: TeacherRequest, mode: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "messages": request.messages}
        params = dict(request.params)
        max_tokens = params.pop("max_tokens", None)
        temperature = params.pop("temperature", None)
        if max_tokens is not None:
            kw["max_completion_tokens" if self.kind != "openai-compatible" else "max_tokens"] = max_tokens
        if temperature is not None and not _reasoning_model(self.model):
            kw["temperature"] = temperature
        kw.update({k: v for k, v in params.items() if v is not None})
        if mode == "json_schema":
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "relations", "schema": request.schema, "strict": True},
            }
        elif mode == "json_object":
            kw["response_format"] = {"type": "json_object"}
        elif mode == "function":
            kw["tools"] = [{
                "type": "function",
                "function": {"name": FUNCTION_NAME, "description": "Record the relations found in the text.",
                             "parameters": request.schema},
            }]
            kw["tool_choice"] = {"type": "function", "function": {"name": FUNCTION_NAME}}
        return kw

    def request_body(self, request: TeacherRequest) -> dict[str, Any]:
        """The JSON body :meth:`complete` would send for ``request`` now (the Batch API's request lines)."""
        return self._kwargs(request, self._mode)

    def response_from_body(self, body: dict[str, Any]) -> TeacherResponse:
        """A chat-completion JSON body (a Batch API output line's ``response.body``) as :meth:`complete` returns
        it. Raises :class:`TransientError` for a body that is not a chat completion."""
        from openai.types.chat import ChatCompletion
        from pydantic import ValidationError

        try:
            resp = ChatCompletion.model_validate(body)
        except ValidationError as err:
            raise TransientError(f"malformed response body: {redact(str(err))[:200]}") from None
        return self._to_response(resp, self._mode)

    def client(self) -> Any:
        """The ``openai`` async client (built on first use)."""
        return self._get_client()

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        import openai

        client = self._get_client()
        while True:
            mode = self._mode
            try:
                resp = await client.chat.completions.create(**self._kwargs(request, mode))
                break
            except openai.RateLimitError as err:
                if getattr(err, "code", None) == "insufficient_quota":  # a 429 that no retry can cure
                    raise BackendError(f"{self.kind} teacher {self.model!r} at {self.host}: HTTP 429 insufficient "
                                       f"quota: {redact(str(err))} — check the account's plan and billing") from None
                raise TransientError(f"429 rate limited: {redact(str(err))}",
                                     retry_after=parse_retry_after(err.response.headers)) from None
            except openai.APITimeoutError:
                raise TransientError(f"timed out after {self.timeout:g} s") from None
            except openai.APIConnectionError as err:
                raise TransientError(f"connection error: {redact(str(err.__cause__ or err))}") from None
            except openai.APIResponseValidationError as err:
                raise TransientError(f"malformed response body: {redact(str(err))[:200]}") from None
            except openai.BadRequestError as err:
                msg = redact(str(err))
                nxt = _FALLBACK.get(mode)
                if (self.requested_format == "auto" and nxt
                        and re.search(r"response_format|json_schema|json_object|schema", msg, re.I)):
                    log.warning("%s does not accept %s output (%s); falling back to %s", self.host, mode, msg[:120], nxt)
                    self._mode = nxt
                    continue
                raise BackendError(f"{self.kind} teacher {self.model!r} rejected the request (400): {msg}") from None
            except openai.APIStatusError as err:
                code = err.status_code
                msg = redact(str(err))
                if code >= 500 or code in (408, 409):
                    raise TransientError(f"HTTP {code}: {msg[:200]}",
                                         retry_after=parse_retry_after(err.response.headers)) from None
                hint = {401: "check the API key in $" + self.api_key_env, 403: "the key lacks permission",
                        404: "unknown model or wrong URL"}.get(code, "")
                raise BackendError(f"{self.kind} teacher {self.model!r} at {self.host}: HTTP {code}: {msg} "
                                   f"{('— ' + hint) if hint else ''}".strip()) from None
            except ValueError as err:  # undecodable JSON body
                raise TransientError(f"malformed response body: {redact(str(err))[:200]}") from None
        return self._to_response(resp, mode)

    def _to_response(self, resp: Any, mode: str) -> TeacherResponse:
        if isinstance(resp, (str, bytes)) or not getattr(resp, "choices", None):
            raise TransientError(f"malformed response: {str(resp)[:200]!r}")
        choice = resp.choices[0]
        msg = choice.message
        args = None
        if getattr(msg, "tool_calls", None):
            fn = getattr(msg.tool_calls[0], "function", None)
            args = getattr(fn, "arguments", None)
        elif getattr(msg, "function_call", None) is not None:
            args = msg.function_call.arguments
        usage = resp.usage
        raw = resp.model_dump(mode="json", exclude_none=True)
        raw["_mode"] = mode
        return TeacherResponse(
            content=msg.content,
            function_arguments=args,
            finish_reason=choice.finish_reason,
            usage={"prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                   "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0)},
            model=resp.model,
            raw=raw,
            refusal=getattr(msg, "refusal", None) or None,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
