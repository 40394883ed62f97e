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

The Files and Batches API (``openai-batch:{server.url}:MODEL``): ``POST /v1/files`` (multipart upload),
``GET /v1/files/{id}`` and ``/v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``GET /v1/batches`` (list), ``POST /v1/batches/{id}/cancel`` (the same paths under Azure's ``/openai/``). A batch
runs its lines through the completion logic above when it is retrieved, so ``faults_by_text`` applies per line:
``429``/``500``/``401``/``quota``/``hang``/``drop``/``malformed`` give an error-file line with that HTTP status,
``content_filter``/``length`` an answer cut short. Batch-level faults: ``batch_in_progress_polls`` (the batch
stays ``in_progress`` for that many retrievals) and ``batch_expire_after`` (only that many lines are answered;
the batch ends ``expired``, the rest as ``batch_expired`` lines in its error file); ``batch_bad_lines`` maps an input
text to a broken result line in place of its answer, once: ``no_custom_id`` (the JSON line without its
``custom_id``) or ``not_json`` (text that is not JSON). ``api_calls`` counts calls by
name (``files.upload``, ``batches.create``, ``batches.retrieve``, ``batches.list``, ``files.content`` ...).

Example::

    with StandinServer(recordings="ade_gpt-4-1106-preview_json.jsonl", latency_s=0.2) as srv:
        backend = make_backend(f"openai-compatible:{srv.url}:gpt-4-1106-preview")
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ade_distill.teacher.backends.replay import load_recordings
from ade_distill.teacher.prompts import extract_input_text

__all__ = ["StandinServer", "FAULTS", "BAD_LINES"]

FAULTS = ("429", "500", "hang", "drop", "malformed", "content_filter", "length", "401", "quota")
BAD_LINES = ("no_custom_id", "not_json")


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
        batch_in_progress_polls: int = 0,
        batch_expire_after: int | None = None,
        batch_bad_lines: dict[str, str] | None = None,
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
        self.api_calls: Counter[str] = Counter()
        self.batch_api = _BatchAPI(self, in_progress_polls=batch_in_progress_polls, expire_after=batch_expire_after)
        self.batch_api.bad_lines = dict(batch_bad_lines or {})
        for f in self.batch_api.bad_lines.values():
            if f not in BAD_LINES:
                raise ValueError(f"unknown batch line fault {f!r}; expected one of {BAD_LINES}")

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

            def _batch_api(self, method: str, raw: bytes) -> bool:
                """Answer a Files/Batches API call; ``False`` when the path is not one."""
                got = server.batch_api.handle(method, urlparse(self.path).path, self.headers, raw)
                if got is None:
                    return False
                code, payload, ctype = got
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return True

            def do_GET(self) -> None:  # noqa: N802
                server.auth_headers_seen.add(self.headers.get("Authorization") or "")
                if not self._batch_api("GET", b""):
                    self._send(404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}')

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                auth = self.headers.get("Authorization") or ""
                server.auth_headers_seen.add(auth)
                if self._batch_api("POST", raw):
                    return
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


_ROUTES = [  # (method, path pattern, name counted in api_calls, handler); under /v1/ (OpenAI) or /openai/ (Azure)
    ("POST", re.compile(r".*/files$"), "files.upload", "upload"),
    ("GET", re.compile(r".*/files/([^/]+)/content$"), "files.content", "file_content"),
    ("GET", re.compile(r".*/files/([^/]+)$"), "files.retrieve", "file_info"),
    ("POST", re.compile(r".*/batches$"), "batches.create", "create"),
    ("GET", re.compile(r".*/batches$"), "batches.list", "list"),
    ("POST", re.compile(r".*/batches/([^/]+)/cancel$"), "batches.cancel", "cancel"),
    ("GET", re.compile(r".*/batches/([^/]+)$"), "batches.retrieve", "retrieve"),
]
_HTTP_FAULTS = {"429": 429, "quota": 429, "500": 500, "401": 401, "hang": 500, "drop": 500, "malformed": 500}


class _BatchAPI:
    """The Files and Batches API of the stand-in: files kept in memory, a batch's lines answered by the
    server's completion logic once it has been retrieved ``in_progress_polls`` times."""

    def __init__(self, server: StandinServer, *, in_progress_polls: int, expire_after: int | None) -> None:
        self.server = server
        self.in_progress_polls = in_progress_polls
        self.expire_after = expire_after
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.bad_lines: dict[str, str] = {}  # input text -> a broken result line in place of its answer, once
        self._polls: Counter[str] = Counter()
        self._lock = threading.RLock()

    def handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, bytes, str] | None:
        for m, pattern, api_name, handler in _ROUTES:
            match = pattern.match(path)
            if m == method and match:
                self.server.api_calls[api_name] += 1
                with self._lock:
                    return getattr(self, handler)(*match.groups(), headers=headers, raw=raw)
        return None

    @staticmethod
    def _json(obj: Any, code: int = 200) -> tuple[int, bytes, str]:
        return code, json.dumps(obj).encode(), "application/json"

    def _not_found(self, what: str) -> tuple[int, bytes, str]:
        return self._json({"error": {"message": f"No such {what}", "type": "invalid_request_error"}}, 404)

    # -- files ------------------------------------------------------------------------------------------------
    def _new_file(self, filename: str, data: bytes, purpose: str) -> dict[str, Any]:
        fid = f"file-standin{len(self.files) + 1}"
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose, "status": "processed"}
        self.contents[fid] = data
        return self.files[fid]

    def upload(self, *, headers: Any, raw: bytes) -> tuple[int, bytes, str]:
        import email.parser
        import email.policy

        head = f"Content-Type: {headers.get('Content-Type')}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.iter_parts()}
        if "file" not in fields or "purpose" not in fields:
            return self._json({"error": {"message": "file and purpose are required",
                                         "type": "invalid_request_error"}}, 400)
        purpose = fields["purpose"].get_payload(decode=True).decode()
        data = fields["file"].get_payload(decode=True)
        return self._json(self._new_file(fields["file"].get_filename() or "upload", data, purpose))

    def file_info(self, fid: str, **_: Any) -> tuple[int, bytes, str]:
        return self._json(self.files[fid]) if fid in self.files else self._not_found("file")

    def file_content(self, fid: str, **_: Any) -> tuple[int, bytes, str]:
        return (200, self.contents[fid], "application/octet-stream") if fid in self.contents else self._not_found("file")

    # -- batches ----------------------------------------------------------------------------------------------
    def create(self, *, raw: bytes, **_: Any) -> tuple[int, bytes, str]:
        body = json.loads(raw or b"{}")
        if body.get("input_file_id") not in self.files:
            return self._not_found("file")
        bid = f"batch_standin{len(self.batches) + 1}"
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
        }
        return self._json(self.batches[bid])

    def retrieve(self, bid: str, **_: Any) -> tuple[int, bytes, str]:
        b = self.batches.get(bid)
        if b is None:
            return self._not_found("batch")
        if b["status"] in ("validating", "in_progress"):
            self._polls[bid] += 1
            if self._polls[bid] <= self.in_progress_polls:
                b["status"] = "in_progress"
                b["request_counts"]["total"] = len(self._lines(b))
            else:
                self._run(b)
        return self._json(b)

    def list(self, **_: Any) -> tuple[int, bytes, str]:
        data = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
        return self._json({"object": "list", "data": data, "has_more": False,
                           "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    def cancel(self, bid: str, **_: Any) -> tuple[int, bytes, str]:
        b = self.batches.get(bid)
        if b is None:
            return self._not_found("batch")
        if b["status"] in ("validating", "in_progress"):
            b["status"], b["cancelled_at"] = "cancelled", int(time.time())
        return self._json(b)

    def _lines(self, b: dict[str, Any]) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.contents[b["input_file_id"]].decode().splitlines() if x.strip()]

    def _run(self, b: dict[str, Any]) -> None:
        """Answer every line (or the first ``expire_after``), write the output and error files."""
        ok: list[dict[str, Any] | str] = []
        failed: list[dict[str, Any] | str] = []
        lines = self._lines(b)
        for k, line in enumerate(lines):
            rid = f"batch_req_{b['id']}_{k}"
            if self.expire_after is not None and k >= self.expire_after:
                failed.append({"id": rid, "custom_id": line["custom_id"], "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired."}})
                continue
            code, body = self._answer(line["body"])
            out = ok if code == 200 else failed
            row: dict[str, Any] | str = {"id": rid, "custom_id": line["custom_id"], "error": None,
                                         "response": {"status_code": code, "request_id": f"req_{k}", "body": body}}
            bad = self.bad_lines.pop(_input_text(line["body"]), None)
            if bad == "no_custom_id":
                row = {k: v for k, v in row.items() if k != "custom_id"}  # type: ignore[union-attr]
            elif bad == "not_json":
                row = '{"id": "' + rid + '", "custom_id": '  # cut off
            out.append(row)
        for name, rows in (("output_file_id", ok), ("error_file_id", failed)):
            if rows:
                data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
                b[name] = self._new_file(f"{b['id']}_{name[:-8]}.jsonl", data, "batch_output")["id"]
        expired = self.expire_after is not None and self.expire_after < len(lines)
        b["status"] = "expired" if expired else "completed"
        b["expired_at" if expired else "completed_at"] = int(time.time())
        b["request_counts"] = {"total": len(lines), "completed": len(ok), "failed": len(failed)}

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and body the synchronous endpoint would give this request (faults included)."""
        text = _input_text(body)
        fault = self.server._next_fault(text)
        if fault in _HTTP_FAULTS:
            code = _HTTP_FAULTS[fault]
            err_type = "insufficient_quota" if fault == "quota" else "server_error"
            return code, {"error": {"message": f"injected fault {fault}", "type": err_type}}
        return 200, self.server._completion(text, body, fault)


def _input_text(body: dict[str, Any]) -> str:
    """The input text of a chat request body (the last user message's ``<text>`` block)."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return extract_input_text(users[-1].get("content") or "") if users else ""
