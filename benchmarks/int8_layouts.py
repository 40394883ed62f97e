"""Speed of torch int8 layouts on the same ADE-corpus sentences, in one process, rounds interleaved (variants that
differ by a few percent drown in run-to-run noise when timed one after the other): the fp32 student (baseline),
plain int8, int8 smoothed with one division per layer (``separate``, the plan before 2026-12-01) and with the
default plan (``shared``: query, key and value share one division, the attention output's is folded into value),
each under the attention implementations given, and the compiled int8 kernel (``ade-distill quantize --compile``:
smoothed at its alpha 0.5, shared plan) under each ``--compiled-attention`` choice (its ``Int8Options.attention``).

    HF_HUB_OFFLINE=1 python benchmarks/int8_layouts.py --model runs/models/KEY [--n 2000] [--rounds 5] \\
        [--attention sdpa eager] [--layouts fp32 "int8 plain"] [--compiled-attention model eager bf16] [--threads 2]

Smoothing is calibrated on the first 427 sentences (as a check set would be); the int8 variants are unguarded here
(``benchmarks/int8_batch_loss.py`` and ``ade-distill quantize`` measure their F1). Prints, per variant, the median
and best sentences/s over the rounds, the median's ratio to fp32 (same attention) and to plain int8, and the
relation agreement (strict F1) of its predictions with the fp32 student's.
"""

from __future__ import annotations

import argparse
import os
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
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS,
                    help="the dynamic-kernel layouts to time (fp32 and int8 plain: the ratios' baselines)")
    ap.add_argument("--compiled-attention", nargs="*", default=[], choices=["model", "eager", "bf16"])
    args = ap.parse_args()

    import torch
    from bench_deploy import _sentences  # this folder is sys.path[0] when run as a script

    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.int8_guard import measure_loss
    from ade_distill.student.model import StudentExtractor
    from ade_distill.student.quantize import Int8Options, int8_smoothing
    from ade_distill.student.smoothing import SmoothingPlan, calibrate

    torch.set_num_threads(args.threads)
    texts = strip_labels(_sentences(args.n))  # bench_deploy's sample
    reference = StudentExtractor.from_pretrained(args.model)
    encoder = reference.module.encoder
    calibration = calibrate(encoder, lambda: reference.predict(texts[:427]))
    options = Int8Options(smooth_alpha=args.alpha)
    compiled = {f"compiled {a}": Int8Options(kernel="compiled", attention=a) for a in args.compiled_attention}
    smoothing = {"int8 shared": int8_smoothing(encoder, calibration, options),
                 "int8 separate": int8_smoothing(encoder, calibration, options,
                                                 SmoothingPlan.separate(sorted(calibration.maxima))),
                 **{name: int8_smoothing(encoder, calibration, o) for name, o in compiled.items()}}
    fp32_predictions = reference.predict(texts)

    models = {}
    for attention in args.attention:
        for layout in args.layouts:
            m = StudentExtractor.from_pretrained(args.model)
            m.module.encoder.set_attn_implementation(attention)
            if layout != "fp32":
                alpha = 0.0 if layout == "int8 plain" else args.alpha
                m.quantize(Int8Options(smooth_alpha=alpha), smoothing=smoothing.get(layout))
            m.predict(texts[:100])  # warm-up
            models[(attention, layout)] = m
    for name, o in compiled.items():  # the model's own attention until the kernel sets its own
        m = StudentExtractor.from_pretrained(args.model).quantize(o, smoothing=smoothing[name])
        m.predict(texts[:256])  # warm-up and compilation
        models[("sdpa", name)] = m
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
    print(f"{'attention':9s} {'variant':16s} {'median/s':>9s} {'best/s':>8s} {'vs fp32':>8s} {'vs plain':>9s} "
          f"{'agree strict':>13s}")
    for (attention, layout), times in seconds.items():
        median = args.n / statistics.median(times)
        fp32 = _rate(args.n, seconds.get((attention, "fp32")))
        plain = _rate(args.n, seconds.get((attention, "int8 plain")))
        agree = measure_loss(texts, fp32_predictions, predictions[(attention, layout)], labelled=False)
        print(f"{attention:9s} {layout:16s} {median:9.1f} {args.n / min(times):8.1f} {_ratio(median, fp32):>8s} "
              f"{_ratio(median, plain):>9s} {agree['agreement_f1']['strict']:13.2f}")


def _rate(n: int, times: list[float] | None) -> float | None:
    return n / statistics.median(times) if times else None


def _ratio(value: float, baseline: float | None) -> str:
    return f"{value / baseline:.2f}x" if baseline else "-"


if __name__ == "__main__":
    main()
