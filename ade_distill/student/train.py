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

The loop is written out rather than handed to transformers' ``Trainer``: its epochs resample negatives and batch
by length with the seed, it shards batches over processes itself, it evaluates by decoding the dev set and
scoring it with the evaluation harness, and committed results and cached models depend on its exact order of
seeded draws and optimizer steps — ``Trainer`` would bring its own sampler, optimizer set-up and RNG order and
change every trained model. :func:`train_student` reads as its steps instead: check the inputs, seed, build the
student, window and encode the examples, plan the epochs' batches, run the epochs (:class:`_TrainingRun`),
restore the best weights and calibrate, save.

**Resumable.** After every epoch (and its dev evaluation) the whole training state — weights, optimizer and
schedule, the random generators, the log, the best weights so far and the early-stopping count — is written
beside the model folder (``.<name>.checkpoint.pt``, atomically). A run killed mid-way (a session's end, a
machine going back) and started again with the same task, options, data, tokenizer and initial weights resumes
after the last finished epoch and, on CPU, produces bit for bit the model the uninterrupted run would have (on a
GPU, as closely as that GPU's own reruns agree); anything else starts over. The checkpoint is removed once the
model folder is saved; it holds the weights three times and the optimizer state (about 360 MB for MiniLM-L6,
1.8 GB for mpnet). A checkpoint that cannot be written is skipped with a warning, never the training.
(Single-process runs; a multi-process run starts over.)
"""

from __future__ import annotations

import json
import logging
import math
import random
import resource
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from ade_distill.data.standoff import FormatOptions

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """Student training options. Invalid values raise :class:`ConfigError` naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    encoder: str = Field(default="minilm", min_length=1)
    architecture: Literal["drug_conditioned", "pairwise", "pair_classifier"] = "drug_conditioned"
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
    patience: int = Field(default=2, ge=0, description="Dev evaluations in a row without improvement that are tolerated; "
                          "training stops at the next one.")
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
    pair_structure: bool = Field(
        default=False,
        description="pair_classifier: also feed the classifier each candidate pair's structure features (sentence "
        "distance, same-sentence co-occurrences, mentions in the first sentence, mention frequency), as the "
        "distance features of document-level relation extraction baselines do.")
    calibrate_thresholds: bool = Field(
        default=False,
        description="After training, pick decision thresholds on the dev set (silver in distillation, so no gold "
        "label is used): head/tail tagging thresholds by strict relation F1 (drug_conditioned), or the relation "
        "threshold by entity-pair F1 (pair_classifier).")
    threads: int | None = Field(default=None, ge=1, le=512, description="torch CPU threads.")
    deterministic: bool = True
    eval_batch_size: int = Field(default=64, ge=1)
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: the forward pass under bfloat16 autocast (weights, optimizer state and the saved "
        "model stay fp32); about 2x faster on CPUs with AVX512-BF16 or AMX and on recent GPUs.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.architecture != "drug_conditioned" and self.tail_head != "linear":
            raise ValueError("tail_head applies to the drug_conditioned architecture only")
        if self.pair_structure and self.architecture != "pair_classifier":
            raise ValueError("pair_structure applies to the pair_classifier architecture only")
        if self.soft_targets and (self.architecture != "drug_conditioned" or not self.confidence_weighting):
            raise ValueError("soft_targets needs the drug_conditioned architecture and confidence_weighting")
        if self.architecture in ("pairwise", "pair_classifier") and self.relation_threshold <= 0.0:
            raise ValueError(f"relation_threshold must be > 0 for the {self.architecture} architecture")
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


def split_dev(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split examples into (train, dev) by PubMed ID (``meta.pmid``, else ``doc_id``, else id), seeded."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"dev fraction must be in (0, 1), got {fraction}")
    groups = sorted({e.document_id() for e in examples})
    random.Random(seed).shuffle(groups)
    n_dev = max(1, round(len(groups) * fraction))
    dev_groups = set(groups[:n_dev])
    train = [e for e in examples if e.document_id() not in dev_groups]
    dev = [e for e in examples if e.document_id() in dev_groups]
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
    resume: bool = True,
) -> Path:
    """Train a student and save the best model (by dev strict relation F1; the last one without dev) to
    ``out_dir``, with ``metrics.json`` and ``training_log.jsonl`` inside. The folder appears only when complete.
    With ``resume`` the run checkpoints every epoch and continues an interrupted run of the same task, options
    and data (see the module docstring).

    Raises:
        ConfigError: invalid options or no usable training example.
    """
    from ade_distill.student import checkpoint

    out_dir = Path(out_dir)
    train, dev = _train_and_dev(train, dev, config)
    with _torch_settings(config):
        acc = _accelerator()
        student = _new_student(task, config)
        train, window_stats = _windowed(student, train, config)
        feats, fstats = _training_features(task, student, train, config)
        plan = _EpochPlan.of(feats, config, acc.num_processes, acc.process_index)
        run = _TrainingRun.start(student, config, dev, acc, plan, out_dir)
        if resume and acc.num_processes == 1:
            run.checkpoint = checkpoint.path_for(out_dir)
            run.fingerprint = _run_fingerprint(task, train, dev, config, student, acc.device.type)
        epochs_run = run.fit(feats)
        calibration = run.finish()
        metrics: dict[str, Any] = {
            "best_dev": {"f1": run.best_f1, **(run.best_at or {})} if dev else None,
            "dev_scorer": run.scorer,
            "steps": run.step,
            "epochs_run": epochs_run,
            "train_sentences_per_second": (
                round(run.train_sentences / run.train_seconds, 2) if run.train_seconds else None),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "features": fstats.as_dict(),
            "windows": window_stats,
            "calibration": calibration,
            "earlier_attempts_seconds": round(run.earlier_seconds, 1),
            "processes": acc.num_processes,
            "device": str(acc.device),
            "history": run.history,
        }
        _save(student, config, metrics, run.log_lines, _provenance(train, dev, provenance), out_dir, acc,
              run.log_path)
        if run.checkpoint is not None:
            run.checkpoint.unlink(missing_ok=True)
        return out_dir


def _run_fingerprint(task: TaskSpec, train: Sequence[Example], dev: Sequence[Example] | None,
                     config: TrainConfig, student: Any, device: str) -> str:
    """What a checkpoint must match to be resumed: the task, the training options, every training and dev record,
    the tokenizer, the student's initial weights (the encoder as loaded and the seeded new layers) and the device
    type. Computed before the first step."""
    from ade_distill.student import checkpoint

    return checkpoint.fingerprint(
        [task.model_dump_json(), config.model_dump_json(), device, checkpoint.tokenizer_spec(student.tokenizer)],
        [(name, (e.model_dump_json() for e in exs)) for name, exs in (("train", train), ("dev", dev or ()))],
        [student.module])


def _train_and_dev(
    train: Sequence[Example], dev: Sequence[Example] | None, config: TrainConfig
) -> tuple[Sequence[Example], Sequence[Example] | None]:
    """The training and dev examples (a dev split carved by PMID when asked); checks that they can be used."""
    if not train:
        raise ConfigError("no training examples")
    if dev is None and config.dev_fraction > 0:
        train, dev = split_dev(train, config.dev_fraction, config.seed)
    if config.calibrate_thresholds and not dev:
        raise ConfigError("calibrate_thresholds needs a dev set (give --dev or --dev-fraction)")
    return train, dev


@contextmanager
def _torch_settings(config: TrainConfig) -> Iterator[None]:
    """CPU threads, deterministic algorithms and the seeds of ``random``, numpy and torch for one training run;
    torch's thread count and determinism flag are restored afterwards."""
    import numpy as np
    import torch

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
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def _accelerator() -> Any:
    """One process of a (possibly multi-process) Accelerate launch; CPU when CUDA is absent."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    return Accelerator(
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _new_student(task: TaskSpec, config: TrainConfig) -> Any:
    """A :class:`StudentExtractor` with the pretrained encoder and fresh heads seeded by ``config.seed``."""
    from ade_distill.student.config import StudentConfig
    from ade_distill.student.model import StudentExtractor

    scfg = StudentConfig(
        architecture=config.architecture, encoder=config.encoder, max_length=config.max_length,
        dropout=config.dropout, tail_head=config.tail_head, window_long_texts=config.window_long_texts,
        head_threshold=config.head_threshold, tail_threshold=config.tail_threshold,
        relation_threshold=config.relation_threshold, pair_structure=config.pair_structure,
    )
    student = StudentExtractor.from_encoder(task, scfg, seed=config.seed)
    if config.soft_targets:  # a training setting of the module's loss, not saved with the model
        student.module.soft_targets, student.module.temperature = True, config.soft_temperature
    return student


def _windowed(
    student: Any, train: Sequence[Example], config: TrainConfig
) -> tuple[Sequence[Example], dict[str, Any] | None]:
    """With ``window_long_texts``: long texts cut into windows of whole sentences, and the window counts."""
    if not config.window_long_texts or config.architecture == "pair_classifier":  # it encodes texts in chunks
        return train, None
    from ade_distill.student.windows import window_examples

    windows, wstats = window_examples(student.tokenizer, train, config.max_length)
    log.info("windows: %s", wstats.as_dict())
    return windows, wstats.as_dict()


def _training_features(
    task: TaskSpec, student: Any, train: Sequence[Example], config: TrainConfig
) -> tuple[list[Any], Any]:
    """Encoded training targets of every example, and the counts of what was left out.

    Raises:
        ConfigError: no example has a usable relation or head mention.
    """
    from ade_distill.student.data import FeatureStats, build_features

    if config.architecture == "pair_classifier":
        return _pair_features(task, student, train, config)
    fstats = FeatureStats()
    encs = student.encode([e.text for e in train])
    feats = build_features(
        task, train, encs, min_confidence=config.min_confidence,
        confidence_weighting=config.confidence_weighting, stats=fstats,
    )
    if not any(_is_positive(f) for f in feats):
        raise ConfigError(
            f"no usable training relation in {len(train)} examples (feature counts: {fstats.as_dict()}); "
            "check the task's labels, min_confidence and span offsets"
        )
    log.info("features: %s", fstats.as_dict())
    return feats, fstats


def _pair_features(task: TaskSpec, student: Any, train: Sequence[Example], config: TrainConfig
                   ) -> tuple[list[Any], Any]:
    """pair_classifier: marked, chunked texts, entities and concept-pair targets (:mod:`.pair_classifier`)."""
    from ade_distill.student.pair_classifier import PairStats, build_pair_features

    pstats = PairStats()
    feats = build_pair_features(task, train, student.tokenizer, config.max_length,
                                min_confidence=config.min_confidence,
                                confidence_weighting=config.confidence_weighting, stats=pstats)
    if not any(f.has_relation for f in feats):
        raise ConfigError(f"no usable training relation between entity mentions in {len(train)} examples "
                          f"(feature counts: {pstats.as_dict()})")
    log.info("pair features: %s", pstats.as_dict())
    return feats, pstats


def _is_positive(f: Any) -> bool:
    return bool(f.has_relation or f.mentions)


@dataclass(frozen=True)
class _EpochPlan:
    """Which features each epoch trains on, in which batches, on this process; and the number of optimizer
    steps of the whole run (the learning-rate schedule's length)."""

    lengths: list[int]
    positives: list[int]
    negatives: list[int]
    config: TrainConfig
    num_processes: int
    process_index: int
    total_steps: int

    @classmethod
    def of(cls, feats: Sequence[Any], config: TrainConfig, num_processes: int, process_index: int) -> _EpochPlan:
        pos = [i for i, f in enumerate(feats) if _is_positive(f)]
        neg = [i for i, f in enumerate(feats) if not _is_positive(f)]
        per_epoch = len(pos) + round(len(neg) * config.negative_fraction)
        steps_per_epoch = math.ceil(per_epoch / config.batch_size / num_processes)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps:
            total_steps = min(total_steps, config.max_steps)
        return cls([len(f.enc) for f in feats], pos, neg, config, num_processes, process_index, total_steps)

    def batches(self, epoch: int) -> list[list[int]]:
        """Feature indices per batch of ``epoch``: every positive and a seeded draw of ``negative_fraction`` of
        the negatives, in length-grouped batches; with several processes, every n-th batch (the same count on
        every process)."""
        from ade_distill.student.data import length_grouped_batches

        cfg = self.config
        rng = random.Random(cfg.seed * 1000 + epoch)
        chosen = self.positives + [i for i in self.negatives if rng.random() < cfg.negative_fraction]
        batches_local = length_grouped_batches(
            [self.lengths[i] for i in chosen], cfg.batch_size, seed=cfg.seed * 1000 + epoch
        )
        batches = [[chosen[j] for j in b] for b in batches_local]
        if self.num_processes > 1:  # shard: every process takes the same number of batches
            keep = len(batches) - len(batches) % self.num_processes
            batches = batches[self.process_index : keep : self.num_processes]
        return batches


def _optimizer(module: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW with the encoder at ``lr`` and the new layers at ``head_lr`` (no weight decay on biases and norms),
    and a linear warm-up/decay schedule over ``total_steps``."""
    import torch
    from transformers import get_linear_schedule_with_warmup

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
    return optim, sched


@dataclass
class _TrainingRun:
    """The training loop's state: the prepared model and optimizer, the step count, the training log and the
    best dev score with its weights (early stopping)."""

    student: Any
    config: TrainConfig
    dev: Sequence[Example] | None
    acc: Any
    plan: _EpochPlan
    model: Any
    optim: Any
    sched: Any
    log_path: Path
    log_lines: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    best_f1: float = -1.0
    best_state: dict[str, Any] | None = None
    best_at: dict[str, int] | None = None
    bad_evals: int = 0
    scorer: str | None = None
    train_sentences: int = 0
    train_seconds: float = 0.0
    checkpoint: Path | None = None  # where to checkpoint every epoch (None: no checkpoints)
    fingerprint: str = ""
    earlier_seconds: float = 0.0  # wall seconds of interrupted attempts up to their last checkpoint
    started_at: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, student: Any, config: TrainConfig, dev: Sequence[Example] | None, acc: Any, plan: _EpochPlan,
              out_dir: Path) -> _TrainingRun:
        """Optimizer and schedule, the model prepared by Accelerate, and an empty training log beside
        ``out_dir`` (moved into the model folder when it is saved)."""
        optim, sched = _optimizer(student.module, config, plan.total_steps)
        model, optim = acc.prepare(student.module, optim)
        student.module = acc.unwrap_model(model)
        log_path = out_dir.parent / f".{out_dir.name}.training_log.jsonl"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if acc.is_main_process:
            log_path.write_text("", encoding="utf-8")
        return cls(student, config, dev, acc, plan, model, optim, sched, log_path)

    def record(self, entry: dict[str, Any]) -> None:
        """Add one event to the training log (written as it happens by the main process)."""
        line = json.dumps(entry, sort_keys=True)
        self.log_lines.append(line)
        if self.acc.is_main_process:
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def fit(self, feats: Sequence[Any]) -> int:
        """Epochs until ``epochs``, ``max_steps`` or early stopping; the final weights are always scored on
        dev. Returns the number of epochs run."""
        cfg = self.config
        epoch, stop = self.resume()
        while not stop and epoch < cfg.epochs:
            epoch += 1
            stop = self._epoch(epoch, feats)
            if self.dev and not cfg.eval_every and self.evaluate(epoch):
                stop = True
            self.save_checkpoint(epoch, stop)
        if self.dev and self.history[-1]["event"] != "dev":  # always score the final weights too
            self.evaluate(epoch)
        return epoch

    def save_checkpoint(self, epoch: int, stop: bool) -> None:
        """The whole training state after ``epoch`` (``stop``: training is over but the model not yet saved)."""
        from ade_distill.student import checkpoint

        if self.checkpoint is None:
            return
        loop = {k: getattr(self, k) for k in ("log_lines", "history", "step", "best_f1", "best_state", "best_at",
                                              "bad_evals", "scorer", "train_sentences", "train_seconds")}
        loop["earlier_seconds"] = self.earlier_seconds + time.perf_counter() - self.started_at
        checkpoint.save(self.checkpoint, {
            "fingerprint": self.fingerprint, "module": self.student.module.state_dict(),
            "optimizer": self.optim.state_dict(), "scheduler": self.sched.state_dict(), "rng": checkpoint.rng_state(),
            "loop": loop, "epoch": epoch, "stop": stop}, "training")

    def resume(self) -> tuple[int, bool]:
        """Restore the state of this run's checkpoint, if there is one of the same task, options, data and initial
        weights. Returns the last finished epoch (0 for a fresh run) and whether training was over."""
        from ade_distill.student import checkpoint

        state = checkpoint.load(self.checkpoint, self.fingerprint, "training")
        if state is None:
            return 0, False
        self.student.module.load_state_dict(state["module"])
        self.optim.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        for k, v in state["loop"].items():
            setattr(self, k, v)
        if self.acc.is_main_process:
            self.log_path.write_text("".join(line + "\n" for line in self.log_lines), encoding="utf-8")
        log.info("resuming training from checkpoint %s after epoch %d (step %d)", self.checkpoint, state["epoch"],
                 self.step)
        self.record({"event": "resumed", "after_epoch": state["epoch"], "step": self.step})
        return int(state["epoch"]), bool(state["stop"])

    def _epoch(self, epoch: int, feats: Sequence[Any]) -> bool:
        """Train one epoch and log it; True when training must stop (``max_steps``, or patience exhausted
        by a step-wise evaluation)."""
        from torch.utils.data import DataLoader

        from ade_distill.student.data import collate

        cfg, acc, model = self.config, self.acc, self.model
        total_steps = self.plan.total_steps
        loader = DataLoader(
            feats, batch_sampler=self.plan.batches(epoch),
            collate_fn=partial(collate, pad_id=self.student.tokenizer.pad_token_id or 0,
                               architecture=cfg.architecture),
        )
        model.train()
        t0 = time.perf_counter()
        n_sent = 0
        loss_sum, loss_n = 0.0, 0
        stop = False
        for batch in loader:
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            loss = self._step(batch)
            step = self.step
            n_sent += int(batch["input_ids"].size(0))
            loss_sum += float(loss.detach())
            loss_n += 1
            if step % max(1, total_steps // 20) == 0:  # every 5% (shown when stdout is not a terminal)
                log.info("epoch %d step %d/%d (%d%%): mean loss %.4f, %.1f sentences/s", epoch, step,
                         total_steps, 100 * step // max(1, total_steps), loss_sum / loss_n,
                         n_sent / (time.perf_counter() - t0))
            if cfg.eval_every and self.dev and step % cfg.eval_every == 0 and self.evaluate(epoch):
                stop = True
                break
            if cfg.max_steps and step >= cfg.max_steps:
                stop = True
                break
        secs = time.perf_counter() - t0
        self.train_sentences += n_sent
        self.train_seconds += secs
        entry = {"event": "epoch", "epoch": epoch, "step": self.step, "loss": loss_sum / max(1, loss_n),
                 "sentences": n_sent, "seconds": round(secs, 2),
                 "sentences_per_second": round(n_sent / secs, 2) if secs else None,
                 "peak_rss_mb": round(_peak_rss_mb(), 1)}
        self.history.append(entry)
        self.record(entry)
        log.info("epoch %d: loss %.4f, %d sentences in %.1fs", epoch, entry["loss"], n_sent, secs)
        return stop

    def _step(self, batch: dict[str, Any]) -> Any:
        """One optimizer step on ``batch``: the forward pass (under bfloat16 autocast with ``precision="bf16"``;
        the loss, the backward pass and the weights stay fp32), gradient clipping, the schedule. Returns the
        loss."""
        import torch

        cfg, acc = self.config, self.acc
        with torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            out = self.model(**batch)
        loss = out["loss"].float()
        acc.backward(loss)
        if cfg.grad_clip:
            acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad()
        self.step += 1
        return loss

    def evaluate(self, epoch: int) -> bool:
        """Score dev; keep the best weights; True when patience is exhausted."""
        model, student, dev = self.model, self.student, self.dev
        assert dev is not None  # only called with a dev set
        model.eval()
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        if self.config.architecture == "pair_classifier" and self.config.calibrate_thresholds:
            # model selection at each checkpoint's own best relation threshold (the one finish() will pick)
            cal = calibrate_relation_threshold(student, dev, self.config.eval_batch_size)
            extra = {"relation_threshold": cal["relation_threshold"], "f1_at_configured_threshold": cal["dev_f1_before"]}
            student.config = student.config.model_copy(update={"relation_threshold": cal["relation_threshold"]})
        try:
            preds = student.predict(dev, batch_size=self.config.eval_batch_size)
        finally:
            if extra:
                student.config = student.config.model_copy(
                    update={"relation_threshold": self.config.relation_threshold})
        if self.config.architecture == "pair_classifier":  # entity-pair level (gold or silver dev alike)
            from ade_distill.student.pair_classifier import entity_pair_prf

            (p, r, f), self.scorer = entity_pair_prf(student.task, dev, preds), "pair_classifier.entity_pair_prf"
        else:
            (p, r, f), self.scorer = relation_f1(dev, preds)
        entry = {"event": "dev", "epoch": epoch, "step": self.step, "precision": p, "recall": r, "f1": f,
                 "predicted_relations": sum(len(e.relations) for e in preds), **extra,
                 "seconds": round(time.perf_counter() - t0, 2)}
        self.history.append(entry)
        self.record(entry)
        log.info("dev epoch %d step %d: P %.4f R %.4f F1 %.4f", epoch, self.step, p, r, f)
        model.train()
        if f > self.best_f1:
            self.best_f1, self.best_at, self.bad_evals = f, {"epoch": epoch, "step": self.step}, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in student.module.state_dict().items()}
            return False
        self.bad_evals += 1
        return self.bad_evals > self.config.patience

    def finish(self) -> dict[str, Any] | None:
        """Back to the best dev weights; with ``calibrate_thresholds``, head/tail thresholds picked on dev.
        Returns the calibration (None without it)."""
        student, cfg, dev = self.student, self.config, self.dev
        if self.best_state is not None:
            student.module.load_state_dict(self.best_state)
        self.model.eval()
        if not (cfg.calibrate_thresholds and dev):
            return None
        if cfg.architecture == "pair_classifier":
            calibration = calibrate_relation_threshold(student, dev, cfg.eval_batch_size)
            student.config = student.config.model_copy(
                update={"relation_threshold": calibration["relation_threshold"]})
        else:
            calibration = calibrate_thresholds(student, dev, cfg.eval_batch_size)
            student.config = student.config.model_copy(update={
                "head_threshold": calibration["head_threshold"], "tail_threshold": calibration["tail_threshold"]})
        self.record({"event": "calibration", **calibration})
        log.info("calibrated thresholds: %s", calibration)
        return calibration


_CARD_METRICS = ("best_dev", "dev_scorer", "steps", "epochs_run", "train_sentences_per_second", "peak_rss_mb",
                 "calibration")


def _save(student: Any, config: TrainConfig, metrics: dict[str, Any], log_lines: list[str],
          provenance: dict[str, Any], out_dir: Path, acc: Any, log_path: Path) -> None:
    """Provenance and metrics into the student's config, then the model folder with ``metrics.json``,
    ``training_log.jsonl`` and ``train_config.json`` (main process only; the others wait for it)."""
    student.config = student.config.model_copy(update={
        "provenance": provenance,
        "metrics": {k: metrics[k] for k in _CARD_METRICS},
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


RELATION_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def calibrate_relation_threshold(student: Any, dev: Sequence[Example], batch_size: int = 8) -> dict[str, Any]:
    """pair_classifier: the relation threshold from :data:`RELATION_GRID` that maximises dev entity-pair F1
    (:func:`~ade_distill.student.pair_classifier.entity_pair_prf`). One dev prediction at the lowest threshold;
    each grid point keeps the relations scoring at least it. Ties keep the threshold closest to 0.5."""
    from ade_distill.student.pair_classifier import entity_pair_prf

    original = student.config
    try:
        student.config = original.model_copy(update={"relation_threshold": min(RELATION_GRID)})
        preds = student.predict(dev, batch_size=batch_size)
    finally:
        student.config = original
    scores = {}
    for t in RELATION_GRID:
        kept = [p.model_copy(update={"relations": tuple(r for r in p.relations if (r.score or 0.0) >= t)})
                for p in preds]
        scores[t] = entity_pair_prf(student.task, dev, kept)[2]
    best = max(scores, key=lambda t: (round(scores[t], 6), -abs(t - 0.5)))
    return {"relation_threshold": best, "dev_f1": scores[best],
            "dev_f1_before": scores.get(original.relation_threshold), "grid": [[t, f] for t, f in scores.items()]}


def read_training_file(
    path: str | Path, task: TaskSpec, fmt: str | None = None, label_map: FormatOptions | str | Path | None = None,
) -> list[Example]:
    """Read a training/dev file — JSONL, a BRAT folder or a BioC file (``fmt`` detected unless given) —,
    checking labels against the task (errors name file and line); ``label_map`` maps BRAT/BioC labels to the
    task's (:func:`ade_distill.data.formats.read_records`)."""
    from ade_distill.data.formats import read_records

    exs = read_records(path, fmt, task=task, options=label_map)
    if not exs:
        raise DataError("no examples in file", path=path)
    return exs


__all__ = ["TrainConfig", "train_student", "split_dev", "relation_f1", "read_training_file", "calibrate_thresholds"]
