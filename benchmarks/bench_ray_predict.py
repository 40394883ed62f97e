"""Ray predict (`predict --engine ray`) vs single-process predict on the same shards, in one run: the overhead of
Ray at 1 worker and the speed-up at 2 workers on this machine, and what that projects for a cluster.

    HF_HUB_OFFLINE=1 python benchmarks/bench_ray_predict.py [--model runs/student] [--citations 604] [--shards 4]
    HF_HUB_OFFLINE=1 python benchmarks/bench_ray_predict.py --citations 24 --shards 2 --workers 1   # smoke

The shards are the shared MEDLINE baseline file (../shared/data/pubmed_unlabeled/medline16n0902.xml.gz: 604
citations, 526 with an abstract) cut into ``--shards`` gzipped MEDLINE XML files. Single-process predict runs
each shard with one loaded model (:func:`~ade_distill.student.shards.shard_records`, the loop of `ade-distill
predict`) at 1 and at 2 torch threads; the Ray engine runs the same shards with 1 torch thread per worker, started
from nothing (a local Ray, actors loading the model), as a user runs it. Printed: sentences/s of each (wall clock,
startup included) and the in-shard rate (sentences / seconds spent inside shards, startup excluded), and the
ratios against single-process measured in the same run. Every Ray output is checked byte for byte against the
single-process output at 1 thread.

Without --model a seeded, untrained MiniLM student is used (max_length 128): speed does not depend on training,
except that stage 2 runs once per predicted head mention.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PUBMED_SENTENCES = 360e6  # ~36 million abstracts x ~10 sentences (the estimate)


def _write_shards(src: Path, dest: Path, citations: int, n_shards: int) -> list[Path]:
    raw = gzip.open(src, "rt", encoding="utf-8").read()
    blocks = re.findall(r"(?s)<MedlineCitation\b.*?</MedlineCitation>", raw)[:citations]
    per = -(-len(blocks) // n_shards)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n_shards):
        part = blocks[k * per:(k + 1) * per]
        if not part:
            break
        p = dest / f"medline_part{k}.xml.gz"
        with gzip.open(p, "wt", encoding="utf-8") as fh:
            fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<MedlineCitationSet>\n' + "\n".join(part)
                     + "\n</MedlineCitationSet>\n")
        out.append(p)
    return out


def _single(model_dir: Path, shards: list[Path], out: Path, threads: int) -> dict[str, float]:
    """Single-process predict over every shard: one model load, then each shard in turn."""
    import torch

    from ade_distill.student.ensemble import load_extractor
    from ade_distill.student.shards import shard_key, shard_records, write_records_atomic

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = load_extractor([model_dir])
    t_load = time.perf_counter() - t0
    sentences = 0
    for p in shards:
        sentences += write_records_atomic(out / f"{shard_key(p)}.jsonl", shard_records(model, p))["sentences"]
    wall = time.perf_counter() - t0
    return {"sentences": sentences, "wall": wall, "in_shards": wall - t_load, "startup": t_load}


def _ray(model_dir: Path, shards: list[Path], out: Path, workers: int) -> dict[str, float]:
    from ade_distill.student.ray_engine import predict_ray

    t0 = time.perf_counter()
    summary = predict_ray([model_dir], [str(p) for p in shards], out, workers=workers, threads=1, progress=False)
    wall = time.perf_counter() - t0
    import json

    entries = json.loads((out / "manifest.json").read_text())["shards"].values()
    busy = sum(e["seconds"] for e in entries)  # seconds inside shards, summed over workers
    return {"sentences": summary["sentences"], "wall": wall, "in_shards": busy / summary["workers"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--medline", type=Path, default=None, help="MEDLINE XML (default: the shared baseline file)")
    ap.add_argument("--citations", type=int, default=604, help="citations taken from the file (all: 604)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to run")
    ap.add_argument("--cluster-workers", type=int, default=64, help="workers of the projected cluster")
    args = ap.parse_args()

    from ade_distill.paths import data_dir
    from ade_distill.student.model import StudentConfig, StudentExtractor
    from ade_distill.tasks.spec import load_task

    os.environ.pop("RAY_ADDRESS", None)  # always a local Ray: this measures this machine
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_predict_"))
    try:
        model_dir = args.model
        if model_dir is None:
            model_dir = tmp / "model"
            StudentExtractor.from_encoder(load_task("ade"), StudentConfig(encoder="minilm"), seed=0).save_pretrained(
                model_dir)
        src = args.medline or data_dir() / "pubmed_unlabeled" / "medline16n0902.xml.gz"
        shards = _write_shards(src, tmp / "in", args.citations, args.shards)
        print(f"model: {args.model or 'untrained MiniLM student'}; {len(shards)} shards of {src.name} "
              f"({args.citations} citations); {os.cpu_count()} CPUs")

        runs: dict[str, dict] = {}
        runs["single, 1 thread"] = _single(model_dir, shards, tmp / "single1", 1)
        runs["single, 2 threads"] = _single(model_dir, shards, tmp / "single2", 2)
        for w in args.workers:
            runs[f"ray, {w} worker{'s' if w > 1 else ''}"] = _ray(model_dir, shards, tmp / f"ray{w}", w)

        ref = {p.name: p.read_bytes() for p in (tmp / "single1").glob("*.jsonl")}
        for w in args.workers:
            got = {p.name: p.read_bytes() for p in (tmp / f"ray{w}").glob("*.jsonl")}
            print(f"ray, {w} workers: output {'identical to' if got == ref else 'DIFFERS from'} single-process")

        base = runs["single, 1 thread"]
        base_rate = base["sentences"] / base["wall"]
        base_in = base["sentences"] / base["in_shards"]
        print(f"\n{'run':<20} {'sentences':>9} {'wall s':>8} {'sent/s':>8} {'x single1':>9} {'in-shard/s':>10} "
              f"{'x single1':>9}")
        for name, r in runs.items():
            rate, rate_in = r["sentences"] / r["wall"], r["sentences"] / r["in_shards"]
            print(f"{name:<20} {r['sentences']:>9,} {r['wall']:>8.1f} {rate:>8.1f} {rate / base_rate:>9.2f} "
                  f"{rate_in:>10.1f} {rate_in / base_in:>9.2f}")
        two = runs["single, 2 threads"]
        print(f"\nsingle-process at 2 threads: {two['sentences'] / two['wall']:.1f} sentences/s (wall)")
        if 1 in args.workers:
            r1 = runs["ray, 1 worker"]
            print(f"Ray overhead at 1 worker: wall {r1['wall'] - base['wall']:+.1f}s "
                  f"({r1['wall'] / base['wall']:.2f}x single-process time; Ray start and actor model load included); "
                  f"in-shard rate {r1['sentences'] / r1['in_shards'] / base_in:.2f}x")
        if 2 in args.workers:
            r2 = runs["ray, 2 workers"]
            print(f"Ray at 2 workers: {r2['sentences'] / r2['wall'] / base_rate:.2f}x single-process (1 thread), "
                  f"{r2['sentences'] / r2['wall'] / (two['sentences'] / two['wall']):.2f}x single-process "
                  "(2 threads), wall clock")
        per_worker = base_in  # one CPU worker, one torch thread, in-shard
        cluster = per_worker * args.cluster_workers
        print(f"\nprojection (assumes linear scaling: shards >> workers, so every worker stays busy; a shared "
              f"filesystem that keeps up; startup amortised over long shards): {args.cluster_workers} one-thread "
              f"CPU workers at this machine's {per_worker:.1f} sentences/s each = {cluster:,.0f} sentences/s, "
              f"{PUBMED_SENTENCES / cluster / 3600:,.1f} h for PubMed's ~{PUBMED_SENTENCES / 1e6:.0f} M sentences")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
