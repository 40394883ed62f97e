"""The labeling job end to end: full replay, fault injection against the stand-in server, budget, secrets."""

from __future__ import annotations

import json
import logging

import pytest

from ade_distill.errors import BackendError
from ade_distill.records import read_examples
from ade_distill.teacher.label import RetryPolicy, label_examples
from ade_distill.teacher.standin import StandinServer

FAST = RetryPolicy(attempts=4, initial=0.01, max_wait=2.0)
MODEL = "gpt-4-1106-preview"


def test_full_replay_of_recorded_gpt4_json_run(tmp_path, ade_task, ade_positive, json_recordings_path):
    out = tmp_path / "silver.jsonl"
    s = label_examples(ade_task, f"replay:{json_recordings_path}", ade_positive, out, progress=False)
    recs = list(read_examples(out))
    assert len(recs) == s.records == 4271 and s.inputs == len(ade_positive)
    assert s.refused == 29 and s.truncated == 9 and s.status["no_recording"] == 0
    assert sum(len(r.meta["source_ids"]) for r in recs) == len(ade_positive)
    refused = [r for r in recs if r.meta["status"] == "refused"]
    assert all(not r.relations and r.meta["finish_reason"] == "content_filter" for r in refused)
    truncated = [r for r in recs if r.meta["status"] == "truncated"]
    assert sum(len(r.relations) for r in truncated) > 9  # complete items of cut-off answers are kept
    assert s.args["exact"] > 0.9 * sum(s.args.values())
    for r in recs:  # ungrounded strings never carry offsets; grounded ones match the text
        for sp in r.spans:
            assert (sp.start is None) == (sp.alignment.value == "unaligned")
    d = s.to_dict()
    assert d["records"] == 4271 and set(d["grounding_rate"]) == {"exact", "case_insensitive", "normalized",
                                                                  "fuzzy", "unaligned"}


def test_replay_miss_is_counted_as_no_recording(tmp_path, ade_task, json_recordings_path, sample_inputs):
    from ade_distill.records import Example

    inputs = [*sample_inputs[:3], Example(id="new_1", text="A sentence nobody recorded."), sample_inputs[0]]
    s = label_examples(ade_task, f"replay:{json_recordings_path}", inputs, tmp_path / "o.jsonl", progress=False)
    recs = list(read_examples(tmp_path / "o.jsonl"))
    assert [r.meta["status"] for r in recs][-1] == "no_recording"
    assert s.status["no_recording"] == 1 and s.records == 4 and s.inputs == 5
    assert recs[0].meta["source_ids"] == [sample_inputs[0].id, sample_inputs[0].id]


def _run(task, srv, inputs, out, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 1.0)
    return label_examples(task, f"openai-compatible:{srv.url}:{MODEL}", inputs, out, progress=False, **kw)


def test_fault_injection_every_record_accounted_for(tmp_path, ade_task, json_recordings, sample_inputs):
    texts = [e.text for e in sample_inputs]
    faults = {
        texts[0]: ["429", "429"], texts[1]: ["500", "500"], texts[2]: ["hang"], texts[3]: ["drop"],
        texts[4]: ["malformed"], texts[5]: ["content_filter"], texts[6]: ["length"],
        texts[7]: ["500", "500", "500", "500"],  # as many failures as attempts → status error
    }
    with StandinServer(json_recordings, faults_by_text=faults, retry_after_s=0.2, hang_s=2.0, latency_s=0.01) as srv:
        s = _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", concurrency=8)
        assert srv.faults_served["429"] == 2 and srv.faults_served["hang"] == 1
        recs = list(read_examples(tmp_path / "o.jsonl"))
        # a rerun on the same endpoint relabels the error record (the server now answers), the rest from the cache
        before = srv.total_requests
        s2 = _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", concurrency=8)
        assert srv.total_requests - before == 1
    assert [r.id for r in recs] == [e.id for e in sample_inputs]  # input order, all accounted for
    st = {r.text: r.meta["status"] for r in recs}
    assert st[texts[5]] == "refused" and st[texts[6]] == "truncated" and st[texts[7]] == "error"
    assert all(st[t] == "ok" for t in texts[:5])
    assert s.records == 40 and s.status["error"] == 1 and s.retries >= 8
    recs2 = list(read_examples(tmp_path / "o.jsonl"))
    assert len(recs2) == 40 and s2.status["error"] == 0 and s2.cache_hits == 32


def test_auth_error_fails_fast_and_keeps_finished_prefix(tmp_path, ade_task, json_recordings, sample_inputs):
    with StandinServer(json_recordings, faults_by_text={sample_inputs[5].text: ["401"]}) as srv:
        with pytest.raises(BackendError, match="401"):
            _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", concurrency=1)
        assert srv.total_requests == 6
    assert len(list(read_examples(tmp_path / "o.jsonl"))) == 5


def test_insufficient_quota_429_fails_fast_instead_of_retrying(tmp_path, ade_task, json_recordings, sample_inputs):
    # OpenAI answers an account out of credit with 429 code insufficient_quota: no retry can cure it, so the job
    # must stop at once like an auth error (not retry every record and write them all as status error).
    with StandinServer(json_recordings, faults_by_text={sample_inputs[3].text: ["quota", "quota", "quota", "quota"]}) as srv:
        with pytest.raises(BackendError, match="insufficient quota"):
            _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", concurrency=1)
        assert srv.faults_served["quota"] == 1 and srv.total_requests == 4
    assert len(list(read_examples(tmp_path / "o.jsonl"))) == 3


def test_budget_stops_cleanly_and_resumes(tmp_path, ade_task, json_recordings, sample_inputs):
    with StandinServer(json_recordings) as srv:
        ref = _run(ade_task, srv, sample_inputs, tmp_path / "ref.jsonl", cache_path=tmp_path / "ref.sqlite")
        s1 = _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", max_cost=0.02, concurrency=1)
        assert s1.stopped_by_budget and 0 < s1.records < 40 and s1.remaining == 40 - s1.records
        assert s1.spent_usd >= 0.02
        s2 = _run(ade_task, srv, sample_inputs, tmp_path / "o.jsonl", max_cost=10.0, concurrency=4)
    assert s2.records == 40 and s2.remaining == 0 and s2.resumed == s1.records and ref.records == 40
    assert (tmp_path / "o.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()


def test_api_key_never_written_to_disk_or_logs(tmp_path, ade_task, json_recordings, sample_inputs, monkeypatch,
                                               caplog):
    secret = "sk-test-SECRETVALUE-1234567890abcdef"
    monkeypatch.setenv("ADE_DISTILL_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    inputs = sample_inputs[:12]
    with StandinServer(json_recordings, faults_by_text={inputs[2].text: ["500", "500", "500", "500"],
                                                        inputs[8].text: ["401"]}) as srv:
        with pytest.raises(BackendError) as info:
            _run(ade_task, srv, inputs, tmp_path / "o.jsonl", concurrency=1, cache_path=tmp_path / "c.sqlite")
        assert f"Bearer {secret}" in srv.auth_headers_seen  # the key was used...
    assert secret not in str(info.value)
    assert secret not in caplog.text
    for f in tmp_path.rglob("*"):  # ...but is nowhere on disk: output, cache, WAL
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    recs = list(read_examples(tmp_path / "o.jsonl"))
    assert recs[2].meta["status"] == "error" and secret not in json.dumps(recs[2].meta)


def test_function_mode_and_concurrency_output_identical(tmp_path, ade_task, teacher_outputs_dir, sample_inputs):
    from ade_distill.teacher.backends.replay import load_recordings

    recs, _ = load_recordings(teacher_outputs_dir / "ade_gpt-4-1106-preview_function-call.jsonl")
    with StandinServer(recs, latency_s=0.01) as srv:
        _run(ade_task, srv, sample_inputs, tmp_path / "a.jsonl", concurrency=1, response_format="function",
             cache_path=tmp_path / "a.sqlite")
        _run(ade_task, srv, sample_inputs, tmp_path / "b.jsonl", concurrency=16, response_format="function",
             cache_path=tmp_path / "b.sqlite")
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a == (tmp_path / "b.jsonl").read_bytes()
    first = next(read_examples(tmp_path / "a.jsonl"))
    assert first.meta["status"] == "ok" and first.relations and first.meta["prompt_hash"]


def test_resume_with_extended_input_keeps_every_input_id(tmp_path, ade_task, json_recordings_path, sample_inputs):
    from ade_distill.records import Example

    out = tmp_path / "o.jsonl"
    replay = f"replay:{json_recordings_path}"
    label_examples(ade_task, replay, sample_inputs[:3], out, progress=False)
    # the input grows; a new id repeats the text of a record written by the first run
    again = Example(id="dup_of_0", text=sample_inputs[0].text)
    inputs = [*sample_inputs[:4], again]
    s = label_examples(ade_task, replay, inputs, out, progress=False)
    recs = list(read_examples(out))
    assert [r.id for r in recs] == [e.id for e in sample_inputs[:4]] and s.resumed == 3
    assert recs[0].meta["source_ids"] == [sample_inputs[0].id, "dup_of_0"]
    assert sum(len(r.meta["source_ids"]) for r in recs) == s.inputs == 5


def test_out_from_another_input_is_refused(tmp_path, ade_task, json_recordings_path, sample_inputs):
    from ade_distill.errors import ConfigError

    out = tmp_path / "o.jsonl"
    label_examples(ade_task, f"replay:{json_recordings_path}", sample_inputs[:3], out, progress=False)
    with pytest.raises(ConfigError, match="another job"):
        label_examples(ade_task, f"replay:{json_recordings_path}", sample_inputs[5:9], out, progress=False)


def test_label_examples_works_inside_a_running_event_loop(tmp_path) -> None:
    """Notebook users call label_examples from a cell, where an asyncio loop is already running."""
    import asyncio

    from ade_distill.records import Example
    from ade_distill.tasks import load_task
    from ade_distill.teacher.label import label_examples

    rec = tmp_path / "rec.jsonl"
    rec.write_text('{"text": "Aspirin caused rash.", "finish_reason": "stop", "function_call": null, '
                   '"content": "{\\"relations\\": [{\\"drug\\": \\"Aspirin\\", \\"ade\\": \\"rash\\"}]}", '
                   '"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n')

    async def inside_loop() -> int:
        summary = label_examples(load_task("ade"), f"replay:{rec}", [Example(id="a", text="Aspirin caused rash.")],
                                 tmp_path / "out.jsonl", progress=False)
        return summary.records

    assert asyncio.run(inside_loop()) == 1
