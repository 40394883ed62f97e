"""Training a student on silver or gold records: seeded, length-grouped batches with dynamic padding, AdamW with
linear warm-up/decay, early stopping on a dev set (strict relation F1 from the evaluation harness), and an
atomic save of the best model.

Runs on CPU as is and on several GPUs (or CPU processes) through Hugging Face Accelerate::

    accelerate launch --multi_gpu --num_processes 4 -m ade_distill train --task ade --train silver.jsonl \\
        --dev dev.jsonl --out runs/student

(On a machine without CUDA the same ``--multi_gpu`` launch runs CPU processes over gloo; ``--cpu`` instead
selects accelerate's single-process launcher.)

Each process takes every n-th of an epoch's length-grouped batches (the same count on every process); every process
evaluates the whole dev set with the same weights, so early-stopping decisions agree; only the main process
writes the model folder.

Negatives: examples without any usable relation are kept with probability ``negative_fraction`` per epoch
(resampled each epoch with the seed; 1.0 keeps all, 0.0 drops them) — the ADE corpus has four negative sentences
for every positive one.
"""

from __future__ import annotations

import json
import logging
import math
import random
import resource
import time
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """Student training options. Invalid values raise :class:`ConfigError` naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    encoder: str = Field(default="minilm", min_length=1)
    architecture: Literal["drug_conditioned", "pairwise"] = "drug_conditioned"
    tail_head: Literal["linear", "interaction"] = Field(
        default="linear", description="drug_conditioned stage-2 layer: 'linear' (the paper's) or 'interaction'.")
    epochs: int = Field(default=5, ge=1, le=1000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    lr: float = Field(default=5e-5, gt=0.0, lt=1.0, description="Learning rate of the encoder.")
    head_lr: float | None = Field(default=1e-3, gt=0.0, lt=1.0, description="Learning rate of the new layers.")
    max_length: int = Field(default=128, ge=8, le=4096)
    window_long_texts: bool = Field(
        default=False,
        description="Cut texts longer than max_length into windows of whole sentences (train and predict) "
        "instead of truncating them in training and predicting them sentence by sentence.")
    seed: int = 13
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    patience: int = Field(default=2, ge=0, description="Dev evaluations without improvement before stopping.")
    eval_every: int | None = Field(default=None, ge=1, description="Also evaluate every N steps (else per epoch).")
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0, description="Drop silver spans/relations below.")
    confidence_weighting: bool = False
    soft_targets: bool = Field(
        default=False,
        description="With confidence_weighting: learn each silver span's confidence (the teachers' vote fraction) "
        "as a soft target (confidence on its tag, the rest on O) instead of as a loss weight.")
    soft_temperature: float = Field(default=1.0, gt=0.0, le=20.0, description="Temperature of soft_targets.")
    negative_fraction: float = Field(default=1.0, ge=0.0, le=1.0)
    dev_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="Carve a dev split (by PMID) if no dev.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    head_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    tail_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    relation_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    calibrate_thresholds: bool = Field(
        default=False,
        description="After training, pick head/tail thresholds from a grid by dev strict relation F1 (the dev "
        "set is silver in distillation, so no gold label is used).")
    threads: int | None = Field(default=None, ge=1, le=512, description="torch CPU threads.")
    deterministic: bool = True
    eval_batch_size: int = Field(default=64, ge=1)
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: the forward pass under bfloat16 autocast (weights, optimizer state and the saved "
        "model stay fp32); about 2x faster on CPUs with AVX512-BF16 or AMX and on recent GPUs.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.architecture == "pairwise" and self.tail_head != "linear":
            raise ValueError("tail_head applies to the drug_conditioned architecture only")
        if self.soft_targets and (self.architecture != "drug_conditioned" or not self.confidence_weighting):
            raise ValueError("soft_targets needs the drug_conditioned architecture and confidence_weighting")
        if self.architecture == "pairwise" and self.relation_threshold <= 0.0:
            raise ValueError("relation_threshold must be > 0 for the pairwise architecture")
        return self

    @classmethod
    def build(cls, **kwargs: Any) -> TrainConfig:
        """Validate options, raising :class:`ConfigError` with the field, value and constraint."""
        try:
            return cls(**kwargs)
        except ValidationError as err:
            msgs = []
            for e in err.errors():
                loc = ".".join(str(x) for x in e["loc"]) or "config"
                msgs.append(f"{loc}={e.get('input')!r}: {e['msg']}")
            raise ConfigError("invalid training option: " + "; ".join(msgs)) from None


def _group(ex: Example) -> str:
    return str(ex.meta.get("pmid", ex.meta.get("doc_id", ex.id)))


def split_dev(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split examples into (train, dev) by PubMed ID (``meta.pmid``, else ``doc_id``, else id), seeded."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"dev fraction must be in (0, 1), got {fraction}")
    groups = sorted({_group(e) for e in examples})
    random.Random(seed).shuffle(groups)
    n_dev = max(1, round(len(groups) * fraction))
    dev_groups = set(groups[:n_dev])
    train = [e for e in examples if _group(e) not in dev_groups]
    dev = [e for e in examples if _group(e) in dev_groups]
    if not train:
        raise ConfigError("dev split left no training examples; lower dev_fraction")
    return train, dev


def relation_f1(gold: Sequence[Example], pred: Sequence[Example]) -> tuple[tuple[float, float, float], str]:
    """Strict relation micro P/R/F1 from the evaluation harness; returns the scores and the scorer's name."""
    try:
        from ade_distill.evaluation import micro_prf
    except ImportError:
        micro_prf = None
    if micro_prf is not None:
        p, r, f = micro_prf(gold, pred, mode="strict", level="relation")
        return (float(p), float(r), float(f)), "ade_distill.evaluation.micro_prf(strict, relation)"
    return _strict_relation_prf(gold, pred), "student fallback strict relation P/R/F1 (evaluation not installed)"


def _strict_relation_prf(gold: Sequence[Example], pred: Sequence[Example]) -> tuple[float, float, float]:
    """Exact-offset, label-matching relation P/R/F1 summed over examples (used only if the harness is absent)."""

    def keys(ex: Example) -> set[tuple[Any, ...]]:
        by = ex.span_by_id()
        out = set()
        for r in ex.relations:
            h, t = by[r.head], by[r.tail]
            if h.start is None or t.start is None:
                continue
            out.add((ex.id, r.label, h.label, h.start, h.end, t.label, t.start, t.end))
        return out

    g = set().union(*(keys(e) for e in gold)) if gold else set()
    p = set().union(*(keys(e) for e in pred)) if pred else set()
    tp = len(g & p)
    prec = tp / len(p) if p else 0.0
    rec = tp / len(g) if g else 0.0
    f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _provenance(train: Sequence[Example], dev: Sequence[Example] | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    def summary(exs: Sequence[Example]) -> dict[str, Any]:
        sources: dict[str, int] = defaultdict(int)
        teachers: dict[str, int] = defaultdict(int)
        for e in exs:
            sources[str(e.meta.get("source", "unknown"))] += 1
            for key in ("teacher", "teacher_model", "model"):
                if key in e.meta:
                    teachers[str(e.meta[key])] += 1
                    break
        scored = sum(1 for e in exs for s in e.spans if s.score is not None)
        return {
            "examples": len(exs),
            "with_relations": sum(1 for e in exs if e.relations),
            "relations": sum(len(e.relations) for e in exs),
            "spans": sum(len(e.spans) for e in exs),
            "spans_with_scores": scored,
            "sources": dict(sources),
            "teachers": dict(teachers),
            "labels": "silver" if teachers or scored else "gold",
        }

    out = {"train": summary(train)}
    if dev is not None:
        out["dev"] = summary(dev)
    if extra:
        out.update(extra)
    return out


def train_student(
    task: TaskSpec,
    train: Sequence[Example],
    dev: Sequence[Example] | None,
    config: TrainConfig,
    out_dir: Path,
    *,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Train a student and save the best model (by dev strict relation F1; the last one without dev) to
    ``out_dir``, with ``metrics.json`` and ``training_log.jsonl`` inside. The folder appears only when complete.

    Raises:
        ConfigError: invalid options or no usable training example.
    """
    import numpy as np
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    from ade_distill.student.data import FeatureStats, build_features, collate, length_grouped_batches
    from ade_distill.student.model import StudentConfig, StudentExtractor

    out_dir = Path(out_dir)
    if not train:
        raise ConfigError("no training examples")
    if dev is None and config.dev_fraction > 0:
        train, dev = split_dev(train, config.dev_fraction, config.seed)
    if config.calibrate_thresholds and not dev:
        raise ConfigError("calibrate_thresholds needs a dev set (give --dev or --dev-fraction)")
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    try:
        acc = Accelerator(
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        scfg = StudentConfig(
            architecture=config.architecture, encoder=config.encoder, max_length=config.max_length,
            dropout=config.dropout, tail_head=config.tail_head, window_long_texts=config.window_long_texts,
            head_threshold=config.head_threshold, tail_threshold=config.tail_threshold,
            relation_threshold=config.relation_threshold,
        )
        student = StudentExtractor.from_encoder(task, scfg, seed=config.seed)
        window_stats = None
        if config.window_long_texts:
            from ade_distill.student.windows import window_examples

            train, wstats = window_examples(student.tokenizer, train, config.max_length)
            window_stats = wstats.as_dict()
            log.info("windows: %s", window_stats)
        fstats = FeatureStats()
        encs = student.encode([e.text for e in train])
        feats = build_features(
            task, train, encs, min_confidence=config.min_confidence,
            confidence_weighting=config.confidence_weighting, stats=fstats,
        )
        if not any(f.has_relation or f.mentions for f in feats):
            raise ConfigError(
                f"no usable training relation in {len(train)} examples (feature counts: {fstats.as_dict()}); "
                "check the task's labels, min_confidence and span offsets"
            )
        log.info("features: %s", fstats.as_dict())
        pos = [i for i, f in enumerate(feats) if f.has_relation or f.mentions]
        neg = [i for i, f in enumerate(feats) if not (f.has_relation or f.mentions)]
        per_epoch = len(pos) + round(len(neg) * config.negative_fraction)
        steps_per_epoch = math.ceil(per_epoch / config.batch_size / acc.num_processes)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps:
            total_steps = min(total_steps, config.max_steps)

        module = student.module
        if config.soft_targets:
            module.soft_targets, module.temperature = True, config.soft_temperature
        head_lr = config.head_lr or config.lr
        enc_params = [(n, p) for n, p in module.named_parameters() if n.startswith("encoder.")]
        new_params = [(n, p) for n, p in module.named_parameters() if not n.startswith("encoder.")]

        def groups(params: list[tuple[str, Any]], lr: float) -> list[dict[str, Any]]:
            def no_decay(n: str) -> bool:
                return n.endswith("bias") or "layernorm" in n.lower() or "norm" in n.lower()

            decay = [p for n, p in params if not no_decay(n)]
            nodecay = [p for n, p in params if no_decay(n)]
            return [
                {"params": decay, "lr": lr, "weight_decay": config.weight_decay},
                {"params": nodecay, "lr": lr, "weight_decay": 0.0},
            ]

        optim = torch.optim.AdamW(groups(enc_params, config.lr) + groups(new_params, head_lr))
        sched = get_linear_schedule_with_warmup(optim, int(config.warmup_ratio * total_steps), max(1, total_steps))
        model, optim = acc.prepare(module, optim)
        student.module = acc.unwrap_model(model)

        log_path = out_dir.parent / f".{out_dir.name}.training_log.jsonl"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_lines: list[str] = []

        def record(entry: dict[str, Any]) -> None:
            line = json.dumps(entry, sort_keys=True)
            log_lines.append(line)
            if acc.is_main_process:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")

        if acc.is_main_process:
            log_path.write_text("", encoding="utf-8")
        best_f1, best_state, best_at = -1.0, None, None
        bad_evals = 0
        scorer = None
        step = 0
        stop = False
        train_sentences = 0
        train_seconds = 0.0
        history: list[dict[str, Any]] = []

        def evaluate(epoch: int) -> bool:
            """Score dev; keep the best weights; True when patience is exhausted."""
            nonlocal best_f1, best_state, best_at, bad_evals, scorer
            model.eval()
            t0 = time.perf_counter()
            preds = student.predict(dev, batch_size=config.eval_batch_size)
            (p, r, f), scorer = relation_f1(dev, preds)
            entry = {"event": "dev", "epoch": epoch, "step": step, "precision": p, "recall": r, "f1": f,
                     "predicted_relations": sum(len(e.relations) for e in preds),
                     "seconds": round(time.perf_counter() - t0, 2)}
            history.append(entry)
            record(entry)
            log.info("dev epoch %d step %d: P %.4f R %.4f F1 %.4f", epoch, step, p, r, f)
            model.train()
            if f > best_f1:
                best_f1, best_at, bad_evals = f, {"epoch": epoch, "step": step}, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in student.module.state_dict().items()}
                return False
            bad_evals += 1
            return bad_evals > config.patience

        for epoch in range(1, config.epochs + 1):
            rng = random.Random(config.seed * 1000 + epoch)
            chosen = pos + [i for i in neg if rng.random() < config.negative_fraction]
            batches_local = length_grouped_batches(
                [len(feats[i].enc) for i in chosen], config.batch_size, seed=config.seed * 1000 + epoch
            )
            batches = [[chosen[j] for j in b] for b in batches_local]
            if acc.num_processes > 1:  # shard: every process takes the same number of batches
                keep = len(batches) - len(batches) % acc.num_processes
                batches = batches[acc.process_index : keep : acc.num_processes]
            loader = DataLoader(
                feats, batch_sampler=batches,
                collate_fn=partial(collate, pad_id=student.tokenizer.pad_token_id or 0,
                                   architecture=config.architecture),
            )
            model.train()
            t0 = time.perf_counter()
            n_sent = 0
            loss_sum, loss_n = 0.0, 0
            for batch in loader:
                batch = {k: v.to(acc.device) for k, v in batch.items()}
                with torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                    out = model(**batch)
                loss = out["loss"].float()
                acc.backward(loss)
                if config.grad_clip:
                    acc.clip_grad_norm_(model.parameters(), config.grad_clip)
                optim.step()
                sched.step()
                optim.zero_grad()
                step += 1
                n_sent += int(batch["input_ids"].size(0))
                loss_sum += float(loss.detach())
                loss_n += 1
                if step % 100 == 0:
                    log.info("epoch %d step %d: mean loss %.4f, %.1f sentences/s", epoch, step,
                             loss_sum / loss_n, n_sent / (time.perf_counter() - t0))
                if config.eval_every and dev and step % config.eval_every == 0 and evaluate(epoch):
                    stop = True
                    break
                if config.max_steps and step >= config.max_steps:
                    stop = True
                    break
            secs = time.perf_counter() - t0
            train_sentences += n_sent
            train_seconds += secs
            entry = {"event": "epoch", "epoch": epoch, "step": step, "loss": loss_sum / max(1, loss_n),
                     "sentences": n_sent, "seconds": round(secs, 2),
                     "sentences_per_second": round(n_sent / secs, 2) if secs else None,
                     "peak_rss_mb": round(_peak_rss_mb(), 1)}
            history.append(entry)
            record(entry)
            log.info("epoch %d: loss %.4f, %d sentences in %.1fs", epoch, entry["loss"], n_sent, secs)
            if dev and not config.eval_every and evaluate(epoch):
                stop = True
            if stop:
                break
        if dev and history[-1]["event"] != "dev":  # always score the final weights too
            evaluate(epoch)
        if best_state is not None:
            student.module.load_state_dict(best_state)
        model.eval()
        calibration = None
        if config.calibrate_thresholds and dev:
            calibration = calibrate_thresholds(student, dev, config.eval_batch_size)
            student.config = student.config.model_copy(update={
                "head_threshold": calibration["head_threshold"], "tail_threshold": calibration["tail_threshold"]})
            record({"event": "calibration", **calibration})
            log.info("calibrated thresholds: %s", calibration)
        metrics: dict[str, Any] = {
            "best_dev": {"f1": best_f1, **(best_at or {})} if dev else None,
            "dev_scorer": scorer,
            "steps": step,
            "epochs_run": epoch,
            "train_sentences_per_second": round(train_sentences / train_seconds, 2) if train_seconds else None,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "features": fstats.as_dict(),
            "windows": window_stats,
            "calibration": calibration,
            "processes": acc.num_processes,
            "device": str(acc.device),
            "history": history,
        }
        student.config = student.config.model_copy(update={
            "provenance": _provenance(train, dev, provenance),
            "metrics": {k: metrics[k] for k in ("best_dev", "dev_scorer", "steps", "epochs_run",
                                                "train_sentences_per_second", "peak_rss_mb", "calibration")},
        })
        student.config = student.config.model_copy(
            update={"provenance": {**student.config.provenance, "train_config": config.model_dump()}}
        )
        acc.wait_for_everyone()
        if acc.is_main_process:
            student.module.to("cpu")
            student.save_pretrained(
                out_dir,
                extra_files={
                    "metrics.json": json.dumps(metrics, indent=2, sort_keys=True) + "\n",
                    "training_log.jsonl": "\n".join(log_lines) + "\n",
                    "train_config.json": config.model_dump_json(indent=2) + "\n",
                },
            )
            log_path.unlink(missing_ok=True)
        acc.wait_for_everyone()
        return out_dir
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


THRESHOLD_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)


def calibrate_thresholds(student: Any, dev: Sequence[Example], batch_size: int = 64) -> dict[str, Any]:
    """Head and tail thresholds from :data:`THRESHOLD_GRID` that maximise dev strict relation F1.

    One dev prediction per grid point (25 on the default grid); ties keep the pair closest to the defaults
    (0.5, 0.5). Returns the choice, its F1, the F1 at the thresholds configured before (when on the grid) and
    the whole grid.
    """
    original = student.config
    scores: dict[tuple[float, float], float] = {}
    try:
        for ht in THRESHOLD_GRID:
            for tt in THRESHOLD_GRID:
                student.config = original.model_copy(update={"head_threshold": ht, "tail_threshold": tt})
                (_, _, f), _ = relation_f1(dev, student.predict(dev, batch_size=batch_size))
                scores[(ht, tt)] = f
    finally:
        student.config = original
    best = max(scores, key=lambda k: (round(scores[k], 6), -abs(k[0] - 0.5) - abs(k[1] - 0.5)))
    return {"head_threshold": best[0], "tail_threshold": best[1], "dev_f1": scores[best],
            "dev_f1_before": scores.get((original.head_threshold, original.tail_threshold)),
            "grid": [[k[0], k[1], v] for k, v in sorted(scores.items())]}


def read_training_file(path: str | Path, task: TaskSpec) -> list[Example]:
    """Read a training/dev JSONL file, checking labels against the task (errors name file and line)."""
    from ade_distill.records import read_examples

    exs = list(read_examples(path, task=task))
    if not exs:
        raise DataError("no examples in file", path=path)
    return exs


__all__ = ["TrainConfig", "train_student", "split_dev", "relation_f1", "read_training_file", "calibrate_thresholds"]
