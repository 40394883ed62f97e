"""Labeling throughput against the loopback stand-in server (200 ms per response): concurrency 32 vs 1.

    python benchmarks/bench_teacher.py [--latency 0.2] [--n1 100] [--n32 400]

Both runs use a fresh cache and output, the same recorded GPT-4 responses and the same job code; the baseline
(concurrency 1) is measured in the same run. Target: ratio >= 20.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from ade_distill.data.corpora import load_corpus
from ade_distill.paths import data_dir
from ade_distill.records import Example
from ade_distill.tasks.spec import load_task
from ade_distill.teacher.label import label_examples
from ade_distill.teacher.standin import StandinServer


def _inputs(n: int) -> list[Example]:
    seen: set[str] = set()
    out = []
    for ex in load_corpus("ade-positive"):
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(Example(id=ex.id, text=ex.text))
        if len(out) == n:
            break
    return out


def _run(url: str, inputs: list[Example], concurrency: int, work: Path) -> float:
    out = work / f"c{concurrency}.jsonl"
    t0 = time.perf_counter()
    s = label_examples(load_task("ade"), f"openai-compatible:{url}:gpt-4-1106-preview", inputs, out,
                       cache_path=work / f"c{concurrency}.sqlite", concurrency=concurrency, progress=False)
    dt = time.perf_counter() - t0
    assert s.records == len(inputs) and s.status["error"] == 0, s.to_dict()
    return len(inputs) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--n1", type=int, default=100, help="records labeled at concurrency 1")
    ap.add_argument("--n32", type=int, default=400, help="records labeled at concurrency 32")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rec = data_dir() / "teacher_outputs" / "ade_gpt-4-1106-preview_json.jsonl"
    inputs = _inputs(max(args.n1, args.n32))
    with StandinServer(rec, latency_s=args.latency) as srv, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        r1 = _run(srv.url, inputs[: args.n1], 1, work)
        r32 = _run(srv.url, inputs[: args.n32], 32, work)
    print(f"stand-in latency {args.latency * 1000:.0f} ms per response")
    print(f"concurrency  1: {args.n1:4d} records, {r1:8.2f} records/s")
    print(f"concurrency 32: {args.n32:4d} records, {r32:8.2f} records/s")
    print(f"ratio: {r32 / r1:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
