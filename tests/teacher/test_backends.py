import asyncio

import pytest

from ade_distill.errors import ConfigError
from ade_distill.teacher.backends import check_local_host, make_backend, parse_teacher_spec
from ade_distill.teacher.backends.base import TeacherRequest
from ade_distill.teacher.backends.openai_backend import parse_retry_after


@pytest.mark.parametrize(
    ("spec", "kind", "url", "model"),
    [
        ("openai:gpt-4o", "openai", None, "gpt-4o"),
        ("openai-compatible:http://127.0.0.1:8000/v1:Qwen/Qwen2.5-7B", "openai-compatible", "http://127.0.0.1:8000/v1",
         "Qwen/Qwen2.5-7B"),
        ("openai-compatible:http://localhost:11434/v1:llama3:8b", "openai-compatible", "http://localhost:11434/v1",
         "llama3:8b"),
        ("azure:https://res.openai.azure.com:gpt4o-deploy", "azure", "https://res.openai.azure.com", "gpt4o-deploy"),
        ("hf:/models/qwen", "hf", None, "/models/qwen"),
        ("replay:/x/y.jsonl", "replay", None, "/x/y.jsonl"),
    ],
)
def test_parse_teacher_spec(spec, kind, url, model):
    ts = parse_teacher_spec(spec)
    assert (ts.kind, ts.url, ts.model) == (kind, url, model)


@pytest.mark.parametrize("spec", ["gpt-4o", "claude:x", "openai:", "openai-compatible:notaurl"])
def test_bad_specs(spec):
    with pytest.raises(ConfigError):
        parse_teacher_spec(spec)


def test_local_only(monkeypatch):
    for host in ("127.0.0.1", "localhost", "10.1.2.3", "172.16.0.5", "192.168.1.1", "::1"):
        check_local_host(host)
    for host in ("8.8.8.8", "172.32.0.1", "2001:4860:4860::8888"):
        with pytest.raises(ConfigError, match="local"):
            check_local_host(host)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    with pytest.raises(ConfigError, match="local-only"):
        make_backend("openai:gpt-4o", local_only=True)
    with pytest.raises(ConfigError, match="non-local"):
        make_backend("openai-compatible:http://8.8.8.8/v1:m", local_only=True)
    make_backend("openai-compatible:http://127.0.0.1:9/v1:m", local_only=True)


def test_openai_needs_key_from_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_backend("openai:gpt-4o")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
        make_backend("azure:https://res.openai.azure.com:dep")


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None


def test_replay_lookup_title_and_miss(tmp_path):
    rec = tmp_path / "r.jsonl"
    rec.write_text('{"title": "T.", "text": "Body.", "content": "{\\"relations\\": []}", "finish_reason": "stop", '
                   '"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}\n')
    b = make_backend(f"replay:{rec}")
    req = lambda t: TeacherRequest(messages=[], text=t, schema={})  # noqa: E731
    assert asyncio.run(b.complete(req("T. Body."))).usage == {"prompt_tokens": 1, "completion_tokens": 2}
    assert asyncio.run(b.complete(req("Body."))).found
    assert not asyncio.run(b.complete(req("other"))).found
    with pytest.raises(ConfigError):
        make_backend(f"replay:{tmp_path / 'missing.jsonl'}")
