"""The two costs of a prediction pass outside the network, measured in one run on the 2,000 ADE sentences of
bench_deploy.py, in interleaved rounds (medians; ratios against the old way measured in the same run):

* tokenization: the transformers wrapper (``tokenizer(texts, truncation=True, return_offsets_mapping=True)``, a
  ``BatchEncoding`` of Python lists, read back as ids, offsets and word ids), against the Rust encodings of
  :func:`~ade_distill.student.encode.truncating_backend` read directly (what :func:`encode_texts` does);
* full garbage collections: a warm student predicting the 2,000 sentences with its heap as loaded, against the
  same student after :func:`gc.freeze` (what :func:`~ade_distill.student.predict.freeze_heap_once` does after the
  first chunk). Seconds spent in the collector are read from :data:`gc.callbacks`.

    python benchmarks/predict_overheads.py --model runs/models/KEY [--rounds 7] [--threads 2] [--int8-compiled]

``--int8-compiled``: the student in the compiled int8 kernel, the fastest variant of bench_deploy.py, quantized on a
scratch copy of the folder (its guard measured on the benchmark sentences, as bench_deploy.py does; speed only).
The predictions of both arms are checked equal.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _wrapper_encodings(tokenizer, texts: list[str], max_length: int) -> list[tuple]:
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    return [(enc["input_ids"][i], enc["offset_mapping"][i], enc.word_ids(i)) for i in range(len(texts))]


def _direct_encodings(tokenizer, texts: list[str], max_length: int) -> list[tuple]:
    from ade_distill.student.encode import truncating_backend

    return [(e.ids, e.offsets, e.word_ids)
            for e in truncating_backend(tokenizer, max_length).encode_batch(texts, add_special_tokens=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="student folder")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--int8-compiled", action="store_true", help="the compiled int8 kernel (on a scratch copy)")
    args = ap.parse_args()

    import torch
    from bench_deploy import (
        _sentences,  # the benchmark's sample (this folder is sys.path[0] when run as a script)
    )

    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.ensemble import load_extractor

    torch.set_num_threads(args.threads)
    gold = _sentences(args.n)
    examples = strip_labels(gold)
    texts = [e.text for e in examples]
    folder = args.model
    if args.int8_compiled:
        from ade_distill.student.quantize import Int8Options, guard_torch_int8

        folder = shutil.copytree(args.model, Path(tempfile.mkdtemp(prefix="predict_overheads_")) / "int8",
                                 ignore=shutil.ignore_patterns("onnx", "predict-*"))
        guard_torch_int8(folder, gold, check_source=f"the {args.n} benchmark sentences", max_f1_loss=1e9,
                         batch_size=args.batch_size, options=Int8Options(kernel="compiled"))
    model = load_extractor([folder], quantize=args.int8_compiled)
    tok, length = model.tokenizer, model.config.max_length
    print(f"model {args.model}; {len(texts)} ADE sentences; threads {args.threads}; {args.rounds} rounds"
          f"{'; compiled int8 kernel' if args.int8_compiled else ''}; torch {torch.__version__}")

    assert _wrapper_encodings(tok, texts, length) == _direct_encodings(tok, texts, length)
    tok_s: dict[str, list[float]] = {"wrapper": [], "direct": []}
    for _ in range(args.rounds):
        for name, fn in (("wrapper", _wrapper_encodings), ("direct", _direct_encodings)):
            t0 = time.perf_counter()
            fn(tok, texts, length)
            tok_s[name].append(time.perf_counter() - t0)
    w, d = statistics.median(tok_s["wrapper"]), statistics.median(tok_s["direct"])
    print(f"tokenization, ms per {len(texts)} sentences (median): wrapper {w * 1e3:.1f}, direct {d * 1e3:.1f} "
          f"({w / d:.2f}x faster)")

    in_gc = [0.0]
    started = [0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - started[0]

    reference = model.predict(examples, batch_size=args.batch_size)  # warm-up (and compilation)
    gc.callbacks.append(timer)
    rate: dict[str, list[float]] = {"as loaded": [], "frozen": []}
    collecting: dict[str, list[float]] = {"as loaded": [], "frozen": []}
    objects = {}
    for _ in range(args.rounds):
        for name in rate:
            if name == "frozen":  # no gc.collect() here: each arm meets the collector as a long run does
                gc.freeze()
            else:
                gc.unfreeze()
            objects[name] = len(gc.get_objects())
            in_gc[0] = 0.0
            t0 = time.perf_counter()
            preds = model.predict(examples, batch_size=args.batch_size)
            rate[name].append(len(examples) / (time.perf_counter() - t0))
            collecting[name].append(in_gc[0])
            assert preds == reference
    gc.callbacks.remove(timer)
    gc.unfreeze()
    for name in rate:
        print(f"predict, heap {name:9s} ({objects[name]:7d} objects the collector walks): sentences/s median "
              f"{statistics.median(rate[name]):6.1f} (rounds {', '.join(f'{x:.0f}' for x in rate[name])}); "
              f"seconds in the collector per pass: median {statistics.median(collecting[name]):.2f}, "
              f"max {max(collecting[name]):.2f}")
    print(f"frozen / as loaded, median sentences/s: "
          f"{statistics.median(rate['frozen']) / statistics.median(rate['as loaded']):.2f}x")


if __name__ == "__main__":
    main()
