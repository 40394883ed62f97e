"""The ``label`` command: replay, dry run, --local-only, and SIGKILL part-way then resume (byte-identical)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.teacher.standin import StandinServer
from tests.teacher.conftest import write_inputs

MODEL = "gpt-4-1106-preview"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ade_distill", *args]


def test_cli_replay_dry_run_and_local_only(tmp_path, json_recordings_path, json_recordings, sample_inputs,
                                           monkeypatch):
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs[:10])
    runner = CliRunner()
    r = runner.invoke(app, ["label", "--task", "ade", "--teacher", f"replay:{json_recordings_path}", "--input",
                            str(inp), "--out", str(tmp_path / "s.jsonl"), "--no-progress",
                            "--summary-json", str(tmp_path / "sum.json")])
    assert r.exit_code == 0, r.output
    assert "refused" in r.output and "exact" in r.output
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 10
    with StandinServer(json_recordings) as srv:
        r = runner.invoke(app, ["label", "--teacher", f"openai-compatible:{srv.url}:{MODEL}", "--input", str(inp),
                                "--out", str(tmp_path / "d.jsonl"), "--dry-run", "--local-only"])
        assert r.exit_code == 0, r.output
        assert "10 records to label" in r.output and "$" in r.output and "No call was made" in r.output
        assert srv.total_requests == 0 and not (tmp_path / "d.jsonl").exists()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-unused")
    p = subprocess.run(_cli("label", "--teacher", "openai:gpt-4o", "--input", str(inp), "--out",
                            str(tmp_path / "x.jsonl"), "--local-only"), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "local-only" in p.stderr


def test_sigkill_part_way_then_resume_is_identical(tmp_path, json_recordings, sample_inputs):
    inp = write_inputs(tmp_path / "in.jsonl", sample_inputs)
    with StandinServer(json_recordings, latency_s=0.15) as srv:
        teacher = f"openai-compatible:{srv.url}:{MODEL}"

        def args(out: Path) -> list[str]:
            return _cli("label", "--teacher", teacher, "--input", str(inp), "--out", str(out), "--concurrency", "2",
                        "--no-progress", "--cache", str(out.with_suffix(".sqlite")))

        ref = tmp_path / "ref.jsonl"
        subprocess.run(args(ref), check=True, capture_output=True, timeout=120)
        out = tmp_path / "killed.jsonl"
        proc = subprocess.Popen(args(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 8:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        lines_at_kill = out.read_bytes().count(b"\n")
        assert 8 <= lines_at_kill < 40
        before = srv.total_requests
        subprocess.run(args(out), check=True, capture_output=True, timeout=120)
        new_calls = srv.total_requests - before
    assert out.read_bytes() == ref.read_bytes()
    # nothing finished before the kill was paid for twice: at most the calls in flight at the kill are redone
    assert new_calls <= 40 - lines_at_kill
