"""Benchmark: one training step (forward, backward, AdamW) of a student encoder in fp32 and under bfloat16
autocast (``TrainConfig.precision="bf16"``), on the same random batch, interleaved, on the CPU.

Prints seconds per step for each and the fp32 / bf16 ratio. On CPUs with AVX512-BF16 or AMX the ratio is about
2 (measured 2.0-2.3 s vs 1.0-1.2 s per 16 × 40-token mpnet step on 2 AMD EPYC cores); without them, autocast may
be slower than fp32. Whether results are kept is measured by training, not here (see
reports/beat_the_teacher_2/).

Run: ``python benchmarks/bench_bf16_train.py [--encoder mpnet|minilm] [--steps 3] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time

import torch

from ade_distill.student.encoders import resolve_encoder
from ade_distill.student.model import load_encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="mpnet")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder, _ = load_encoder(resolve_encoder(args.encoder))
    encoder.train()
    optim = torch.optim.AdamW(encoder.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (args.batch, args.tokens))
    mask = torch.ones_like(ids)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        out.float().pow(2).mean().backward()
        optim.step()
        optim.zero_grad()

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(2):  # interleaved rounds, each after a warm-up step
        for bf16 in (False, True):
            step(bf16)
            t = time.perf_counter()
            for _ in range(args.steps):
                step(bf16)
            times[bf16].append((time.perf_counter() - t) / args.steps)
    fp32, bf16 = min(times[False]), min(times[True])
    print(f"{args.encoder}, batch {args.batch} x {args.tokens} tokens, {args.threads} threads")
    print(f"fp32: {fp32:.3f} s/step   bf16 autocast: {bf16:.3f} s/step   fp32/bf16: {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
