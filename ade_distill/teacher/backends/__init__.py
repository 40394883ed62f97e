"""Teacher backends behind one interface (:class:`~ade_distill.teacher.backends.base.Backend`).

Specs accepted by :func:`make_backend`:

* ``openai:MODEL`` — api.openai.com, key from ``$OPENAI_API_KEY``;
* ``openai-compatible:URL:MODEL`` — e.g. ``openai-compatible:http://127.0.0.1:8000/v1:Qwen/Qwen2.5-7B-Instruct``
  (vLLM, Ollama, llama.cpp server); optional key from ``$ADE_DISTILL_API_KEY`` (never ``$OPENAI_API_KEY``, so
  an OpenAI key is not sent to another host);
* ``azure:ENDPOINT:DEPLOYMENT`` — Azure OpenAI, key from ``$AZURE_OPENAI_API_KEY``, API version from
  ``api_version`` or ``$OPENAI_API_VERSION``;
* ``hf:PATH_OR_NAME`` — a local Hugging Face causal LM with a chat template;
* ``replay:FILE`` — recorded responses, looked up by input text;
* ``openai-batch:MODEL`` — the OpenAI Batch API (half price, answers within 24 h; key from ``$OPENAI_API_KEY``),
  ``openai-batch:URL:MODEL`` — a server with the same Files and Batches API (the stand-in; key from
  ``$ADE_DISTILL_API_KEY``), ``azure-batch:ENDPOINT:DEPLOYMENT`` — Azure OpenAI's batch deployments. These are
  not called per request: the labeling job hands them to :mod:`ade_distill.teacher.batch`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.teacher.backends.base import Backend, TeacherRequest, TeacherResponse, TransientError

__all__ = [
    "Backend", "TeacherRequest", "TeacherResponse", "TransientError", "TeacherSpec", "parse_teacher_spec",
    "make_backend", "check_local_host", "BATCH_KINDS",
]

_URL_MODEL = re.compile(r"^(https?://[^/\s]+(?:/[^:\s]*)?):(.+)$")
_KINDS = ("openai", "openai-compatible", "azure", "hf", "replay", "openai-batch", "azure-batch")
BATCH_KINDS = ("openai-batch", "azure-batch")
_LOCAL_NETS = [ipaddress.ip_network(n) for n in
               ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


@dataclass(frozen=True)
class TeacherSpec:
    kind: str
    model: str
    url: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.url}:{self.model}" if self.url else f"{self.kind}:{self.model}"


def parse_teacher_spec(spec: str) -> TeacherSpec:
    """Split a ``--teacher`` value into kind, model and URL.

    Raises:
        ConfigError: unknown kind or missing parts (the message lists the accepted forms).
    """
    forms = ("openai:MODEL, openai-compatible:URL:MODEL, azure:ENDPOINT:DEPLOYMENT, hf:PATH_OR_NAME, replay:FILE, "
             "openai-batch:MODEL, openai-batch:URL:MODEL, azure-batch:ENDPOINT:DEPLOYMENT")
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in _KINDS or not rest:
        raise ConfigError(f"invalid teacher {spec!r}; expected one of: {forms}")
    if kind == "openai-batch" and re.match(r"https?://", rest):
        m = _URL_MODEL.match(rest)
        if not m:
            raise ConfigError(f"invalid teacher {spec!r}; expected openai-batch:http(s)://HOST[:PORT][/PATH]:MODEL")
        return TeacherSpec(kind, m.group(2), m.group(1))
    if kind in ("openai-compatible", "azure", "azure-batch"):
        m = _URL_MODEL.match(rest)
        if not m:
            raise ConfigError(f"invalid teacher {spec!r}; expected {kind}:http(s)://HOST[:PORT][/PATH]:MODEL")
        return TeacherSpec(kind, m.group(2), m.group(1))
    return TeacherSpec(kind, rest)


def _is_local_ip(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _LOCAL_NETS)


def check_local_host(host: str | None) -> list[str]:
    """Resolve ``host`` (a name or address) once and return its addresses, sorted; raise :class:`ConfigError`
    unless every one is loopback or private (127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7).

    The caller must connect to one of the returned addresses, never resolve the name again: a second lookup
    could answer differently (DNS rebinding)."""
    if not host:
        raise ConfigError("--local-only: the teacher endpoint has no host")
    try:
        addrs = {str(ai[4][0]) for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror as err:
        raise ConfigError(f"--local-only: cannot resolve teacher host {host!r} ({err}); refusing") from None
    bad = sorted(a for a in addrs if not _is_local_ip(a))
    if not addrs or bad:
        raise ConfigError(
            f"--local-only: teacher host {host!r} resolves to non-local address(es) {bad}; only loopback and "
            "private networks are allowed (use a local server or a replay/hf teacher)"
        )
    return sorted(addrs)


def make_backend(
    spec: str,
    *,
    local_only: bool = False,
    timeout: float = 60.0,
    response_format: str = "auto",
    api_version: str | None = None,
    api_key_env: str | None = None,
    require_key: bool = True,
) -> Any:
    """Build the backend for a ``--teacher`` spec (no network I/O but, under ``local_only``, one DNS lookup).

    ``local_only``: the endpoint's host is resolved once and checked (:func:`check_local_host`); the backend then
    connects to that address only and never through a proxy (:mod:`~ade_distill.teacher.backends.pinned`).

    ``require_key=False``: no error for a missing API key (a backend that is never called: ``--dry-run``).

    Raises:
        ConfigError: bad spec, missing API key, or a non-local endpoint under ``local_only``.
    """
    ts = parse_teacher_spec(spec)
    if ts.kind == "replay":
        from ade_distill.teacher.backends.replay import ReplayBackend

        return ReplayBackend(Path(ts.model))
    if ts.kind == "hf":
        from ade_distill.teacher.backends.hf_backend import HFBackend

        return HFBackend(ts.model, local_files_only=local_only)
    if ts.kind in BATCH_KINDS:
        from ade_distill.teacher.backends.openai_batch import OpenAIBatchBackend

        inner_kind = "azure" if ts.kind == "azure-batch" else ("openai-compatible" if ts.url else "openai")
        inner = _openai_backend(TeacherSpec(inner_kind, ts.model, ts.url), local_only=local_only, timeout=timeout,
                                response_format=response_format, api_version=api_version,
                                api_key_env=api_key_env, require_key=require_key)
        return OpenAIBatchBackend(ts.kind, inner)
    return _openai_backend(ts, local_only=local_only, timeout=timeout, response_format=response_format,
                           api_version=api_version, api_key_env=api_key_env, require_key=require_key)


def _openai_backend(ts: TeacherSpec, *, local_only: bool, timeout: float, response_format: str,
                    api_version: str | None, api_key_env: str | None, require_key: bool) -> Any:
    """The :class:`OpenAIBackend` of an ``openai``, ``openai-compatible`` or ``azure`` spec."""
    from ade_distill.teacher.backends.openai_backend import OpenAIBackend

    if response_format not in ("auto", "json_schema", "json_object", "function", "text"):
        raise ConfigError(f"response format {response_format!r}: expected auto, json_schema, json_object, "
                          "function or text")
    base_url = ts.url if ts.kind != "openai" else None
    pinned = None
    if local_only:
        from urllib.parse import urlparse

        if ts.kind == "openai":
            raise ConfigError("--local-only refuses openai:MODEL (api.openai.com is not a local endpoint); use "
                              "openai-compatible:URL:MODEL with a local server, hf:MODEL or replay:FILE")
        pinned = check_local_host(urlparse(base_url).hostname)[0]
    return OpenAIBackend(ts.kind, ts.model, base_url=base_url, timeout=timeout, api_version=api_version,
                         response_format=response_format,  # type: ignore[arg-type]
                         api_key_env=api_key_env, pinned_address=pinned, require_key=require_key)
