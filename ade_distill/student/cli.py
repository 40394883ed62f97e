"""CLI commands of the student stage (registered by ade_distill.cli): ``train``, ``predict``, ``adapt-encoder``,
``export-onnx``, ``compress``.

    ade-distill train --task ade --train silver.jsonl [--dev dev.jsonl | --dev-fraction 0.1] --out runs/student
    ade-distill predict --model runs/student --input abstracts.jsonl --out preds.jsonl
    ade-distill predict --model runs/a --model runs/b --model runs/c [--min-votes 2] --input ... --out ...
    ade-distill export-onnx --model runs/student [--int8 --check-gold dev.jsonl]; predict ... --runtime onnx
    ade-distill predict --engine ray --model runs/student --input 'medline/*.xml.gz' --out preds/ [--workers 8]
    ade-distill adapt-encoder --texts abstracts.jsonl --out runs/minilm-pubmed [--exclude gold.jsonl]
    ade-distill compress --teacher runs/a [--teacher runs/b ...] --texts silver.jsonl --unlabeled abstracts.jsonl \\
        --exclude gold.jsonl --layers 3 --out runs/small

Heavy imports (torch, transformers) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ade_distill.cli_options import InputFormatOpt, LabelMapOpt, TaskOpt


def train(
    train_file: Annotated[Path, typer.Option("--train", help="Training records (JSONL, BRAT folder or BioC file; "
                                             "gold or silver).")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write (appears only when complete).")],
    task: TaskOpt = "ade",
    dev: Annotated[Path | None, typer.Option("--dev", help="Dev records for early stopping.")] = None,
    dev_fraction: Annotated[
        float, typer.Option("--dev-fraction", help="Without --dev: carve this fraction of PMIDs as dev.")
    ] = 0.0,
    folds: Annotated[
        Path | None, typer.Option("--folds", help="Folds file (ade-distill data folds): train on all but --fold.")
    ] = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Held-out (test) fold, 0-based; needs --folds.")] = None,
    encoder: Annotated[str, typer.Option("--encoder", help="minilm, pubmedbert, a hub name or a folder.")] = "minilm",
    architecture: Annotated[
        str | None, typer.Option("--architecture", help="drug_conditioned, pairwise or pair_classifier (default: "
                                 "the task's student_architecture, else drug_conditioned).")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    lr: Annotated[float, typer.Option("--lr", help="Encoder learning rate.")] = 5e-5,
    head_lr: Annotated[float, typer.Option("--head-lr", help="Learning rate of the new layers.")] = 1e-3,
    max_length: Annotated[int, typer.Option("--max-length", help="Max sub-word tokens per sentence.")] = 128,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    patience: Annotated[int, typer.Option("--patience")] = 2,
    eval_every: Annotated[int | None, typer.Option("--eval-every", help="Evaluate every N steps.")] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="Drop silver labels below.")] = 0.0,
    confidence_weighting: Annotated[bool, typer.Option("--confidence-weighting/--no-confidence-weighting")] = False,
    negative_fraction: Annotated[
        float, typer.Option("--negative-fraction", help="Share of relation-free examples used per epoch.")
    ] = 1.0,
    max_steps: Annotated[int | None, typer.Option("--max-steps")] = None,
    tail_head: Annotated[
        str, typer.Option("--tail-head", help="Stage-2 layer: linear (the paper's) or interaction.")
    ] = "linear",
    window_long_texts: Annotated[
        bool, typer.Option("--window-long-texts/--no-window-long-texts",
                           help="Cut texts longer than --max-length into sentence windows (documents).")
    ] = False,
    calibrate_thresholds: Annotated[
        bool, typer.Option("--calibrate-thresholds/--no-calibrate-thresholds",
                           help="Pick decision thresholds on the dev set after training (head/tail; "
                           "pair_classifier: the relation threshold).")
    ] = False,
    pair_structure: Annotated[
        bool, typer.Option("--pair-structure/--no-pair-structure",
                           help="pair_classifier: also read each candidate pair's sentence distance, co-occurrences, "
                           "first-sentence mentions and mention frequency.")
    ] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or bf16 (bfloat16 autocast: about 2x faster "
                                           "on CPUs with AVX512-BF16/AMX and on recent GPUs).")] = "fp32",
    input_format: InputFormatOpt = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Train a student (drug-conditioned extractor or pairwise ablation) on gold or silver records (JSONL, a BRAT
    folder or a BioC file)."""
    from ade_distill.errors import ConfigError
    from ade_distill.hashing import path_sha256
    from ade_distill.student.train import TrainConfig, read_training_file, train_student
    from ade_distill.tasks.spec import load_task

    spec = load_task(task)
    architecture = architecture or spec.architecture
    config = TrainConfig.build(
        encoder=encoder, architecture=architecture, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
        max_length=max_length, seed=seed, patience=patience, eval_every=eval_every, min_confidence=min_confidence,
        confidence_weighting=confidence_weighting, negative_fraction=negative_fraction, max_steps=max_steps,
        threads=threads, dev_fraction=dev_fraction, tail_head=tail_head, window_long_texts=window_long_texts,
        calibrate_thresholds=calibrate_thresholds, precision=precision, pair_structure=pair_structure,
    )
    examples, excluded = _usable(train_file, read_training_file(train_file, spec, input_format, label_map))
    prov: dict[str, object] = {"train_file": str(train_file), "train_sha256": path_sha256(train_file),
                               "train_excluded_by_teacher_status": excluded}
    if (folds is None) != (fold is None):
        raise ConfigError("--folds and --fold go together")
    if folds is not None and fold is not None:
        from ade_distill.data.folds import Folds

        f = Folds.load(folds)
        keep = f.train_ids(fold)
        examples = [e for e in examples if e.id in keep]
        if not examples:
            raise ConfigError(f"no example of {train_file} is in the training folds of {folds} (fold {fold} held out)")
        prov.update({"folds_file": str(folds), "held_out_fold": fold})
    dev_examples = None
    if dev is not None:
        dev_examples, dev_excluded = _usable(dev, read_training_file(dev, spec, input_format, label_map))
        prov.update({"dev_file": str(dev), "dev_sha256": path_sha256(dev), "dev_excluded_by_teacher_status": dev_excluded})
    path = train_student(spec, examples, dev_examples, config, out, provenance=prov)
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    typer.echo(f"saved {path} (best dev: {metrics.get('best_dev')})")


def predict(
    model: Annotated[list[Path], typer.Option("--model", help="Student folder (ade-distill train --out); repeat "
                                              "it for an ensemble that votes on relations.")],
    input_path: Annotated[Path, typer.Option("--input", help="Records/abstracts JSONL, MEDLINE XML or text. "
                                             "--engine ray: files, a folder or a quoted glob ('medline/*.xml.gz').")],
    out: Annotated[Path, typer.Option("--out", help="Predictions JSONL (common schema); --engine ray: a folder.")],
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    split: Annotated[str, typer.Option("--split", help="auto (long texts only), always or never.")] = "auto",
    input_format: Annotated[
        str | None, typer.Option("--input-format", "--format", help="Input format: jsonl (= records), abstracts, "
                                 "medline, text, brat or bioc (default: sniffed); --format is its old name.")
    ] = None,
    label_map: LabelMapOpt = None,
    quantize: Annotated[bool, typer.Option("--quantize/--no-quantize", help="int8 behind its accuracy guard: "
                                           "in torch, as measured by ade-distill quantize; with --runtime onnx, "
                                           "the int8 export that passed it (export-onnx --int8).")] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="torch (and ONNX Runtime) CPU threads.")] = None,
    min_votes: Annotated[
        int | None, typer.Option("--min-votes", help="Ensemble: members that must predict a relation (default: a "
                                 "majority, as in reproduce).")
    ] = None,
    boundary: Annotated[
        str, typer.Option("--boundary", help="Ensemble vote: exact, or consensus (span variants first mapped onto "
                          "the members' majority variant).")
    ] = "exact",
    runtime: Annotated[
        str, typer.Option("--runtime", help="torch, or onnx (the folder's export: ade-distill export-onnx).")
    ] = "torch",
    precision: Annotated[
        str, typer.Option("--precision", help="torch runtime: fp32, or bf16 (bfloat16 autocast: about 1.5x faster on "
                          "CPUs with bf16 instructions and on GPUs; benchmarks/bench_deploy.py measures its "
                          "speed and agreement with fp32).")
    ] = "fp32",
    compile: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch runtime: torch.compile the encoder pass (the first "
                           "batch takes about half a minute to compile; with --precision bf16 the fastest float "
                           "CPU setting). An int8 student compiles when its guard measured the compiled kernel "
                           "(ade-distill quantize --compile).")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="single (this process, one file) or ray (a Ray Data actor pool: one "
                          "output file per input file plus manifest.json, resumable; RAY_ADDRESS for a cluster).")
    ] = "single",
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="--engine ray: actors (default: one per GPU, else per "
                                 "--threads CPUs; locally, the CPUs Ray may use = workers x threads).")
    ] = None,
    gpus_per_worker: Annotated[
        float | None, typer.Option("--gpus-per-worker", min=0, help="--engine ray: GPUs per actor (default: 1 "
                                   "when the cluster has GPUs, else 0; 0.5 puts two actors on a GPU).")
    ] = None,
    out_format: Annotated[
        str, typer.Option("--out-format", help="--engine ray: jsonl, or parquet (needs pyarrow).")
    ] = "jsonl",
) -> None:
    """Predict entities and relations for texts or abstracts; long documents are split into sentences. Several
    --model folders predict as an ensemble (the relation vote of reproduce). --engine ray predicts many files
    (e.g. PubMed's baseline) on Ray, one shard per file, skipping the shards an earlier run finished."""
    from ade_distill.data.formats import document_format
    from ade_distill.errors import ConfigError
    from ade_distill.student.predict import predict_file

    input_format = document_format(input_format)  # an unknown format fails before any model is loaded
    if engine == "ray":
        if label_map is not None:
            raise ConfigError("--label-map goes with --engine single (convert BRAT/BioC input to JSONL first: "
                              "ade-distill data export --label-map ...)")
        _predict_ray(model, input_path, out, workers=workers, threads=threads, gpus_per_worker=gpus_per_worker,
                     out_format=out_format, input_format=input_format, batch_size=batch_size, split=split,
                     quantize=quantize, runtime=runtime, precision=precision, compile=compile,
                     min_votes=min_votes, boundary=boundary)
        return
    if engine != "single":
        raise ConfigError(f"--engine must be single or ray, not {engine!r}")
    if workers is not None or gpus_per_worker is not None or out_format != "jsonl":
        raise ConfigError("--workers, --gpus-per-worker and --out-format go with --engine ray")
    if threads:
        import torch

        torch.set_num_threads(threads)
    stats = predict_file(model, input_path, out, batch_size=batch_size, split=split, input_format=input_format,
                         label_map=label_map, quantize=quantize, min_votes=min_votes, boundary=boundary,
                         runtime=runtime, precision=precision, compile=compile)
    typer.echo(f"wrote {stats['documents']} records ({stats['spans']} spans, {stats['relations']} relations) "
               f"to {out} in {stats['seconds']}s")


def _predict_ray(model: list[Path], inputs: Path, out: Path, **options: object) -> None:
    """``predict --engine ray`` (:func:`ade_distill.student.ray_engine.predict_ray`), with a line per shard."""
    from ade_distill.student.ray_engine import predict_ray

    done = [0]

    def report(entry: dict) -> None:
        done[0] += 1
        typer.echo(f"[{done[0]}] {entry['input']} → {out / entry['output']}: {entry['records']:,} records, "
                   f"{entry['sentences']:,} sentences in {entry['seconds']}s")

    s = predict_ray(model, str(inputs), out, on_shard=report, **options)  # type: ignore[arg-type]
    typer.echo(f"{s['predicted']} shards predicted, {s['skipped']} already finished, of {s['shards']}: "
               f"{s['records']:,} records ({s['sentences']:,} sentences, {s['relations']:,} relations) with "
               f"{s['workers']} workers in {s['seconds']}s; manifest {out / 'manifest.json'}")


def adapt_encoder(
    texts: Annotated[Path, typer.Option("--texts", help="Unlabeled documents: JSONL abstracts, MEDLINE XML, text.")],
    out: Annotated[Path, typer.Option("--out", help="Folder of the adapted encoder (use it as --encoder).")],
    encoder: Annotated[str, typer.Option("--encoder", help="minilm, mpnet, a hub name or a folder.")] = "minilm",
    exclude: Annotated[
        list[Path] | None, typer.Option("--exclude", help="Records whose PMIDs and texts must not be trained on "
                                        "(e.g. your evaluation set); repeatable.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 1,
    lr: Annotated[float, typer.Option("--lr")] = 5e-5,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    max_length: Annotated[int, typer.Option("--max-length", help="Sub-word tokens per block.")] = 128,
    max_documents: Annotated[int | None, typer.Option("--max-documents")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Continue masked-LM pretraining of an encoder on unlabeled in-domain text (domain adaptation)."""
    from pydantic import ValidationError

    from ade_distill.data.formats import read_records
    from ade_distill.data.unlabeled import iter_documents
    from ade_distill.errors import ConfigError
    from ade_distill.experiments.protocol import filter_documents
    from ade_distill.student.adapt import AdaptConfig
    from ade_distill.student.adapt import adapt_encoder as run

    try:
        cfg = AdaptConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                          max_documents=max_documents, seed=seed, threads=threads)
    except ValidationError as err:
        raise ConfigError("invalid adaptation option: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())) from None
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new --out rather than replacing an encoder "
                          "in place (students trained on the old one would no longer match it)")
    docs = list(iter_documents(texts))
    guard = None
    if exclude:
        held = [e for path in exclude for e in read_records(path, options=label_map)]
        docs, guard = filter_documents(docs, held)
        typer.echo(f"excluded {guard['removed_by_pmid']} documents by PMID and {guard['removed_by_text']} by text")
    summary = run(encoder, [d.text for d in docs], out, cfg)
    def loss(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    typer.echo(f"saved {out}: {summary['documents']:,} documents, {summary['tokens_train']:,} tokens, "
               f"{summary['steps']} steps in {summary['seconds']}s; held-out MLM loss "
               f"{loss(summary['heldout_mlm_loss_before'])} → {loss(summary['heldout_mlm_loss_after'])}")


def _usable(path: Path, examples: list) -> tuple[list, dict[str, int]]:
    """The records of ``path`` a student may learn from (:func:`ade_distill.student.usable.usable_records`);
    says how many were excluded per teacher status, and raises :class:`DataError` when none is left."""
    from ade_distill.errors import DataError
    from ade_distill.student.usable import USABLE_STATUS, usable_records

    kept, excluded = usable_records(examples)
    if excluded:
        counts = ", ".join(f"{k} {v:,}" for k, v in excluded.items())
        msg = (f"{path}: {sum(excluded.values()):,} of {len(examples):,} records excluded, their teacher status is "
               f"not {USABLE_STATUS!r} ({counts}); they say nothing reliable about their text")
        typer.echo(msg, err=True)
    if not kept:
        raise DataError(f"no record to train on: every record's teacher status is not {USABLE_STATUS!r}", path=path)
    return kept, excluded


# The int8 accuracy guard's options, shared by export-onnx --int8 and quantize.
CheckGoldOpt = Annotated[
    Path | None, typer.Option("--check-gold", help="Held-out labelled records for the int8 guard (default: the "
                              "student's dev file, if it still exists unchanged).")
]
MaxF1LossOpt = Annotated[
    float, typer.Option("--max-f1-loss", help="Refuse int8 when it loses more relation F1 points (strict or "
                        "lenient) than this.")
]
GuardReferenceOpt = Annotated[
    str | None, typer.Option("--guard-reference", help="What the int8 loss is measured against: gold (the check "
                             "labels; default) or fp32 (the fp32 predictions).")
]
PerChannelOpt = Annotated[
    bool, typer.Option("--per-channel/--per-tensor", help="int8 weight scales per output channel or per matrix.")
]


def export_onnx(
    model: Annotated[Path, typer.Option("--model", help="Student folder (ade-distill train --out).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Export folder (default: MODEL/onnx; replaced if it exists).")
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8/--no-int8", help="Also make an int8 model (dynamic quantization), kept only "
                           "if it passes the accuracy guard.")
    ] = False,
    check_gold: CheckGoldOpt = None,
    max_f1_loss: MaxF1LossOpt = 0.5,
    reference: GuardReferenceOpt = None,
    per_channel: PerChannelOpt = True,
    float_ffn_output: Annotated[
        bool, typer.Option("--float-ffn-output/--int8-ffn-output", help="Keep the feed-forward output projections "
                           "in float (more accurate) or quantize them too (faster).")
    ] = True,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest |ONNX - torch| logit difference accepted at export.")
    ] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    threads: Annotated[int | None, typer.Option("--threads", help="torch and ONNX Runtime CPU threads.")] = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Export a student to ONNX (checked against torch) and optionally an int8 model behind an accuracy guard;
    predict with them by `ade-distill predict --runtime onnx [--quantize]`."""
    from ade_distill.student.onnx_export import export_onnx as run_export
    from ade_distill.student.onnx_export import quantize_int8

    if threads:
        import torch

        torch.set_num_threads(threads)
    check = None
    if check_gold is not None:
        from ade_distill.student.train import read_training_file
        from ade_distill.tasks.spec import load_task

        check = read_training_file(check_gold, load_task(model / "task.yaml"), label_map=label_map)
    folder = run_export(model, out, tolerance=tolerance, probe_texts=[e.text for e in (check or [])[:16]])
    manifest = json.loads((folder / "onnx.json").read_text(encoding="utf-8"))
    typer.echo(f"exported {folder} (max |onnx - torch|: {manifest['check']['max_abs_diff']})")
    if int8:
        report = quantize_int8(folder, check, check_source=str(check_gold) if check_gold else "given",
                               max_f1_loss=max_f1_loss, reference=reference, per_channel=per_channel,
                               float_ffn_output=float_ffn_output, batch_size=batch_size)
        speed = report["sentences_per_second"]
        typer.echo(f"int8 accepted: {report['message']}; {speed['fp32']} → {speed['int8']} sentences/s")


def quantize(
    model: Annotated[Path, typer.Option("--model", help="Student folder (ade-distill train --out).")],
    check_gold: CheckGoldOpt = None,
    max_f1_loss: MaxF1LossOpt = 0.5,
    reference: GuardReferenceOpt = None,
    per_channel: PerChannelOpt = True,
    float_ffn_output: Annotated[
        bool, typer.Option("--float-ffn-output/--int8-ffn-output", help="Keep the feed-forward output projections "
                           "in float (more accurate, slower) or quantize them too (default).")
    ] = False,
    smooth_alpha: Annotated[
        float | None, typer.Option("--smooth-alpha", help="Activation smoothing strength before quantization "
                                   "(SmoothQuant; 0: off; default 0.9, with --compile 0.5).", min=0.0, max=1.0)
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Records (JSONL) whose texts calibrate the smoothing "
                                  "(default: the check set's texts).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size of the measurement (recorded; "
                                            "the dynamic kernel scales int8 activations per batch).")] = 64,
    compile: Annotated[
        bool, typer.Option("--compile/--no-compile", help="Measure the compiled int8 kernel: activations scaled per "
                           "token, the int8 layers fused with the ops around them by torch.compile (closer to fp32; "
                           "needs a C++ compiler; per-channel weights). predict --quantize then compiles too.")
    ] = False,
    attention: Annotated[
        str | None, typer.Option("--attention", help="With --compile: the encoder's attention, 'model' (its own), "
                                 "'eager' (plain ops inductor fuses) or 'bf16' (the same, matmuls in bfloat16; "
                                 "default). BERT-style encoders only; others keep their own.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    label_map: LabelMapOpt = None,
) -> None:
    """Measure a student's torch int8 (dynamic quantization) on a held-out check set and record the verdict in
    MODEL/int8.json; `ade-distill predict --quantize` then predicts in int8 if it lost at most --max-f1-loss."""
    from ade_distill.student.quantize import Int8Options, guard_torch_int8

    if threads:
        import torch

        torch.set_num_threads(threads)
    check = None
    if check_gold is not None:
        from ade_distill.student.train import read_training_file
        from ade_distill.tasks.spec import load_task

        check = read_training_file(check_gold, load_task(model / "task.yaml"), label_map=label_map)
    texts = None
    if calibration is not None:
        from ade_distill.records import read_examples

        texts = [e.text for e in read_examples(calibration)]
    from ade_distill.errors import ConfigError
    from ade_distill.student.int8_compiled import ATTENTION_CHOICES

    if compile and not per_channel:
        raise ConfigError("--compile scales int8 weights per channel: drop --per-tensor")
    if attention is not None and not compile:
        raise ConfigError("--attention chooses the compiled kernel's attention: add --compile, or drop --attention")
    if attention is not None and attention not in ATTENTION_CHOICES:
        raise ConfigError(f"--attention must be one of {', '.join(ATTENTION_CHOICES)}, got {attention!r}")
    options = Int8Options(per_channel=per_channel, float_ffn_output=float_ffn_output, smooth_alpha=smooth_alpha,
                          kernel="compiled" if compile else "dynamic", attention=attention)
    report = guard_torch_int8(model, check, check_source=str(check_gold) if check_gold else "given",
                              max_f1_loss=max_f1_loss, reference=reference, batch_size=batch_size, options=options,
                              calibration=texts, calibration_source=str(calibration) if calibration else
                              "the check set's texts")
    speed = report["sentences_per_second"]
    typer.echo(f"int8 accepted: {report['message']}; {speed['fp32']} → {speed['int8']} sentences/s "
               f"(recorded in {model / 'int8.json'})")


def compress(
    teacher: Annotated[list[Path], typer.Option("--teacher", help="Teacher student folder; repeat it for an "
                                                "ensemble (its members' probabilities are averaged).")],
    out: Annotated[Path, typer.Option("--out", help="Folder of the compact student.")],
    texts: Annotated[list[Path] | None, typer.Option("--texts", help="Records whose texts join the transfer set "
                                                     "(the training fold's silver; labels unused).")] = None,
    unlabeled: Annotated[list[Path] | None, typer.Option("--unlabeled", help="Unlabeled documents (JSONL "
                                                         "abstracts, MEDLINE XML, text), split into sentences.")] = None,
    exclude: Annotated[list[Path] | None, typer.Option("--exclude", help="Records whose PMIDs and texts are removed "
                                                       "from --unlabeled (as adapt-encoder); repeatable.")] = None,
    max_unlabeled: Annotated[int | None, typer.Option("--max-unlabeled", help="At most this many unlabeled "
                                                      "sentences.")] = None,
    encoder: Annotated[str, typer.Option("--encoder", help="The student's encoder (minilm, a name or a folder).")] = "minilm",
    layers: Annotated[int | None, typer.Option("--layers", help="Keep this many encoder layers, evenly spaced "
                                               "(first and last kept).")] = None,
    init: Annotated[str, typer.Option("--init", help="encoder: start from the pretrained --encoder with fresh "
                                      "task layers; teacher: start from a copy of the one --teacher (task layers "
                                      "included), cut to --layers.")] = "encoder",
    epochs: Annotated[int, typer.Option("--epochs")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    lr: Annotated[float, typer.Option("--lr")] = 1e-4,
    max_length: Annotated[int, typer.Option("--max-length")] = 128,
    temperature: Annotated[float, typer.Option("--temperature")] = 2.0,
    kl_weight: Annotated[float, typer.Option("--kl-weight", help="KL on both stages' distributions.")] = 1.0,
    hard_weight: Annotated[float, typer.Option("--hard-weight", help="CE on the teacher's decoded tags.")] = 0.5,
    hidden_weight: Annotated[float, typer.Option("--hidden-weight", help="Hidden-state MSE.")] = 0.0,
    attention_weight: Annotated[float, typer.Option("--attention-weight", help="Attention-map KL (same "
                                                    "tokenizer only).")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 13,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="fp32, or bf16 (teacher passes and the student's "
                                           "forward pass under bfloat16 autocast).")] = "fp32",
) -> None:
    """Distil a teacher student (or an ensemble) into a compact student on silver and unlabeled text."""
    from ade_distill.errors import ConfigError
    from ade_distill.student.compress import CompressConfig, compress_student, transfer_texts

    cfg = CompressConfig.build(
        encoder=encoder, init=init, layers=layers, epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length,
        temperature=temperature, kl_weight=kl_weight, hard_weight=hard_weight, hidden_weight=hidden_weight,
        attention_weight=attention_weight, seed=seed, threads=threads, precision=precision)
    corpus, stats = transfer_texts(texts or [], unlabeled or [], exclude or [], max_unlabeled)
    if not corpus:
        raise ConfigError("no transfer text: give --texts and/or --unlabeled")
    sources = {"texts": [str(p) for p in texts or []], "unlabeled": [str(p) for p in unlabeled or []],
               "exclude": [str(p) for p in exclude or []]}
    folder = compress_student(teacher, corpus, out, cfg, provenance={"transfer": {**stats, **sources}})
    s = json.loads((folder / "compress.json").read_text(encoding="utf-8"))
    typer.echo(f"saved {folder}: {len(corpus):,} transfer texts, stage-1 KL to the teacher "
               f"{s['stage1_kl_before']} → {s['stage1_kl_after']} in {s['seconds']}s")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict``, ``adapt-encoder``, ``export-onnx``, ``quantize`` and ``compress`` to the root
    app."""
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("adapt-encoder")(adapt_encoder)
    app.command("export-onnx")(export_onnx)
    app.command("quantize")(quantize)
    app.command("compress")(compress)
