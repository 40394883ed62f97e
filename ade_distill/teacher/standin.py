"""A loopback OpenAI-compatible stand-in server that serves recorded responses, with latency and faults.

Used by the tests, the benchmark and the reproduce stage: ``openai-compatible:{server.url}:MODEL`` makes the
real ``openai`` client talk to it. It binds 127.0.0.1 on a free port, answers ``POST /v1/chat/completions``
by looking up the input text of the last user message (the ``<text>`` block of the prompt template, else the
whole message) in a recordings file (``shared/data/teacher_outputs`` format), and can inject faults.

Faults (names): ``429`` (with ``Retry-After``), ``500``, ``hang`` (sleeps ``hang_s`` before answering, past the
client's timeout), ``drop`` (closes the connection without a response), ``malformed`` (200 with a body that is
not JSON), ``content_filter`` (finish_reason content_filter, partial content), ``length`` (the content cut in
half, finish_reason length), ``401`` (auth error, echoing the bearer token like a careless server would),
``quota`` (429 with error code ``insufficient_quota``, as OpenAI answers an account out of credit).
``faults_by_text`` maps an input text to the faults its successive requests get (then it is served normally);
``fail_first`` applies to the first requests overall, whatever their text. ``requests_by_text`` counts requests.

Example::

    with StandinServer(recordings="ade_gpt-4-1106-preview_json.jsonl", latency_s=0.2) as srv:
        backend = make_backend(f"openai-compatible:{srv.url}:gpt-4-1106-preview")
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ade_distill.teacher.backends.replay import load_recordings
from ade_distill.teacher.prompts import extract_input_text

__all__ = ["StandinServer", "FAULTS"]

FAULTS = ("429", "500", "hang", "drop", "malformed", "content_filter", "length", "401", "quota")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class StandinServer:
    """Start with :meth:`start` (or ``with``); :attr:`url` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(
        self,
        recordings: str | Path | dict[str, dict] | None = None,
        *,
        latency_s: float = 0.0,
        faults_by_text: dict[str, Iterable[str]] | None = None,
        fail_first: Iterable[str] = (),
        retry_after_s: float = 1.0,
        hang_s: float = 5.0,
        default_content: str = '{"relations": []}',
    ) -> None:
        if isinstance(recordings, dict):
            self.recordings = recordings
        elif recordings is not None:
            self.recordings, _ = load_recordings(recordings)
        else:
            self.recordings = {}
        self.latency_s = latency_s
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.default_content = default_content
        self._faults_by_text = {k: list(v) for k, v in (faults_by_text or {}).items()}
        self._fail_first = list(fail_first)
        for f in [*self._fail_first, *(x for v in self._faults_by_text.values() for x in v)]:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; expected one of {FAULTS}")
        self.requests_by_text: Counter[str] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.auth_headers_seen: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> StandinServer:
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="standin-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def total_requests(self) -> int:
        return sum(self.requests_by_text.values())

    # -- behaviour ---------------------------------------------------------------------------------------
    def _next_fault(self, text: str) -> str | None:
        with self._lock:
            self.requests_by_text[text] += 1
            if self._fail_first:
                f = self._fail_first.pop(0)
            else:
                q = self._faults_by_text.get(text)
                f = q.pop(0) if q else None  # type: ignore[assignment]
            if f:
                self.faults_served[f] += 1
            return f

    def _completion(self, text: str, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        rec = self.recordings.get(text)
        content: str | None = rec.get("content") if rec else self.default_content
        fcall = rec.get("function_call") if rec else None
        finish = rec.get("finish_reason", "stop") if rec else "stop"
        usage = (rec or {}).get("usage") or {
            "prompt_tokens": sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4,
            "completion_tokens": len(content or "") // 4,
        }
        if fault == "content_filter":
            content, finish = (content or "")[: len(content or "") // 2], "content_filter"
        elif fault == "length":
            content, finish = (content or "")[: len(content or "") // 2], "length"
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if fcall:
            if body.get("tools"):
                message["tool_calls"] = [{"id": "call_0", "type": "function", "function": fcall}]
                finish = "tool_calls" if finish == "stop" else finish
            else:
                message["function_call"] = fcall
        return {
            "id": (rec or {}).get("id") or "chatcmpl-standin",
            "object": "chat.completion",
            "created": (rec or {}).get("created") or 0,
            "model": (rec or {}).get("model") or body.get("model", "standin"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {**usage, "total_tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
                import socket as _s

                self.connection.setsockopt(_s.IPPROTO_TCP, _s.TCP_NODELAY, 1)

            def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                auth = self.headers.get("Authorization") or ""
                server.auth_headers_seen.add(auth)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
                    return
                try:
                    body = json.loads(raw)
                    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
                    text = extract_input_text(users[-1].get("content") or "") if users else ""
                except (ValueError, AttributeError, IndexError):
                    self._send(400, b'{"error": {"message": "bad request body", "type": "invalid_request_error"}}')
                    return
                fault = server._next_fault(text)
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "429":
                    err = {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "code": "rate_limit"}}
                    self._send(429, json.dumps(err).encode(), {"Retry-After": f"{server.retry_after_s:g}"})
                elif fault == "quota":
                    err = {"error": {"message": "You exceeded your current quota, please check your plan and billing "
                                     "details.", "type": "insufficient_quota", "code": "insufficient_quota"}}
                    self._send(429, json.dumps(err).encode())
                elif fault == "500":
                    self._send(500, b'{"error": {"message": "internal error", "type": "server_error"}}')
                elif fault == "401":
                    msg = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
                    self._send(401, json.dumps({"error": {"message": msg, "type": "invalid_request_error",
                                                          "code": "invalid_api_key"}}).encode())
                elif fault == "hang":
                    server._stopping.wait(server.hang_s)
                    self.close_connection = True
                elif fault == "drop":
                    self.close_connection = True
                    try:
                        import socket as _s

                        self.connection.shutdown(_s.SHUT_RDWR)
                    except OSError:
                        pass
                elif fault == "malformed":
                    self._send(200, b'{"id": "chatcmpl-x", "choices": [{"message": ')
                else:
                    self._send(200, json.dumps(server._completion(text, body, fault)).encode())

        return Handler
