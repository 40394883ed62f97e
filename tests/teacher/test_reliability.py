"""Issue 15: what `label` guarantees — local-only never leaves the checked address (no proxy, no second DNS
lookup), failed records fail the command, the cache keys the full endpoint, one job per output, a resume never
mixes teachers, credentials in URLs never reach the logs. Fault injection against the loopback stand-in server."""

from __future__ import annotations

import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import read_examples
from ade_distill.teacher.backends import make_backend
from ade_distill.teacher.backends.hf_backend import HFBackend
from ade_distill.teacher.backends.openai_backend import redact
from ade_distill.teacher.label import RetryPolicy, label_examples
from ade_distill.teacher.standin import StandinServer
from tests.teacher.conftest import write_inputs

MODEL = "gpt-4-1106-preview"
ONCE = RetryPolicy(attempts=1, initial=0.01, max_wait=0.1)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Recorder:
    """A loopback HTTP server that records every request it gets (a proxy, or an attacker's address) and
    answers 502."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.seen: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _any(self) -> None:
                recorder.seen.append(f"{self.command} {self.path} auth={self.headers.get('Authorization')}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _any  # noqa: N815

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}"

    def __enter__(self) -> Recorder:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _label(task, teacher, inputs, out: Path, **kw):
    kw.setdefault("retry", ONCE)
    kw.setdefault("timeout", 2.0)
    return label_examples(task, teacher, inputs, out, progress=False, **kw)


# -- 1. --local-only ---------------------------------------------------------------------------------------------
def test_local_only_never_goes_through_a_proxy(tmp_path, monkeypatch, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:3]
    with StandinServer(json_recordings) as srv, Recorder() as proxy:
        for var in PROXY_VARS:
            monkeypatch.setenv(var, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        teacher = f"openai-compatible:{srv.url}:{MODEL}"
        # the proxy settings are live: without --local-only the client goes through the proxy
        _label(ade_task, teacher, inputs[:1], tmp_path / "proxied.jsonl")
        assert proxy.seen
        proxy.seen.clear()
        s = _label(ade_task, teacher, inputs, tmp_path / "local.jsonl", local_only=True)
    assert proxy.seen == []  # neither the prompt nor the Authorization header went to the proxy
    assert srv.total_requests == 3 and s.status["ok"] == 3


def test_local_only_connects_to_the_address_it_checked(tmp_path, monkeypatch, ade_task, json_recordings,
                                                       sample_inputs):
    """DNS rebinding: the name answers a checked local address first, then another one. The client must
    connect to the address that was checked, not look the name up again."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kw):
        if (host.decode() if isinstance(host, bytes) else host) != "rebind.test":  # anyio passes IDNA bytes
            return real(host, port, *args, **kw)
        lookups.append(host)
        addr = "127.0.0.1" if len(lookups) == 1 else "127.0.0.3"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port or 0))]

    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with StandinServer(json_recordings) as srv:
        port = int(srv.url.split(":")[2].split("/")[0])
        with Recorder("127.0.0.3", port) as other:
            monkeypatch.setattr(socket, "getaddrinfo", rebinding)
            s = _label(ade_task, f"openai-compatible:http://rebind.test:{port}/v1:{MODEL}", sample_inputs[:2],
                       tmp_path / "o.jsonl", local_only=True)
    assert other.seen == [] and srv.total_requests == 2 and s.status["ok"] == 2
    assert len(lookups) == 1


def test_pinned_client_refuses_any_other_endpoint():
    import asyncio

    from ade_distill.teacher.backends.pinned import openai_httpx, pinned_client

    hx = openai_httpx()
    client = pinned_client("http://127.0.0.1:9/v1", "127.0.0.1")

    async def go(url: str) -> None:
        try:
            await client.get(url)
        finally:
            await client.aclose()

    with pytest.raises(hx.ConnectError, match="refusing a request to evil.example:80"):
        asyncio.run(go("http://evil.example/v1"))  # e.g. where a redirect would lead


# -- 3. failed records fail the command; an empty input is said so ------------------------------------------------
def test_label_exits_nonzero_with_counts_when_records_failed(tmp_path, json_recordings, sample_inputs):
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:3])
    with StandinServer(json_recordings, faults_by_text={sample_inputs[1].text: ["500"],
                                                        sample_inputs[2].text: ["500"]}) as srv:
        r = CliRunner().invoke(app, ["label", "--teacher", f"openai-compatible:{srv.url}:{MODEL}", "--input",
                                     str(inp), "--out", str(tmp_path / "s.jsonl"), "--retries", "0",
                                     "--no-progress"])
    assert r.exit_code == 1, r.output
    assert "2 of 3 records failed" in r.output and "ok 1" in r.output
    assert [x.meta["status"] for x in read_examples(tmp_path / "s.jsonl")] == ["ok", "error", "error"]


def test_label_says_so_when_the_input_is_empty(tmp_path, json_recordings_path):
    inp = tmp_path / "empty.jsonl"
    inp.write_bytes(b"")
    r = CliRunner().invoke(app, ["label", "--teacher", f"replay:{json_recordings_path}", "--input", str(inp),
                                 "--out", str(tmp_path / "s.jsonl"), "--no-progress"])
    assert isinstance(r.exception, DataError)
    assert str(inp) in str(r.exception) and "no text to label" in str(r.exception)
    assert not (tmp_path / "s.jsonl").exists()


# -- 4. the cache keys the whole endpoint, and hf weights by content ----------------------------------------------
def test_cache_endpoint_identity_has_port_and_path():
    ends = {make_backend(f"openai-compatible:{url}:m").endpoint for url in (
        "http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1", "http://127.0.0.1:8000/v2", "https://127.0.0.1:8000/v1")}
    assert len(ends) == 4
    same = {make_backend(f"openai-compatible:{url}:m").endpoint for url in (
        "http://127.0.0.1/v1", "http://127.0.0.1:80/v1/", "http://user:pw@127.0.0.1:80/v1")}
    assert same == {"http://127.0.0.1:80/v1"}


def test_two_servers_with_one_model_name_do_not_share_answers(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:2]
    cache = tmp_path / "cache.sqlite"
    with StandinServer({}) as empty, StandinServer(json_recordings) as real:
        _label(ade_task, f"openai-compatible:{empty.url}:{MODEL}", inputs, tmp_path / "a.jsonl", cache_path=cache)
        teacher = f"openai-compatible:{real.url}:{MODEL}"
        _label(ade_task, teacher, inputs, tmp_path / "b.jsonl", cache_path=cache)
        assert real.total_requests == 2  # no answer of the other server was reused
    b = list(read_examples(tmp_path / "b.jsonl"))
    assert b[0].relations  # the recorded answer, not the other server's empty one
    assert {r.meta["teacher"] for r in b} == {teacher}


def test_hf_cache_identity_follows_the_weights_content(tmp_path):
    folder = tmp_path / "lm"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"A" * 64)
    (folder / "config.json").write_text("{}")
    before = HFBackend(str(folder)).endpoint
    stat = weights.stat()
    weights.write_bytes(b"B" * 64)  # retrained in place: same size, same modification time
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = HFBackend(str(folder)).endpoint
    assert before != after and str(folder) not in after


# -- 5. one job per output ----------------------------------------------------------------------------------------
def test_a_second_run_on_the_same_out_is_refused(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:6]
    out = tmp_path / "s.jsonl"
    with StandinServer(json_recordings, latency_s=0.25) as srv:
        teacher = f"openai-compatible:{srv.url}:{MODEL}"
        first = threading.Thread(target=_label, args=(ade_task, teacher, inputs, out), kwargs={"concurrency": 1})
        first.start()
        while srv.total_requests == 0:
            threading.Event().wait(0.01)
        with pytest.raises(ConfigError, match="another label run"):
            _label(ade_task, teacher, inputs, out, concurrency=1)
        first.join(timeout=30)
    ids = [r.id for r in read_examples(out)]
    assert ids == [e.id for e in inputs]  # every record once


# -- 6. a resume never mixes teachers, prompts or tasks ----------------------------------------------------------
def test_resume_refuses_another_teacher_prompt_or_task(tmp_path, ade_task, json_recordings, json_recordings_path,
                                                       sample_inputs):
    from ade_distill.tasks.spec import load_task

    out = tmp_path / "s.jsonl"
    with StandinServer(json_recordings) as srv:
        teacher = f"openai-compatible:{srv.url}:{MODEL}"
        _label(ade_task, teacher, sample_inputs[:2], out)
        before = out.read_bytes()
        with pytest.raises(ConfigError, match="would mix"):
            _label(ade_task, f"replay:{json_recordings_path}", sample_inputs[:4], out)
        with pytest.raises(ConfigError, match="re.v2"):
            _label(ade_task.model_copy(update={"prompt_template": "re.v2"}), teacher, sample_inputs[:4], out)
        with pytest.raises(ConfigError, match="cdr"):
            _label(load_task("cdr"), teacher, sample_inputs[:4], out)
        assert out.read_bytes() == before
        _label(ade_task, teacher, sample_inputs[:4], out)  # the same job resumes
    assert len(list(read_examples(out))) == 4


# -- 8. credentials in an endpoint URL never reach the logs -------------------------------------------------------
def test_password_in_endpoint_url_is_not_logged(tmp_path, caplog, ade_task, json_recordings, sample_inputs):
    caplog.set_level(logging.DEBUG)
    with StandinServer(json_recordings) as srv:
        url = srv.url.replace("http://", "http://alice:s3cr3t-pw@")
        _label(ade_task, f"openai-compatible:{url}:{MODEL}", sample_inputs[:1], tmp_path / "s.jsonl")
        assert srv.total_requests == 1
    assert "HTTP Request" in caplog.text  # httpx's request log (what -v prints) was captured
    assert "s3cr3t-pw" not in caplog.text
    assert "s3cr3t-pw" not in (tmp_path / "s.jsonl").read_text()
    assert redact("GET http://alice:s3cr3t-pw@host:1/v1") == "GET http://***@host:1/v1"
