"""Issue 16: the OpenAI Batch API teacher (``openai-batch:MODEL``) against the loopback stand-in's Files and
Batches API — success, a failed request line, an expired batch, a slow batch, resume after a kill without a
second submission, every record accounted for — and its dry run at batch prices."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import ConfigError
from ade_distill.records import read_examples
from ade_distill.teacher import batch as batch_mod
from ade_distill.teacher.backends import make_backend, parse_teacher_spec
from ade_distill.teacher.batch import BatchConfig, state_path
from ade_distill.teacher.cost import PriceTable
from ade_distill.teacher.label import RetryPolicy, estimate_job, label_examples
from ade_distill.teacher.standin import StandinServer
from tests.teacher.conftest import write_inputs

MODEL = "gpt-4-1106-preview"
FAST = RetryPolicy(attempts=3, initial=0.01, max_wait=0.1)
POLL = BatchConfig(poll_interval_s=0.02)


def _label(task, srv, inputs, out, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("batch", POLL)
    return label_examples(task, f"openai-batch:{srv.url}:{MODEL}", inputs, out, progress=False, **kw)


def _statuses(out: Path) -> dict[str, str]:
    return {r.id: r.meta["status"] for r in read_examples(out)}


def _submitted_lines(srv: StandinServer) -> list[list[str]]:
    """The custom_ids of each batch the stand-in received, in order."""
    api = srv.batch_api
    return [[json.loads(x)["custom_id"] for x in api.contents[b["input_file_id"]].decode().splitlines()]
            for b in api.batches.values()]


def test_spec_forms():
    assert parse_teacher_spec("openai-batch:gpt-4o-mini").url is None
    s = parse_teacher_spec("openai-batch:http://127.0.0.1:9/v1:gpt-4o-mini")
    assert (s.kind, s.url, s.model) == ("openai-batch", "http://127.0.0.1:9/v1", "gpt-4o-mini")
    s = parse_teacher_spec("azure-batch:https://x.openai.azure.com:my-deployment")
    assert (s.url, s.model) == ("https://x.openai.azure.com", "my-deployment")
    with pytest.raises(ConfigError, match="local-only"):
        make_backend("openai-batch:gpt-4o-mini", local_only=True, require_key=False)


def test_batch_success_matches_the_synchronous_records(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:8]
    with StandinServer(json_recordings, batch_in_progress_polls=3) as srv:
        s = _label(ade_task, srv, inputs, tmp_path / "b.jsonl")
        calls = dict(srv.api_calls)
        sync = label_examples(ade_task, f"openai-compatible:{srv.url}:{MODEL}", inputs, tmp_path / "s.jsonl",
                              progress=False, retry=FAST)
    assert s.status["ok"] == 8 and s.records == 8 and s.remaining == 0 and s.batches_pending == 0
    assert calls["files.upload"] == 1 and calls["batches.create"] == 1 and calls["batches.retrieve"] == 4
    batch_recs, sync_recs = list(read_examples(tmp_path / "b.jsonl")), list(read_examples(tmp_path / "s.jsonl"))
    prices = PriceTable.load()
    for b, y in zip(batch_recs, sync_recs, strict=True):  # the same parse → ground path: the same records
        assert (b.id, b.spans, b.relations) == (y.id, y.spans, y.relations)
        assert b.meta["usage"] == y.meta["usage"] and b.meta["batch_id"] == "batch_standin1"
        full = prices.cost(MODEL, b.meta["usage"]["prompt_tokens"], b.meta["usage"]["completion_tokens"])
        assert b.meta["cost_usd"] == pytest.approx(full / 2, abs=1e-8) == pytest.approx(y.meta["cost_usd"] / 2)
    assert s.cost_usd == pytest.approx(sync.cost_usd / 2) and s.prices == "batch prices"
    assert not state_path(tmp_path / "b.jsonl").exists()  # every record written: the state is gone


def test_failed_request_line_is_error_and_only_it_is_resubmitted(tmp_path, ade_task, json_recordings,
                                                                 sample_inputs):
    inputs = sample_inputs[:6]
    out = tmp_path / "o.jsonl"
    with StandinServer(json_recordings, faults_by_text={inputs[1].text: ["500"], inputs[4].text: ["401"]}) as srv:
        s = _label(ade_task, srv, inputs, out)
        st = _statuses(out)
        assert [st[e.id] for e in inputs] == ["ok", "error", "ok", "ok", "error", "ok"]
        assert s.status["ok"] + s.status["error"] + s.status["expired"] == len(inputs) == s.records
        errs = {r.id: r.meta["error"] for r in read_examples(out) if r.meta["status"] == "error"}
        assert "HTTP 500" in errs[inputs[1].id] and "HTTP 401" in errs[inputs[4].id]
        s2 = _label(ade_task, srv, inputs, out)  # the rerun submits the two failed requests only
        assert _submitted_lines(srv)[1] == [inputs[1].id, inputs[4].id]
    assert s2.status["ok"] == 6 and s2.records == 6 and [r.id for r in read_examples(out)] == [e.id for e in inputs]


def test_expired_batch_keeps_partial_output_and_counts_the_rest(tmp_path, ade_task, json_recordings,
                                                                sample_inputs):
    inputs = sample_inputs[:7]
    out = tmp_path / "o.jsonl"
    with StandinServer(json_recordings, batch_expire_after=4, batch_in_progress_polls=1) as srv:
        s = _label(ade_task, srv, inputs, out)
        assert [_statuses(out)[e.id] for e in inputs] == ["ok"] * 4 + ["expired"] * 3
        assert s.status["expired"] == 3 and sum(s.status.values()) == len(inputs)
        assert srv.batch_api.batches["batch_standin1"]["status"] == "expired"
        srv.batch_api.expire_after = None
        s2 = _label(ade_task, srv, inputs, out)
        assert _submitted_lines(srv)[1] == [e.id for e in inputs[4:]]
        assert srv.total_requests == 7  # every request answered once: nothing paid twice
    assert s2.status["ok"] == 7 and s2.status["expired"] == 0


class Killed(Exception):
    """Stands for a kill right after the batch id reached the state file."""


def test_resume_after_kill_polls_the_same_batch(tmp_path, ade_task, json_recordings, sample_inputs, monkeypatch):
    inputs = sample_inputs[:5]
    out = tmp_path / "o.jsonl"
    real_save = batch_mod._save_state

    def save_then_die(path, state):
        real_save(path, state)
        if any(p.batch_id for p in state.parts):
            raise Killed

    with StandinServer(json_recordings, batch_in_progress_polls=2) as srv:
        monkeypatch.setattr(batch_mod, "_save_state", save_then_die)
        with pytest.raises(Killed):
            _label(ade_task, srv, inputs, out)
        monkeypatch.setattr(batch_mod, "_save_state", real_save)
        saved = json.loads(state_path(out).read_text())
        assert saved["parts"][0]["batch_id"] == "batch_standin1"
        assert saved["parts"][0]["ids"] == [e.id for e in inputs] and saved["parts"][0]["input_file_id"]
        s = _label(ade_task, srv, inputs, out)
        assert srv.api_calls["files.upload"] == 1 and srv.api_calls["batches.create"] == 1
    assert s.status["ok"] == 5 and [r.meta["batch_id"] for r in read_examples(out)] == ["batch_standin1"] * 5


def test_a_create_whose_answer_was_lost_is_found_not_repeated(tmp_path, ade_task, json_recordings, sample_inputs,
                                                              monkeypatch):
    from ade_distill.teacher.backends.base import TransientError
    from ade_distill.teacher.backends.openai_batch import OpenAIBatchBackend

    real_create = OpenAIBatchBackend.create

    async def create_then_drop(self, input_file_id, metadata=None):
        await real_create(self, input_file_id, metadata)
        raise TransientError("connection dropped after the batch was created")

    monkeypatch.setattr(OpenAIBatchBackend, "create", create_then_drop)
    with StandinServer(json_recordings) as srv:
        s = _label(ade_task, srv, sample_inputs[:3], tmp_path / "o.jsonl")
        assert srv.api_calls["batches.create"] == 1 and srv.api_calls["batches.list"] == 2
    assert s.status["ok"] == 3


def test_submit_and_return_then_collect_and_options_must_match(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:4]
    out = tmp_path / "o.jsonl"
    with StandinServer(json_recordings, batch_in_progress_polls=1) as srv:
        s = _label(ade_task, srv, inputs, out, batch=BatchConfig(max_wait_s=0, poll_interval_s=0.02))
        assert s.batches_pending == 1 and s.records == 0 and s.remaining == 4 and state_path(out).exists()
        with pytest.raises(ConfigError, match="other prompts or generation options"):
            _label(ade_task, srv, inputs, out, max_tokens=99)
        s = _label(ade_task, srv, inputs, out)
        assert s.status["ok"] == 4 and srv.api_calls["batches.create"] == 1 and not state_path(out).exists()


def test_split_into_several_batches_and_cancelled_batch(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:5]
    with StandinServer(json_recordings, batch_in_progress_polls=1) as srv:
        s = _label(ade_task, srv, inputs, tmp_path / "a.jsonl", batch=BatchConfig(max_requests=2, poll_interval_s=0.02))
        assert [len(x) for x in _submitted_lines(srv)] == [2, 2, 1] and s.status["ok"] == 5
        out = tmp_path / "other" / "c.jsonl"  # another folder: another response cache (a.jsonl's answers are cached)
        _label(ade_task, srv, inputs[:2], out, batch=BatchConfig(max_wait_s=0, poll_interval_s=0.02))
        bid = json.loads(state_path(out).read_text())["parts"][0]["batch_id"]
        srv.batch_api.cancel(bid)
        s = _label(ade_task, srv, inputs[:2], out)
    assert s.status["error"] == 2 and all("batch cancelled" in r.meta["error"] for r in read_examples(out))


def test_dry_run_at_batch_prices_is_half_the_synchronous_estimate(tmp_path, ade_task, sample_inputs, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "none.jsonl"
    sync = estimate_job(ade_task, "openai:gpt-4o-mini", sample_inputs, out)
    bat = estimate_job(ade_task, "openai-batch:gpt-4o-mini", sample_inputs, out)
    assert (bat.prompt_tokens, bat.completion_tokens) == (sync.prompt_tokens, sync.completion_tokens)
    assert bat.cost_usd == pytest.approx(sync.cost_usd / 2) and bat.cost_usd > 0 and bat.prices == "batch prices"
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs)
    r = CliRunner().invoke(app, ["label", "--teacher", "openai-batch:gpt-4o-mini", "--input", str(inp), "--out",
                                 str(out), "--dry-run", "--summary-json", str(tmp_path / "est.json")])
    assert r.exit_code == 0, r.output
    assert "at batch prices" in r.output and "No call was made" in r.output
    assert json.loads((tmp_path / "est.json").read_text())["cost_usd"] == pytest.approx(sync.cost_usd / 2)


def test_price_table_batch_rule_and_override(tmp_path):
    p = PriceTable.load().lookup("gpt-4o-mini")
    assert (p.batch().input, p.batch().output) == (p.input / 2, p.output / 2)
    f = tmp_path / "prices.yaml"
    f.write_text("my-model: {input: 1.0, output: 2.0, batch_input: 0.9, batch_output: 1.9}\n")
    b = PriceTable.load(f).for_batch().lookup("my-model")
    assert (b.input, b.output) == (0.9, 1.9)
    f.write_text("my-model: {input: 1.0, output: 2.0, batch_inptu: 0.9}\n")
    with pytest.raises(ConfigError, match="batch_input"):
        PriceTable.load(f)


def test_cli_killed_while_polling_then_rerun_collects_without_resubmitting(tmp_path, json_recordings,
                                                                           sample_inputs):
    inputs = sample_inputs[:6]
    inp = write_inputs(tmp_path / "in.jsonl", inputs)
    out = tmp_path / "o.jsonl"
    with StandinServer(json_recordings, faults_by_text={inputs[2].text: ["500"]},
                       batch_in_progress_polls=10**6) as srv:  # runs until the kill
        args = ["label", "--teacher", f"openai-batch:{srv.url}:{MODEL}", "--input", str(inp), "--out", str(out),
                "--no-progress", "--poll-interval", "0.05", "--retries", "1", "--backoff", "0.01"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "ade_distill", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 90
        while srv.api_calls["batches.retrieve"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert srv.api_calls["batches.retrieve"] >= 2, "the job never polled"
        assert json.loads(state_path(out).read_text())["parts"][0]["batch_id"] == "batch_standin1"
        srv.batch_api.in_progress_polls = 0  # the batch ends
        r = CliRunner().invoke(app, [*args, "--summary-json", str(tmp_path / "sum.json")])
        assert srv.api_calls["files.upload"] == 1 and srv.api_calls["batches.create"] == 1
    assert r.exit_code == 1, r.output  # a failed request line fails the command, as for `label` today
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert summary["status"]["ok"] == 5 and summary["status"]["error"] == 1 and summary["records"] == 6
    assert sorted(_statuses(out)) == sorted(e.id for e in inputs)


def test_azure_batch_through_the_stand_in(tmp_path, ade_task, json_recordings, sample_inputs, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-test-key")
    with StandinServer(json_recordings) as srv:
        root = srv.url.removesuffix("/v1")  # Azure's client adds /openai/files, /openai/batches
        s = label_examples(ade_task, f"azure-batch:{root}:{MODEL}", sample_inputs[:3], tmp_path / "o.jsonl",
                           progress=False, retry=FAST, batch=POLL)
        batch = srv.batch_api.batches["batch_standin1"]
        line = json.loads(srv.batch_api.contents[batch["input_file_id"]].decode().splitlines()[0])
    assert s.status["ok"] == 3 and batch["endpoint"] == "/chat/completions"
    assert line["url"] == "/chat/completions" and line["body"]["model"] == MODEL


def test_a_batch_job_respects_the_output_lock(tmp_path, ade_task, json_recordings, sample_inputs):
    from ade_distill.teacher.outlock import exclusive_output

    out = tmp_path / "o.jsonl"
    with StandinServer(json_recordings) as srv, exclusive_output(out):
        with pytest.raises(ConfigError, match="another label run"):
            _label(ade_task, srv, sample_inputs[:2], out)
        assert srv.api_calls["files.upload"] == 0 and not state_path(out).exists()


def test_reruns_of_a_pending_job_never_submit_past_the_budget(tmp_path, ade_task, json_recordings, sample_inputs):
    inputs = sample_inputs[:6]
    out = tmp_path / "o.jsonl"
    (tmp_path / "est").mkdir()
    with StandinServer(json_recordings, batch_in_progress_polls=10**6) as srv:  # the batches keep running
        teacher = f"openai-batch:{srv.url}:{MODEL}"
        est = {e.id: estimate_job(ade_task, teacher, [e], tmp_path / "est" / f"{k}.jsonl").cost_usd
               for k, e in enumerate(inputs)}
        budget = est[inputs[0].id] + est[inputs[1].id] + est[inputs[2].id] / 2  # room for two records
        for _ in range(3):  # submit and return, three times over
            s = _label(ade_task, srv, inputs, out, max_cost=budget,
                       batch=BatchConfig(max_wait_s=0, poll_interval_s=0.02))
            submitted = [i for ids in _submitted_lines(srv) for i in ids]
            assert sum(est[i] for i in submitted) <= budget
            assert s.stopped_by_budget and s.batches_pending == 1 and s.records == 0
        assert submitted == [inputs[0].id, inputs[1].id] and srv.api_calls["batches.create"] == 1
        parts = json.loads(state_path(out).read_text())["parts"]
        assert sum(p["est_cost_usd"] for p in parts) == pytest.approx(est[inputs[0].id] + est[inputs[1].id])
        srv.batch_api.in_progress_polls = 0  # the batch ends: this run collects it, submitting nothing more
        s = _label(ade_task, srv, inputs, out, max_cost=budget)
        assert s.records == 2 and srv.api_calls["batches.create"] == 1 and not state_path(out).exists()
        s = _label(ade_task, srv, inputs, out, max_cost=budget)  # collected and written: the budget is free again
        assert _submitted_lines(srv)[1] == [inputs[2].id, inputs[3].id] and s.records == 4


def test_a_part_half_written_before_a_kill_is_still_checked_against_the_options(tmp_path, ade_task, json_recordings,
                                                                                 sample_inputs, monkeypatch):
    inputs = sample_inputs[:4]
    out = tmp_path / "o.jsonl"
    real_appender = batch_mod.JsonlAppender

    class DieAfterTwo(real_appender):
        written = 0

        def write(self, example):
            if DieAfterTwo.written == 2:
                raise Killed
            DieAfterTwo.written += 1
            super().write(example)

    with StandinServer(json_recordings) as srv:
        monkeypatch.setattr(batch_mod, "JsonlAppender", DieAfterTwo)
        with pytest.raises(Killed):
            _label(ade_task, srv, inputs, out)
        monkeypatch.setattr(batch_mod, "JsonlAppender", real_appender)
        assert len(list(read_examples(out))) == 2 and state_path(out).exists()
        for other in ({"max_tokens": 99}, {"shots": 1}):  # the answers of the rest must not be cached as theirs
            with pytest.raises(ConfigError, match="other prompts or generation options"):
                _label(ade_task, srv, inputs, out, **other)
        assert srv.api_calls["files.content"] == 1
        s = _label(ade_task, srv, inputs, out)  # the options that submitted it: the rest is written
        assert srv.api_calls["batches.create"] == 1
    assert s.status["ok"] == 4 and [r.id for r in read_examples(out)] == [e.id for e in inputs]


def test_a_broken_result_line_is_counted_and_its_record_is_an_error(tmp_path, ade_task, json_recordings,
                                                                    sample_inputs, caplog):
    inputs = sample_inputs[:5]
    out = tmp_path / "o.jsonl"
    bad = {inputs[1].text: "no_custom_id", inputs[3].text: "not_json"}
    with StandinServer(json_recordings, batch_bad_lines=bad) as srv:
        with caplog.at_level("WARNING", logger="ade_distill.teacher.batch"):
            s = _label(ade_task, srv, inputs, out)
        assert [_statuses(out)[e.id] for e in inputs] == ["ok", "error", "ok", "error", "ok"]
        assert s.status["ok"] == 3 and s.status["error"] == 2 and s.records == 5
        assert s.bad_result_lines == 2 and s.to_dict()["bad_result_lines"] == 2
        errs = {r.id: r.meta["error"] for r in read_examples(out) if r.meta["status"] == "error"}
        assert all("2 result lines of this batch could not be read" in m for m in errs.values())
        assert sum("could not read a result line" in r.getMessage() for r in caplog.records) == 2
        s2 = _label(ade_task, srv, inputs, out)  # the two are resubmitted, and answered this time
        assert _submitted_lines(srv)[1] == [inputs[1].id, inputs[3].id]
    assert s2.status["ok"] == 5 and s2.bad_result_lines == 0


@pytest.mark.parametrize(("teacher", "args", "ignored"), [
    ("openai:gpt-4o-mini", ["--max-wait", "0", "--poll-interval", "5"], ["--poll-interval", "--max-wait"]),
    ("openai-batch:gpt-4o-mini", ["--concurrency", "4"], ["--concurrency"]),
    ("openai-batch:gpt-4o-mini", ["--max-wait", "0", "--poll-interval", "5"], []),
    ("openai:gpt-4o-mini", ["--concurrency", "4"], []),
])
def test_cli_warns_of_options_the_teacher_ignores(tmp_path, sample_inputs, monkeypatch, teacher, args, ignored):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:2])
    r = CliRunner().invoke(app, ["label", "--teacher", teacher, "--input", str(inp), "--out",
                                 str(tmp_path / "o.jsonl"), "--dry-run", *args])
    assert r.exit_code == 0, r.output
    warned = [line for line in r.stderr.splitlines() if "ignored" in line]
    assert len(warned) == (1 if ignored else 0) and all(opt in warned[0] for opt in ignored)
    assert "ignored" not in r.stdout


def test_cli_budget_message_of_a_batch_teacher_names_the_batches_still_to_collect(tmp_path, json_recordings,
                                                                                 sample_inputs):
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:3])
    with StandinServer(json_recordings, batch_in_progress_polls=10**6) as srv:
        args = ["label", "--teacher", f"openai-batch:{srv.url}:{MODEL}", "--input", str(inp), "--out",
                str(tmp_path / "o.jsonl"), "--no-progress", "--max-wait", "0", "--max-cost", "0.000001"]
        r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    said = " ".join(r.stdout.split())  # rich wraps long lines
    assert "stopped at the budget" in said and "not yet written" in said and "ignored" not in r.output
