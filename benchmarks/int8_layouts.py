"""Speed of torch int8 layouts on the same ADE-corpus sentences, in one process, rounds interleaved (variants that
differ by a few percent drown in run-to-run noise when timed one after the other): the fp32 student (baseline),
plain int8, int8 smoothed with one division per layer (``separate``, the plan before 2026-12-01) and with the
default plan (``shared``: query, key and value share one division, the attention output's is folded into value),
each under the attention implementations given.

    HF_HUB_OFFLINE=1 python benchmarks/int8_layouts.py --model runs/models/KEY [--n 2000] [--rounds 5] \\
        [--attention sdpa eager] [--threads 2]

Smoothing is calibrated on the first 427 sentences (as a check set would be); the int8 variants are unguarded here
(``benchmarks/int8_batch_loss.py`` and ``ade-distill quantize`` measure their F1). Prints, per variant, the median
and best sentences/s over the rounds, the median's ratio to fp32 (same attention) and to plain int8, and the
relation agreement (strict F1) of its predictions with the fp32 student's.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LAYOUTS = ("fp32", "int8 plain", "int8 separate", "int8 shared")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="student folder")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--attention", nargs="+", default=["sdpa"], choices=["sdpa", "eager"])
    args = ap.parse_args()

    import torch

    from ade_distill.data.corpora import load_corpus
    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.int8_guard import measure_loss
    from ade_distill.student.model import StudentExtractor
    from ade_distill.student.quantize import Int8Options, int8_smoothing
    from ade_distill.student.smoothing import SmoothingPlan, calibrate

    torch.set_num_threads(args.threads)
    texts = strip_labels(random.Random(0).sample(load_corpus("ade"), args.n))  # bench_deploy's sample
    reference = StudentExtractor.from_pretrained(args.model)
    encoder = reference.module.encoder
    calibration = calibrate(encoder, lambda: reference.predict(texts[:427]))
    options = Int8Options(smooth_alpha=args.alpha)
    smoothing = {"int8 shared": int8_smoothing(encoder, calibration, options),
                 "int8 separate": int8_smoothing(encoder, calibration, options,
                                                 SmoothingPlan.separate(sorted(calibration.maxima)))}
    fp32_predictions = reference.predict(texts)

    models = {}
    for attention in args.attention:
        for layout in LAYOUTS:
            m = StudentExtractor.from_pretrained(args.model)
            m.module.encoder.set_attn_implementation(attention)
            if layout != "fp32":
                alpha = 0.0 if layout == "int8 plain" else args.alpha
                m.quantize(Int8Options(smooth_alpha=alpha), smoothing=smoothing.get(layout))
            m.predict(texts[:100])  # warm-up
            models[(attention, layout)] = m
    seconds: dict[tuple[str, str], list[float]] = {k: [] for k in models}
    predictions = {}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for key in order:
            t0 = time.perf_counter()
            predictions[key] = models[key].predict(texts)
            seconds[key].append(time.perf_counter() - t0)
    print(f"model {args.model}; {args.n} ADE sentences, {args.rounds} interleaved rounds, {args.threads} threads, "
          f"torch {torch.__version__}, quantized engine {torch.backends.quantized.engine}, alpha {args.alpha}")
    print(f"{'attention':9s} {'variant':14s} {'median/s':>9s} {'best/s':>8s} {'vs fp32':>8s} {'vs plain':>9s} "
          f"{'agree strict':>13s}")
    for (attention, layout), times in seconds.items():
        median = args.n / statistics.median(times)
        fp32 = args.n / statistics.median(seconds[(attention, "fp32")])
        plain = args.n / statistics.median(seconds[(attention, "int8 plain")])
        agree = measure_loss(texts, fp32_predictions, predictions[(attention, layout)], labelled=False)
        print(f"{attention:9s} {layout:14s} {median:9.1f} {args.n / min(times):8.1f} {median / fp32:7.2f}x "
              f"{median / plain:8.2f}x {agree['agreement_f1']['strict']:13.2f}")


if __name__ == "__main__":
    main()
