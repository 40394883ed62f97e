"""How much relation F1 torch int8 loses against fp32 on a fold's gold sentences, per batch size and option.

Dynamic int8 quantizes each call's activations with one scale for the whole batch, so the loss depends on which
texts share a batch. This prints the guard's measurement (:func:`ade_distill.student.int8_guard.measure_loss`) for
each SETTING ``BATCH:KIND[:ALPHA[:PLAN[:KERNEL[:ATTENTION]]]]``: ``all`` quantizes every encoder Linear layer, ``ffn-float`` keeps
the feed-forward outputs in float; ``ALPHA`` smooths the activations first (SmoothQuant, calibrated on the same
sentences' texts, as ``ade-distill quantize`` does by default; 0 or absent: off); ``PLAN`` is ``shared`` (the
default plan: query, key and value share a division, the attention output's folds into value) or ``separate``
(one division per layer, the plan before 2026-12-01); ``KERNEL`` is ``dynamic`` (default: torch's dynamic
quantization, one activation scale per batch) or ``compiled`` (:mod:`ade_distill.student.int8_compiled`: one
activation scale per token, run under ``torch.compile``); ``ATTENTION`` (compiled kernel only) is ``model``
(default here, as before the option existed: the encoder's own attention), ``eager`` or ``bf16``
(:func:`ade_distill.student.int8_compiled.set_attention`):

    python benchmarks/int8_batch_loss.py --model runs/models/KEY \\
        --fold reports/ade_mpnet_compressed/folds/fold9/result/fold.json 64:all 16:all 64:ffn-float 64:all:0.8 \\
        64:all:0.9:separate 64:all:0:shared:compiled 64:all:0.5:shared:compiled:bf16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="student folder")
    ap.add_argument("--fold", type=Path, required=True, help="a fold.json whose gold_ids are the check sentences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("settings", nargs="+", help="BATCH:all or BATCH:ffn-float, optionally :ALPHA")
    args = ap.parse_args()

    import torch

    from ade_distill.data.corpora import load_corpus
    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.int8_guard import measure_loss
    from ade_distill.student.model import StudentExtractor
    from ade_distill.student.quantize import Int8Options, int8_smoothing
    from ade_distill.student.smoothing import SmoothingPlan, calibrate

    torch.set_num_threads(args.threads)
    fold = json.loads(args.fold.read_text(encoding="utf-8"))
    by_id = {e.id: e for e in load_corpus(fold.get("corpus", "ade"))}
    gold = [by_id[i] for i in fold["gold_ids"]]
    texts = strip_labels(gold)
    print(f"model {args.model}; check set: {len(gold)} gold sentences of {args.fold}; torch {torch.__version__}")
    reference = StudentExtractor.from_pretrained(args.model)
    fp32 = reference.predict(texts)
    calibration = calibrate(reference.module.encoder, lambda: reference.predict(texts))
    print(f"{'setting':31s} {'loss vs gold s/l':>18s} {'agreement s/l':>15s}")
    for setting in args.settings:
        parts = setting.split(":")
        defaults = ["", "", "0", "shared", "dynamic", "model"]  # BATCH, KIND, ALPHA, PLAN, KERNEL, ATTENTION
        batch, kind, alpha, plan_name, kernel, attention = (parts + defaults[len(parts):] if len(parts) <= 6
                                                            else defaults)
        if (kind not in ("all", "ffn-float") or not batch.isdigit() or plan_name not in ("shared", "separate")
                or kernel not in ("dynamic", "compiled") or attention not in ("model", "eager", "bf16")):
            sys.exit(f"bad setting {setting!r}: use BATCH:all or BATCH:ffn-float, optionally "
                     f":ALPHA[:shared|separate[:dynamic|compiled[:model|eager|bf16]]]")
        options = Int8Options(float_ffn_output=kind == "ffn-float", smooth_alpha=float(alpha), kernel=kernel,
                              attention=attention)
        plan = SmoothingPlan.separate(sorted(calibration.maxima)) if plan_name == "separate" else None
        smoothing = int8_smoothing(reference.module.encoder, calibration, options, plan) if float(alpha) else None
        model = StudentExtractor.from_pretrained(args.model).quantize(options, smoothing=smoothing)
        r = measure_loss(gold, fp32, model.predict(texts, batch_size=int(batch)), labelled=True)
        loss, agree = r["loss_vs_gold"], r["agreement_f1"]
        print(f"{setting:31s} {loss['strict']:8.2f}/{loss['lenient']:<8.2f} {agree['strict']:7.2f}/{agree['lenient']:<7.2f}",
              flush=True)


if __name__ == "__main__":
    main()
