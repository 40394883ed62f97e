"""Deployment variants of a student on the same 2,000 ADE-corpus sentences, in one run: the Hugging Face
`pipeline` baseline, the torch student (fp32, bf16 autocast, bf16 compiled, int8 with the dynamic and with the
compiled kernel), its ONNX export (fp32), the
int8 ONNX model, a 3-model ensemble and any further student folders (e.g. compressed students) — sentences/s, ratio to
the baseline, peak memory, parameters, and relation F1 retention against the fp32 torch student.

    HF_HUB_OFFLINE=1 python benchmarks/bench_deploy.py --model runs/models/KEY \\
        --ensemble runs/models/K1 --ensemble runs/models/K2 --ensemble runs/models/K3 \\
        [--extra compressed=runs/compressed [--extra-settings both]] [--n 2000] [--threads 2] [--repeat 3]
    HF_HUB_OFFLINE=1 python benchmarks/bench_deploy.py --n 100        # smoke run: untrained seeded student

Every row runs in a subprocess of its own, so "peak MiB" is that row's peak RSS (Python, the corpus, model, runtime
and predictions), not the largest of the run. Retention: relation F1 (strict / lenient) of each row's predictions
against the fp32 torch student's predictions as reference ("agree"), and each row's F1 against the corpus labels
(sentences the model was trained on count too: compare rows with each other, not with published scores) divided by
the torch student's F1 ("retain"). The int8 models (ONNX and torch) are built with their accuracy guard measuring
the loss on these sentences against fp32 (the verdict at --max-f1-loss is printed; they are benchmarked either
way). Each row warms up (the baseline on 20 sentences, the others on 256, compiling where they compile), freezes
its heap as `ade-distill predict` does after its first chunk (:func:`~ade_distill.student.predict.freeze_heap_once`),
then times --repeat passes over all sentences and keeps the fastest. Without
--ensemble, the ensemble row votes three copies of the student with decoding thresholds 0.5 / 0.4 / 0.6 (speed
only: such members are not independent).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _sentences(n: int):
    from ade_distill.data.corpora import load_corpus

    corpus = load_corpus("ade")
    return random.Random(0).sample(corpus, n)  # the sample of benchmarks/bench_student.py


def _row(args: argparse.Namespace) -> None:
    """Child process: one variant; prints a JSON line (speed, peak RSS, parameters); writes its predictions."""
    import torch

    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.records import write_examples
    from ade_distill.student.predict import freeze_heap_once

    torch.set_num_threads(args.threads)
    gold = _sentences(args.n)
    texts = strip_labels(gold)
    kind, paths = args.row, args.paths
    if kind == "baseline":
        from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
        from transformers.utils import logging as hf_logging

        from ade_distill.student.encoders import resolve_encoder
        from ade_distill.student.model import StudentExtractor

        hf_logging.disable_progress_bar()
        enc = resolve_encoder(StudentExtractor.from_pretrained(paths[0]).config.encoder)
        tc = AutoModelForTokenClassification.from_pretrained(enc, num_labels=3)
        pipe = pipeline("token-classification", model=tc, tokenizer=AutoTokenizer.from_pretrained(enc), device=-1)
        params = sum(p.numel() for p in tc.parameters())
        for s in texts[:20]:
            pipe(s.text)
        freeze_heap_once()  # as every row: the heap of a warm process frozen, as `ade-distill predict` runs
        seconds = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for s in texts:
                pipe(s.text)
            seconds = min(seconds, time.perf_counter() - t0)
        preds = None
    else:
        from ade_distill.student.ensemble import load_extractor

        runtime = "onnx" if kind.startswith("onnx") else "torch"
        model = load_extractor(paths, runtime=runtime, quantize="-int8" in kind,
                               precision="bf16" if kind.startswith("torch-bf16") else "fp32",
                               compile=kind.endswith("-compiled"))
        members = getattr(model, "members", [model])
        params = sum(_parameters(m) for m in members)
        model.predict(texts[:256], batch_size=args.batch_size)  # warm-up (and compilation)
        freeze_heap_once()  # what predict_documents does after its first chunk
        seconds = float("inf")
        for _ in range(args.repeat):  # the best of --repeat passes: the least disturbed by other processes
            t0 = time.perf_counter()
            preds = model.predict(texts, batch_size=args.batch_size)
            seconds = min(seconds, time.perf_counter() - t0)
        write_examples(args.preds, preds)
    print(json.dumps({"seconds": seconds, "n": len(texts), "parameters": params, "peak_mib": _peak_mib()}))


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss would carry the parent's peak over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _parameters(student) -> int:
    if student.module is not None:
        import torch

        from ade_distill.student.int8_compiled import CompiledInt8Linear

        # an int8 Linear holds its weight in packed params (dynamic) or buffers (compiled), not among the
        # parameters: counted once too (scales not counted)
        packed = sum(m.weight().numel() + (m.bias().numel() if m.bias() is not None else 0)
                     for m in student.module.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear))
        packed += sum(m.weight_t.numel() + (m.bias.numel() if m.bias is not None else 0)
                      for m in student.module.modules() if isinstance(m, CompiledInt8Linear))
        return packed + sum(p.numel() for p in student.module.parameters())
    import onnx
    from onnx import numpy_helper

    total = 0
    for path in (student.onnx.stage1_path, student.onnx.stage2_path):
        # an int8 weight matrix counts once (its per-channel scales and zero points are not counted)
        total += sum(numpy_helper.to_array(i).size for i in onnx.load(str(path)).graph.initializer
                     if not i.name.endswith(("_scale", "_zero_point")))
    return total


def _run_row(args: argparse.Namespace, name: str, kind: str, paths: list[str], preds: Path) -> dict:
    cmd = [sys.executable, __file__, "--row", kind, "--n", str(args.n), "--threads", str(args.threads),
           "--repeat", str(args.repeat),
           "--batch-size", str(args.batch_size), "--preds", str(preds), "--paths", *paths]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"row {name} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(name=name, kind=kind, wall=time.perf_counter() - t0)
    return res


def _f1(ref, pred, mode: str) -> float:
    from ade_distill.evaluation import micro_prf

    return 100 * micro_prf(ref, pred, mode, "relation")[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="student folder (default: an untrained seeded one)")
    ap.add_argument("--ensemble", action="append", default=[], help="ensemble member folder (repeat 3 times)")
    ap.add_argument("--extra", action="append", default=[], help="NAME=FOLDER: one more torch student row")
    ap.add_argument("--extra-settings", choices=("fp32", "bf16-compiled", "both"), default="fp32",
                    help="how each --extra row predicts: torch fp32, bf16 autocast + torch.compile, or a row of each")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="time each row this many times, keep the fastest")
    ap.add_argument("--max-f1-loss", type=float, default=0.5)
    ap.add_argument("--per-tensor", action="store_true", help="int8 scales per matrix instead of per channel")
    ap.add_argument("--int8-ffn-output", action="store_true", help="quantize the FFN output projections too")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--preds", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        return _row(args)

    import shutil

    import torch

    from ade_distill.records import read_examples
    from ade_distill.student.model import StudentConfig, StudentExtractor
    from ade_distill.student.onnx_export import export_onnx, quantize_int8
    from ade_distill.student.quantize import Int8Options, guard_torch_int8
    from ade_distill.tasks.spec import load_task

    tmp = Path(tempfile.mkdtemp(prefix="bench_deploy_"))
    model_dir = args.model
    if model_dir is None:
        StudentExtractor.from_encoder(load_task("ade"), StudentConfig(encoder="minilm"), seed=0).save_pretrained(
            tmp / "m")
        model_dir = tmp / "m"
    ensemble = args.ensemble
    if not ensemble:
        ensemble = [str(model_dir)]
        for th in (0.4, 0.6):
            cfg = json.loads((Path(model_dir) / "student.json").read_text())
            cfg.update(head_threshold=th, tail_threshold=th)
            copy = tmp / f"member_{th}"
            shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("onnx", "predict-*"))
            (copy / "student.json").write_text(json.dumps(cfg))
            ensemble.append(str(copy))
    print(f"model: {model_dir}; {args.n} ADE sentences (random.Random(0).sample, as bench_student.py); "
          f"threads {args.threads}; best of {args.repeat} timed passes per row; torch {torch.__version__}; "
          f"scratch {tmp}")

    # The exports go to the scratch folder: the model folder is only read.
    gold = _sentences(args.n)
    export = tmp / "onnx"
    t0 = time.perf_counter()
    export_onnx(model_dir, export)
    t_export = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    report = quantize_int8(export, gold, check_source=f"the {args.n} benchmark sentences", labelled=True,
                           max_f1_loss=1e9, per_channel=not args.per_tensor,
                           float_ffn_output=not args.int8_ffn_output, batch_size=args.batch_size)
    t_quant = time.perf_counter() - t0
    verdict = "accepted" if report["loss"] <= args.max_f1_loss else "REFUSED"
    layout = f"{'per-tensor' if args.per_tensor else 'per-channel'}, {report['layout']}"
    print(f"export {t_export:.0f}s; int8 ({layout}) {t_quant:.0f}s: "
          f"guard at --max-f1-loss {args.max_f1_loss}: {verdict} ({report['message']})")

    # torch int8 behind the same guard, one copy of the folder per kernel (the guard records its verdict there);
    # the compiled kernel (per-token activation scales, torch.compile) needs per-channel weights
    kernels = [("dynamic", "student (torch int8)", "torch-int8", Int8Options(per_channel=not args.per_tensor))]
    if not args.per_tensor:
        kernels.append(("compiled", "student (torch int8, compiled kernel)", "torch-int8-compiled",
                        Int8Options(kernel="compiled")))
    rows_int8 = []
    for kernel, name, kind, options in kernels:
        int8_dir = shutil.copytree(model_dir, tmp / f"torch_int8_{kernel}",
                                   ignore=shutil.ignore_patterns("onnx", "predict-*"))
        t0 = time.perf_counter()
        torch_report = guard_torch_int8(int8_dir, gold, check_source=f"the {args.n} benchmark sentences",
                                        max_f1_loss=1e9, batch_size=args.batch_size, options=options)
        verdict = "accepted" if torch_report["loss"] <= args.max_f1_loss else "REFUSED"
        print(f"{name} ({'per-tensor' if args.per_tensor else 'per-channel'}, {torch_report['layout']}) "
              f"{time.perf_counter() - t0:.0f}s: guard at --max-f1-loss {args.max_f1_loss}: {verdict} "
              f"({torch_report['message']})")
        rows_int8.append((name, kind, [str(int8_dir)]))

    rows = [("student (torch fp32)", "torch", [str(model_dir)]),
            ("student (torch bf16 autocast)", "torch-bf16", [str(model_dir)]),
            ("student (torch bf16, torch.compile)", "torch-bf16-compiled", [str(model_dir)]),
            *rows_int8,
            ("student (ONNX fp32)", "onnx", [str(export)]),
            ("student (ONNX int8)", "onnx-int8", [str(export)]),
            (f"ensemble of {len(ensemble)} (torch)", "torch", ensemble)]
    settings = {"fp32": [("torch", "torch")], "bf16-compiled": [("torch bf16, torch.compile", "torch-bf16-compiled")]}
    settings["both"] = settings["fp32"] + settings["bf16-compiled"]
    rows += [(f"{n} ({label})", kind, [p]) for n, p in (x.split("=", 1) for x in args.extra)
             for label, kind in settings[args.extra_settings]]
    if not args.skip_baseline:
        rows.insert(0, ("transformers.pipeline, 1 sentence/call", "baseline", [str(model_dir)]))
    results = []
    for k, (name, kind, paths) in enumerate(rows):
        res = _run_row(args, name, kind, paths, tmp / f"preds{k}.jsonl")
        res["preds"] = tmp / f"preds{k}.jsonl"
        results.append(res)
        print(f"  done: {name}: {res['n'] / res['seconds']:.1f} sentences/s", flush=True)

    base = next((r for r in results if r["kind"] == "baseline"), None)
    ref_row = next(r for r in results if r["name"] == "student (torch fp32)")
    ref = list(read_examples(ref_row["preds"]))
    ref_gold = {m: _f1(gold, ref, m) for m in ("strict", "lenient")}
    print(f"\n{'variant':42s} {'sent/s':>8s} {'ratio':>6s} {'peak MiB':>9s} {'params':>7s}  "
          f"{'F1 strict/lenient':>17s}  {'agree s/l':>11s}  {'retain s/l':>11s}")
    for r in results:
        speed = r["n"] / r["seconds"]
        ratio = f"{speed / (base['n'] / base['seconds']):.2f}x" if base else "-"
        cols = f"{r['name']:42s} {speed:8.1f} {ratio:>6s} {r['peak_mib']:9.0f} {r['parameters'] / 1e6:6.1f}M"
        if r["kind"] == "baseline":
            print(f"{cols}  {'(untrained head: speed only)':>17s}")
            continue
        preds = list(read_examples(r["preds"]))
        f = {m: _f1(gold, preds, m) for m in ("strict", "lenient")}
        agree = {m: _f1(ref, preds, m) if any(p.relations for p in ref) else float("nan")
                 for m in ("strict", "lenient")}
        retain = {m: 100 * f[m] / ref_gold[m] if ref_gold[m] else float("nan") for m in ("strict", "lenient")}
        print(f"{cols}  {f['strict']:8.1f}/{f['lenient']:<8.1f}  {agree['strict']:5.1f}/{agree['lenient']:<5.1f}  "
              f"{retain['strict']:5.1f}/{retain['lenient']:<5.1f}")
    print("\nagree: relation F1 against the torch fp32 student's predictions; retain: F1 against the corpus labels "
          "as % of the torch fp32 student's.")


if __name__ == "__main__":
    sys.exit(main())
