import pytest

from ade_distill.errors import ConfigError
from ade_distill.teacher.backends.base import TeacherResponse
from ade_distill.teacher.cache import ResponseCache, cache_key
from ade_distill.teacher.cost import PriceTable
from ade_distill.teacher.prompts import extract_input_text, output_schema, render_prompt


def test_prompt_is_deterministic_and_hash_covers_demos(ade_task):
    a = render_prompt(ade_task, "Cough after enalapril.")
    b = render_prompt(ade_task, "Cough after enalapril.")
    c = render_prompt(ade_task, "Cough after enalapril.", ade_task.demonstrations[:2])
    assert a.hash == b.hash != c.hash
    assert a.template_version == "re.v1"
    assert [m["role"] for m in c.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert '"drug"' in a.messages[0]["content"] and "ADE" in a.messages[0]["content"]
    assert extract_input_text(a.messages[-1]["content"]) == "Cough after enalapril."


def test_unknown_template_is_a_config_error(ade_task):
    bad = ade_task.model_copy(update={"prompt_template": "re.v99"})
    with pytest.raises(ConfigError, match="re.v99"):
        render_prompt(bad, "x")


def test_output_schema_keys(ade_task):
    s = output_schema(ade_task)
    assert s["properties"]["relations"]["items"]["required"] == ["drug", "ade"]


def test_price_table_prefix_and_override(tmp_path):
    t = PriceTable.load()
    assert t.cost("gpt-4-1106-preview", 1_000_000, 1_000_000) == pytest.approx(40.0)
    assert t.lookup("gpt-4o-mini-2024-07-18").input == 0.15  # longest prefix wins over gpt-4o
    assert t.lookup("gpt-3.5-turbo-0125").output == 1.5
    assert t.lookup("llama3") is None
    user = tmp_path / "p.yaml"
    user.write_text("llama3: {input: 0.1, output: 0.2}\ngpt-4o: {input: 1, output: 2}\n")
    t2 = PriceTable.load(user)
    assert t2.lookup("llama3").output == 0.2 and t2.lookup("gpt-4o").input == 1.0
    user.write_text("x: {input: -1, output: 2}\n")
    with pytest.raises(ConfigError, match="x"):
        PriceTable.load(user)


def test_cache_roundtrip_and_key_identity(tmp_path):
    base = dict(kind="openai-compatible", model="m", endpoint="http://127.0.0.1:8000/v1", params={"temperature": 0.0},
                response_format="auto", template_version="re.v1", messages=[{"role": "user", "content": "x"}])
    k = cache_key(**base)
    for change in ({"model": "m2"}, {"endpoint": "http://10.0.0.1:8000/v1"}, {"params": {"temperature": 0.5}},
                   {"template_version": "re.v2"}, {"messages": [{"role": "user", "content": "y"}]},
                   {"kind": "openai"}, {"response_format": "text"}):
        assert cache_key(**{**base, **change}) != k
    resp = TeacherResponse(content='{"relations": []}', finish_reason="stop", usage={"prompt_tokens": 3},
                           model="m", raw={"id": "c1"})
    with ResponseCache(tmp_path / "c.sqlite") as c:
        assert c.get(k) is None
        c.put(k, resp)
        assert k in c and len(c) == 1
    with ResponseCache(tmp_path / "c.sqlite") as c:
        assert c.get(k) == resp
