"""Student CPU throughput: `StudentExtractor.predict` vs a `transformers` token-classification pipeline (same
encoder, one sentence at a time) on 2,000 ADE-corpus sentences, int8 dynamic quantization with its agreement,
and training throughput and peak memory.

    HF_HUB_OFFLINE=1 python benchmarks/bench_student.py [--model runs/supervised_fold0/model] [--threads 2]

Without --model (and without runs/supervised_fold0/model) a seeded, untrained MiniLM student is used: speed
does not depend on training, except that stage 2 runs once per predicted head mention.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _keys(preds, what: str) -> set:
    out = set()
    for p in preds:
        by = p.span_by_id()
        if what == "spans":
            out |= {(p.id, s.start, s.end, s.label) for s in p.spans}
        else:
            out |= {(p.id, by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end) for r in p.relations}
    return out


def _agreement(a: set, b: set) -> float:
    """F1 of b against a (1.0 = identical sets)."""
    if not a and not b:
        return 1.0
    tp = len(a & b)
    return 2 * tp / (len(a) + len(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-n", type=int, default=256)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from ade_distill.data.corpora import load_corpus
    from ade_distill.records import Example
    from ade_distill.student.encoders import resolve_encoder
    from ade_distill.student.model import StudentConfig, StudentExtractor
    from ade_distill.student.quantize import Int8Options
    from ade_distill.student.train import TrainConfig, train_student
    from ade_distill.tasks.spec import load_task

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    task = load_task("ade")
    corpus = load_corpus("ade")
    rng = random.Random(0)
    sents = [Example(id=e.id, text=e.text) for e in rng.sample(corpus, args.n)]
    tmp = Path(tempfile.mkdtemp(prefix="bench_student_"))

    model_dir = args.model
    if model_dir is None and Path("runs/supervised_fold0/model/student.json").is_file():
        model_dir = Path("runs/supervised_fold0/model")
    if model_dir is None:
        StudentExtractor.from_encoder(task, StudentConfig(encoder="minilm"), seed=0).save_pretrained(tmp / "m")
        model_dir = tmp / "m"
    print(f"model: {model_dir}; {len(sents)} ADE sentences; torch threads {args.threads}; torch {torch.__version__}")

    student = StudentExtractor.from_pretrained(model_dir)
    student.predict(sents[:64])  # warm-up
    t0 = time.perf_counter()
    ours = student.predict(sents, batch_size=args.batch_size)
    t_ours = time.perf_counter() - t0

    # Unguarded on purpose: this measures what int8 does to this model (predict --quantize uses int8 only after
    # `ade-distill quantize` accepted it on a held-out check set).
    qstudent = StudentExtractor.from_pretrained(model_dir).quantize(Int8Options(smooth_alpha=0.0))
    qstudent.predict(sents[:64])
    t0 = time.perf_counter()
    q = qstudent.predict(sents, batch_size=args.batch_size)
    t_q = time.perf_counter() - t0
    span_agree = _agreement(_keys(ours, "spans"), _keys(q, "spans"))
    rel_agree = _agreement(_keys(ours, "relations"), _keys(q, "relations"))

    # Baseline: the same encoder with a token-classification head through transformers.pipeline, one at a time.
    enc_path = resolve_encoder(student.config.encoder)
    tok = AutoTokenizer.from_pretrained(enc_path)
    tc = AutoModelForTokenClassification.from_pretrained(enc_path, num_labels=3)
    pipe = pipeline("token-classification", model=tc, tokenizer=tok, device=-1)
    for s in sents[:20]:
        pipe(s.text)
    t0 = time.perf_counter()
    for s in sents:
        pipe(s.text)
    t_base = time.perf_counter() - t0

    n = len(sents)
    print(f"baseline transformers.pipeline('token-classification'), 1 sentence/call: {n / t_base:8.1f} sentences/s")
    print(f"student predict (fp32, batch {args.batch_size}, length-sorted, inference_mode): "
          f"{n / t_ours:8.1f} sentences/s  ratio {t_base / t_ours:.2f}x")
    print(f"student predict (dynamic int8 Linear): {n / t_q:8.1f} sentences/s  ratio {t_base / t_q:.2f}x; "
          f"agreement with fp32: spans F1 {span_agree:.4f}, relations F1 {rel_agree:.4f}")
    print(f"(student does both stages: head tagging + per-mention tail tagging; {sum(len(p.relations) for p in ours)}"
          f" relations predicted)")

    # Training throughput and peak memory.
    train = [e for e in corpus if e.relations][: args.train_n]
    cfg = TrainConfig(epochs=1, batch_size=16, max_length=128, threads=args.threads, seed=0)
    t0 = time.perf_counter()
    out = train_student(task, train, None, cfg, tmp / "train")
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"training (MiniLM, batch 16, max_length 128): {metrics['train_sentences_per_second']} sentences/s "
          f"({len(train)} sentences, {time.perf_counter() - t0:.1f}s with model loading)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
