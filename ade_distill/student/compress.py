"""Compression: a trained teacher student (one folder, or several voting as an ensemble) → one compact student.

    ade-distill compress --teacher runs/mpnet-student --texts silver.jsonl \\
        --unlabeled ../shared/data/pubmed_unlabeled/pubmed_abstracts.jsonl --exclude gold.jsonl \\
        --encoder minilm --layers 3 --out runs/minilm-l3

A second hop makes a smaller student from a compact one: ``--init teacher --layers 4`` starts the student as a
copy of its (one) teacher, task layers included, cut to 4 of its layers, and each kept layer's hidden states are
compared with those of the teacher layer it was copied from.

The student (``encoder``, optionally cut to ``layers`` of its transformer layers by :func:`keep_layers`) learns
from the teacher's outputs on a transfer set of plain text — no label is read. Without the feature losses the
teacher's targets are computed once per text before the first epoch (the teachers run in eval mode, so they do
not change) and re-batched each epoch; with them, the teachers run on every batch. Losses, each with its own weight
(0 switches it off; its logged value is then 0):

* ``kl`` — KL(teacher ‖ student) of the token distributions of both stages at temperature ``T``, times T²
  (Hinton et al.): stage 1 (head BIO tags) and stage 2 (tail BIO tags conditioned on each head mention the
  *teacher* predicts). An ensemble teacher averages its members' probabilities (each at temperature ``T``).
* ``hard`` — cross-entropy on the teacher's decoded predictions (its mentions and tails as BIO tags, decoded
  with the teacher's thresholds from the averaged probabilities), so that the student's decoding stays consistent.
* ``hidden`` — MSE between student layer ``i`` (through a learned linear projection to the teacher's width) and
  the teacher layer ``layer_map[i]`` (default: evenly spaced, ``round(i × L_teacher / L_student)``).
* ``attention`` — KL of attention maps (teacher ‖ student) on ``attention_layers``, per head when both have the
  same number of heads, else of the head-averaged maps. Same tokenizer only.

**Tokenizer alignment.** Both stages' targets live on words (the first sub-word token of each word carries the
tag; :mod:`ade_distill.student.encode`), so the teacher's distributions are read per *word*: a student word is
aligned to the teacher word that starts at the same character (from each tokenizer's ``offset_mapping``), and
the student's first sub-token of that word learns the teacher's first-sub-token distribution
(:func:`align_words`). A student word no teacher word starts at (a tokenizer that splits words differently), or
one cut off by truncation on either side, gets no soft or hard target and is counted (``unaligned_words``).
With the same tokenizer (identical vocabulary, normaliser and pre-tokenizer: :func:`same_tokenizer`) every
word aligns and the hidden-state loss runs on every real token; with different tokenizers it runs on the
aligned word-start tokens only, and the attention loss is refused (:class:`ConfigError`): attention maps over
two different token sequences have no common rows and columns. Hidden-state and attention losses of an
ensemble teacher read its first member (averaging the states of separately trained encoders means nothing).

The teacher's stage-2 mentions are decoded on the student's words from the averaged stage-1 probabilities; each
member then tags tails for the mention's character range mapped onto its own words.

Transfer set: texts of records (``--texts``: the training fold's silver records; labels unused) plus unlabeled
PubMed sentences (``--unlabeled``), from which documents sharing a PubMed ID or a text with the ``--exclude``
records are removed first — :func:`ade_distill.experiments.protocol.filter_documents`, as ``adapt-encoder`` does.

The result is a normal student folder (``predict``, the spaCy component and ``export-onnx`` accept it) whose
``student.json`` provenance and model card name the teacher(s), the losses and the transfer set, with
``compress.json`` (configuration, transfer-set counts, per-epoch loss components, stage-1 KL to the teacher
before and after). Drug-conditioned teachers and students only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ade_distill.errors import ConfigError
from ade_distill.student.encode import IGNORE, Encoding, char_to_words, encode_texts

log = logging.getLogger(__name__)

LOSSES = ("kl", "hard", "hidden", "attention")


class CompressConfig(BaseModel):
    """Options of :func:`compress_student`. Invalid values raise :class:`ConfigError` (via :meth:`build`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    encoder: str = Field(default="minilm", min_length=1, description="The student's encoder.")
    init: Literal["encoder", "teacher"] = Field(
        default="encoder", description="encoder: the pretrained encoder with fresh task layers; teacher: a copy of "
        "the (one) teacher, task layers included, before its layers are cut — a layer-dropped teacher that "
        "distillation then repairs (`encoder` must name the teacher's encoder).")
    layers: int | None = Field(default=None, ge=1, le=48, description="Keep this many encoder layers (evenly "
                               "spaced, first and last included; see keep_layers).")
    epochs: int = Field(default=3, ge=1, le=1000)
    batch_size: int = Field(default=16, ge=1, le=4096)
    lr: float = Field(default=1e-4, gt=0.0, lt=1.0)
    head_lr: float = Field(default=1e-3, gt=0.0, lt=1.0, description="Task layers and projections.")
    max_length: int = Field(default=128, ge=8, le=4096)
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(default=1.0, gt=0.0)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    seed: int = 13
    threads: int | None = Field(default=None, ge=1, le=512)
    temperature: float = Field(default=2.0, gt=0.0, le=20.0)
    kl_weight: float = Field(default=1.0, ge=0.0)
    hard_weight: float = Field(default=0.5, ge=0.0)
    hidden_weight: float = Field(default=0.0, ge=0.0)
    attention_weight: float = Field(default=0.0, ge=0.0)
    layer_map: dict[int, int] | None = Field(default=None, description="Student layer → teacher layer (1-based) "
                                             "of the hidden and attention losses; default evenly spaced.")
    attention_layers: tuple[int, ...] | None = Field(default=None, description="Student layers (1-based) of the "
                                                     "attention loss; default the last.")
    check_texts: int = Field(default=200, ge=0, description="Transfer texts on which the stage-1 KL to the "
                             "teacher is measured before and after.")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32", description="bf16: the teachers' passes and the student's forward pass under bfloat16 "
        "autocast (losses, backward pass and weights stay fp32), as student.precision in training.")

    @model_validator(mode="after")
    def _check(self) -> CompressConfig:
        if not any(getattr(self, f"{k}_weight") > 0 for k in LOSSES):
            raise ValueError("at least one of kl_weight, hard_weight, hidden_weight, attention_weight must be > 0")
        return self

    @classmethod
    def build(cls, **kwargs: Any) -> CompressConfig:
        try:
            return cls(**kwargs)
        except ValidationError as err:
            msgs = [f"{'.'.join(map(str, e['loc'])) or 'config'}={e.get('input')!r}: "
                    f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors()]
            raise ConfigError("invalid compression option: " + "; ".join(msgs)) from None


# -- alignment (pure) -------------------------------------------------------------------------------------------
def align_words(student_words: Sequence[tuple[int, int]], teacher_words: Sequence[tuple[int, int]]) -> list[int]:
    """For each student word, the index of the teacher word starting at the same character, else -1 (a word the
    other tokenizer splits differently or truncated away). Words are ``(start, end)`` character ranges."""
    by_start = {s: i for i, (s, _) in enumerate(teacher_words)}
    return [by_start.get(s, -1) for s, _ in student_words]


def token_pairs(student: Encoding, teacher: Encoding, identical: bool) -> list[tuple[int, int]]:
    """(student token, teacher token) positions compared by the token-level losses: the first sub-token of every
    aligned word, or every token when the tokenizations are identical."""
    if identical:
        return [(t, t) for t in range(len(student))]
    al = align_words(student.words, teacher.words)
    return [(student.first_token[w], teacher.first_token[t]) for w, t in enumerate(al) if t >= 0]


def same_tokenizer(a: Any, b: Any) -> bool:
    """True when two fast tokenizers tokenize alike: same vocabulary, normaliser, pre-tokenizer, model and
    special-token processing (truncation and padding settings aside)."""
    def spec(tok: Any) -> dict[str, Any]:
        d = json.loads(tok.backend_tokenizer.to_str())
        return {k: v for k, v in d.items() if k not in ("truncation", "padding")}

    return spec(a) == spec(b)


def keep_layers(encoder: Any, k: int | None) -> list[int]:
    """Cut a BERT-like encoder to ``k`` of its ``L`` transformer layers, in place: layers
    ``round(i (L-1) / (k-1))`` for i = 0..k-1 — evenly spaced, the first and the last kept (k = 1 keeps the
    first). Returns the kept (0-based) original indices; ``None`` keeps all."""
    import torch

    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ConfigError(f"cannot cut the layers of a {type(encoder).__name__}: no encoder.layer list")
    n = len(layers)
    if k is None or k == n:
        return list(range(n))
    if k > n:
        raise ConfigError(f"layers={k} but the encoder has only {n}")
    keep = [0] if k == 1 else [int(i * (n - 1) / (k - 1) + 0.5) for i in range(k)]
    encoder.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    encoder.config.num_hidden_layers = k
    return keep


def default_layer_map(n_student: int, n_teacher: int) -> dict[int, int]:
    """Student layer i → teacher layer round(i × n_teacher / n_student), 1-based."""
    return {i: max(1, int(i * n_teacher / n_student + 0.5)) for i in range(1, n_student + 1)}


# -- teacher targets on a batch ------------------------------------------------------------------------------
@dataclass
class _Member:
    """One teacher member with its encodings of the transfer set and their alignment to the student's."""

    model: Any
    encs: list[Encoding]
    aligned: list[list[int]]  # per text: teacher word of each student word (-1: none)


@dataclass
class Targets:
    """Teacher targets of one batch, on the student's token positions. ``*_soft``: averaged probabilities at
    the temperature; ``*_mask``: positions with a target (first sub-tokens of aligned words); ``*_hard``: the
    teacher's decoded BIO tags (IGNORE elsewhere). Stage 2 has one row per teacher mention
    (``mention_index``: its text in the batch; ``mention_mask``: its student tokens)."""

    head_soft: Any
    head_mask: Any
    head_hard: Any
    mention_index: Any
    mention_mask: Any
    tail_soft: Any
    tail_mask: Any
    tail_hard: Any
    hidden: tuple[Any, ...] | None = None
    attentions: tuple[Any, ...] | None = None
    pairs: list[list[tuple[int, int]]] = field(default_factory=list)


@dataclass
class _TextTargets:
    """One transfer text's soft and hard targets on its own student tokens (n of them), and those of the
    teacher's m mentions in it: what :class:`Targets` holds for that text, cut out of its batch."""

    head_soft: Any  # (n, 3)
    head_mask: Any  # (n,)
    head_hard: Any  # (n,)
    mention_mask: Any  # (m, n)
    tail_soft: Any  # (m, n, 3)
    tail_mask: Any  # (m, n)
    tail_hard: Any  # (m, n)


def split_targets(tg: Targets, sencs: Sequence[Encoding]) -> list[_TextTargets]:
    """A batch's targets → one :class:`_TextTargets` per text (padding cut off)."""
    out = []
    for b, senc in enumerate(sencs):
        n = len(senc)
        rows = [] if tg.mention_index is None else (tg.mention_index == b).nonzero().flatten().tolist()
        out.append(_TextTargets(
            tg.head_soft[b, :n].clone(), tg.head_mask[b, :n].clone(), tg.head_hard[b, :n].clone(),
            *(None if t is None else t[rows, :n].clone()
              for t in (tg.mention_mask, tg.tail_soft, tg.tail_mask, tg.tail_hard))))
    return out


def join_targets(parts: Sequence[_TextTargets], width: int) -> Targets:
    """Targets of a batch from its texts' cached targets, padded to ``width`` as :func:`teacher_targets` pads."""
    import torch

    def pad(t: Any, fill: float, dims: int) -> Any:
        shape = (*t.shape[:dims - 1], width, *t.shape[dims:])
        out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
        out[(slice(None),) * (dims - 1) + (slice(0, t.size(dims - 1)),)] = t
        return out

    head = [torch.stack([pad(getattr(p, k), f, 1) for p in parts])
            for k, f in (("head_soft", 0.0), ("head_mask", False), ("head_hard", IGNORE))]
    index = [b for b, p in enumerate(parts) for _ in range(0 if p.mention_mask is None else p.mention_mask.size(0))]
    if not index:
        return Targets(*head, None, None, None, None, None)
    tail = [torch.cat([pad(getattr(p, k), f, 2) for p in parts if p.mention_mask is not None and len(p.mention_mask)])
            for k, f in (("mention_mask", 0.0), ("tail_soft", 0.0), ("tail_mask", False), ("tail_hard", IGNORE))]
    return Targets(*head, torch.tensor(index, device=head[0].device), *tail)


def encoder_pass(module: Any, ids: Any, mask: Any, hidden: bool, attentions: bool) -> tuple[Any, Any, Any]:
    """Token states (after the module's dropout, as ``module.encode``), all hidden states and attention maps
    (None unless asked)."""
    out = module.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=hidden,
                         output_attentions=attentions)
    return module.dropout(out.last_hidden_state), out.hidden_states, out.attentions


def _to_student(values: Any, member: _Member, b: int, senc: Encoding, width: int) -> tuple[Any, Any]:
    """A member's per-token rows (T_m, C) of text ``b`` → (width, C) rows on the student's first sub-tokens of
    aligned words, and the mask of those positions."""
    import torch

    out = torch.zeros((width, values.size(-1)), dtype=values.dtype, device=values.device)
    mask = torch.zeros(width, dtype=torch.bool, device=values.device)
    tenc = member.encs[b]
    for w, t in enumerate(member.aligned[b]):
        if t >= 0:
            out[senc.first_token[w]] = values[tenc.first_token[t]]
            mask[senc.first_token[w]] = True
    return out, mask


def _average(rows: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """Mean of the members' probabilities; a position has a target only where every member has one."""
    import torch

    probs = torch.stack([p for p, _ in rows]).mean(0)
    mask = torch.stack([m for _, m in rows]).all(0)
    return probs, mask


def _word_probs(probs: Any, senc: Encoding) -> list[list[float]]:
    """Per student word, the probabilities at its first sub-token ([1, 0, 0] = O where there is no target)."""
    return [probs[t].tolist() for t in senc.first_token]


def _bio(senc: Encoding, spans: Sequence[tuple[int, int, float]], aligned: Any, width: int) -> list[int]:
    """Hard BIO tags on student tokens: B/I on decoded spans' words, O on other aligned words, else IGNORE."""
    tags = [IGNORE] * width
    for t in senc.first_token:
        if aligned[t]:
            tags[t] = 0
    for ws, we, _ in spans:
        for w in range(ws, we):
            if aligned[senc.first_token[w]]:
                tags[senc.first_token[w]] = 1 if w == ws else 2
    return tags


def teacher_targets(members: Sequence[_Member], idx: Sequence[int], sencs: Sequence[Encoding], cfg: CompressConfig,
                    *, features: bool, identical: bool) -> Targets:
    """The teacher's targets for the transfer texts ``idx`` (``sencs``: their student encodings); ``features``:
    also the first member's hidden states / attention maps (as the weights ask)."""
    import torch

    width = max(len(e) for e in sencs)
    with torch.no_grad():
        passes = [_member_stage1(m, idx, features and k == 0, cfg) for k, m in enumerate(members)]
        rows = [[p.logits[b] for p in passes] for b in range(len(sencs))]
        stage1, spans = _soft_and_hard(members, rows, idx, sencs, cfg, width, members[0].model.config.head_threshold)
        mentions = [(b, ws, we) for b, sp in enumerate(spans) for ws, we, _ in sp]
        stage2 = _teacher_stage2(members, passes, idx, sencs, mentions, cfg, width)
    hidden, attn = (passes[0].hidden, passes[0].attentions) if features else (None, None)
    pairs = [token_pairs(s, members[0].encs[i], identical) for s, i in zip(sencs, idx, strict=True)]
    return Targets(*stage1, *stage2, hidden=hidden, attentions=attn, pairs=pairs)


def _soft_and_hard(members: Sequence[_Member], logits: list[list[Any]], idx: Sequence[int],
                   sencs: Sequence[Encoding], cfg: CompressConfig, width: int,
                   threshold: float) -> tuple[tuple[Any, Any, Any], list[list[tuple[int, int, float]]]]:
    """Averaged soft targets (at the temperature), their mask and the decoded hard tags of one stage, from each
    row's per-member logits (``logits[j][k]``: member k's (T_k, 3) logits of row j, a text of the batch given by
    ``idx`` and ``sencs``); also the decoded word spans of each row."""
    import torch

    from ade_distill.student.model import _decode_words

    soft, mask, hard, spans = [], [], [], []
    for j, senc in enumerate(sencs):
        i = idx[j]
        p_t, msk = _average([_to_student(torch.softmax(lg / cfg.temperature, -1), m, i, senc, width)
                             for lg, m in zip(logits[j], members, strict=True)])
        p1, _ = _average([_to_student(torch.softmax(lg, -1), m, i, senc, width)
                          for lg, m in zip(logits[j], members, strict=True)])
        p1[~msk] = torch.tensor([1.0, 0.0, 0.0], device=p1.device)
        sp = _decode_words(_word_probs(p1, senc), threshold)
        soft.append(p_t)
        mask.append(msk)
        hard.append(_bio(senc, sp, msk, width))
        spans.append(sp)
    dev = soft[0].device
    return (torch.stack(soft), torch.stack(mask), torch.tensor(hard, device=dev)), spans


class _Pass(NamedTuple):
    """One member's stage-1 pass over a batch (its own tokens)."""

    states: Any
    logits: Any
    hidden: Any
    attentions: Any
    encs: list[Encoding]


def _member_stage1(m: _Member, idx: Sequence[int], features: bool, cfg: CompressConfig) -> _Pass:
    """A member's pass over texts ``idx``: token states, stage-1 logits, hidden states and attentions."""
    encs = [m.encs[i] for i in idx]
    ids, mask = m.model.pad(encs)
    ids, mask = ids.to(m.model.device), mask.to(m.model.device)
    module = m.model.module
    states, hidden, attn = encoder_pass(module, ids, mask, features and cfg.hidden_weight > 0,
                                        features and cfg.attention_weight > 0)
    return _Pass(states, module.head_classifier(states).float(), hidden, attn, encs)


def _mention_mask(enc: Encoding, ws: int, we: int, width: int) -> list[float]:
    return [1.0 if ws <= w < we else 0.0 for w in enc.token_word] + [0.0] * (width - len(enc))


def _teacher_stage2(members: Sequence[_Member], passes: list[_Pass], idx: Sequence[int],
                    sencs: Sequence[Encoding], mentions: list[tuple[int, int, int]], cfg: CompressConfig,
                    width: int) -> tuple[Any, ...]:
    """Stage-2 targets for the teacher's mentions (student word ranges): each member tags tails for the mention's
    characters mapped onto its own words; probabilities averaged as in stage 1. A mention some member cannot
    place (truncated away on its side) is left out."""
    import torch


    kept, per_member = [], [[] for _ in members]
    for b, ws, we in mentions:
        s, e = sencs[b].words[ws][0], sencs[b].words[we - 1][1]
        ranges = [char_to_words(p.encs[b].words, s, e) for p in passes]
        if all(r is not None for r in ranges):
            kept.append((b, ws, we))
            for k, r in enumerate(ranges):
                per_member[k].append((b, r))
    if not kept:
        return None, None, None, None, None
    logits = []
    for m, p, rows in zip(members, passes, per_member, strict=True):
        dev, tw = p.states.device, p.logits.size(1)
        mm = torch.tensor([_mention_mask(p.encs[b], r[0], r[1], tw) for b, r in rows], device=dev)
        logits.append(m.model.module.tail_logits(p.states, torch.tensor([b for b, _ in rows], device=dev), mm).float())
    rows = [[lg[j] for lg in logits] for j in range(len(kept))]
    (soft, mask, hard), _ = _soft_and_hard(members, rows, [idx[b] for b, _, _ in kept], [sencs[b] for b, _, _ in kept],
                                           cfg, width, members[0].model.config.tail_threshold)
    dev = soft.device
    index = torch.tensor([b for b, _, _ in kept], device=dev)
    mmask = torch.tensor([_mention_mask(sencs[b], ws, we, width) for b, ws, we in kept], device=dev)
    return index, mmask, soft, mask, hard


# -- student losses ----------------------------------------------------------------------------------------------
def soft_kl(logits: Any, probs: Any, mask: Any, temperature: float) -> Any:
    """KL(probs ‖ softmax(logits / T)) per position, averaged over ``mask``, times T² (Hinton et al.)."""
    import torch.nn.functional as F

    logq = F.log_softmax(logits.float() / temperature, dim=-1)
    kl = (probs * (probs.clamp_min(1e-12).log() - logq)).sum(-1)
    m = mask.float()
    return (kl * m).sum() / m.sum().clamp(min=1.0) * temperature ** 2


def hidden_mse(hidden: Sequence[Any], teacher: Sequence[Any], pairs: list[list[tuple[int, int]]],
               layer_map: dict[int, int], projections: Any) -> Any:
    """Mean over mapped layers of the MSE between projected student states and teacher states at the token
    pairs (:func:`token_pairs`); ``hidden[i]`` is layer i's output (0: embeddings)."""
    import torch
    import torch.nn.functional as F

    dev = hidden[0].device
    b = torch.tensor([k for k, p in enumerate(pairs) for _ in p], device=dev)
    s = torch.tensor([x for p in pairs for x, _ in p], device=dev)
    t = torch.tensor([y for p in pairs for _, y in p], device=dev)
    losses = [F.mse_loss(projections[str(i)](hidden[i][b, s]).float(), teacher[j][b, t].float())
              for i, j in layer_map.items()]
    return torch.stack(losses).mean()


def attention_kl(student: Sequence[Any], teacher: Sequence[Any], mask: Any, layers: Sequence[int],
                 layer_map: dict[int, int]) -> Any:
    """Mean over ``layers`` (1-based student layers) of KL(teacher ‖ student) of each query's attention
    distribution over real query tokens; per head when the head counts agree, else of the head-averaged maps."""
    import torch

    out = []
    q = mask.float()
    for i in layers:
        s, t = student[i - 1].float(), teacher[layer_map[i] - 1].float()
        if s.size(1) != t.size(1):
            s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
        kl = (t * (t.clamp_min(1e-12).log() - s.clamp_min(1e-12).log())).sum(-1)  # (B, H, T)
        w = q.unsqueeze(1).expand_as(kl)
        out.append((kl * w).sum() / w.sum().clamp(min=1.0))
    return torch.stack(out).mean()


def student_losses(module: Any, ids: Any, mask: Any, tg: Targets, cfg: CompressConfig, plan: _FeaturePlan,
                   projections: Any) -> dict[str, Any]:
    """Each loss component (0 when its weight is 0) and their weighted sum ``loss``."""
    from ade_distill.student.modules import weighted_cross_entropy

    states, hidden, attn = encoder_pass(module, ids, mask, cfg.hidden_weight > 0, cfg.attention_weight > 0)
    head = module.head_classifier(states)
    tail = module.tail_logits(states, tg.mention_index, tg.mention_mask) if tg.mention_index is not None else None
    zero = head.new_zeros(()).float()
    parts = dict.fromkeys(LOSSES, zero)
    if cfg.kl_weight > 0:
        parts["kl"] = soft_kl(head, tg.head_soft, tg.head_mask, cfg.temperature)
        if tail is not None:
            parts["kl"] = parts["kl"] + soft_kl(tail, tg.tail_soft, tg.tail_mask, cfg.temperature)
    if cfg.hard_weight > 0:
        parts["hard"] = weighted_cross_entropy(head, tg.head_hard)
        if tail is not None:
            parts["hard"] = parts["hard"] + weighted_cross_entropy(tail, tg.tail_hard)
    if cfg.hidden_weight > 0:
        parts["hidden"] = hidden_mse(hidden, tg.hidden, tg.pairs, plan.layer_map, projections)
    if cfg.attention_weight > 0:
        parts["attention"] = attention_kl(attn, tg.attentions, mask, plan.attention_layers, plan.layer_map)
    parts["loss"] = sum(getattr(cfg, f"{k}_weight") * parts[k] for k in LOSSES)
    return parts


# -- the run -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _FeaturePlan:
    """Which layers the feature losses compare: ``layer_map`` student → teacher (1-based; the layers of the
    hidden loss), ``attention_layers`` (student, 1-based)."""

    layer_map: dict[int, int]
    attention_layers: tuple[int, ...]

    @classmethod
    def of(cls, cfg: CompressConfig, n_student: int, n_teacher: int,
           kept: Sequence[int] | None = None) -> _FeaturePlan:
        """``kept``: with ``init="teacher"``, the teacher layers (0-based) the student's layers are copies of;
        each student layer is then compared with the layer it was copied from unless ``layer_map`` says
        otherwise. Raises ConfigError for a layer outside either encoder."""
        default = ({i + 1: k + 1 for i, k in enumerate(kept)} if kept is not None
                   else default_layer_map(n_student, n_teacher))
        lmap = {**default, **(cfg.layer_map or {})}
        att = cfg.attention_layers or (n_student,)
        bad = [f"{i}→{j}" for i, j in lmap.items() if not (1 <= i <= n_student and 1 <= j <= n_teacher)]
        bad += [f"attention layer {i}" for i in att if not 1 <= i <= n_student]
        if bad:
            raise ConfigError(f"layers out of range (student has {n_student}, teacher {n_teacher}, 1-based): "
                              f"{', '.join(bad)}")
        return cls(lmap, tuple(att))


def _check_features(cfg: CompressConfig, identical: bool, teachers: Sequence[Any]) -> None:
    """Refuse what cannot be computed: stage 2 of a pairwise model, attention maps across tokenizers."""
    if any(t.config.architecture != "drug_conditioned" for t in teachers):
        raise ConfigError("compress needs drug_conditioned teachers (the pairwise model has no stage-2 tagger)")
    if len({t.task.name for t in teachers}) > 1:
        raise ConfigError(f"the teachers must share one task, got {sorted({t.task.name for t in teachers})}")
    if cfg.attention_weight > 0 and not identical:
        raise ConfigError("attention_weight > 0 needs the teacher's tokenizer: the teacher and student tokenizers "
                          "differ, so their attention maps cover different tokens. Set attention_weight 0, or use "
                          "a student encoder with the teacher's tokenizer")


@dataclass
class _Run:
    """The compression loop's state: student, teacher members, the transfer set's student encodings, optimizer."""

    student: Any
    members: list[_Member]
    sencs: list[Encoding]
    cfg: CompressConfig
    plan: _FeaturePlan
    identical: bool
    projections: Any
    model: Any
    optim: Any
    sched: Any
    alignment: dict[str, int]
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    cache: list[_TextTargets] | None = None
    checkpoint: Path | None = None  # where to checkpoint every epoch (see ade_distill.student.checkpoint)
    fingerprint: str = ""
    earlier_seconds: float = 0.0  # wall seconds of interrupted attempts up to their last checkpoint
    started_at: float = field(default_factory=time.perf_counter)

    def precompute(self) -> None:
        """Without feature losses the teachers' targets do not change between epochs (teachers in eval mode):
        compute them once per text, in length-sorted batches, instead of once per text and epoch."""
        import torch

        t0 = time.perf_counter()
        order = sorted(range(len(self.sencs)), key=lambda i: len(self.sencs[i]))
        cache: list[_TextTargets | None] = [None] * len(self.sencs)
        dev = self.student.device
        for k in range(0, len(order), self.cfg.batch_size):
            idx = order[k : k + self.cfg.batch_size]
            sencs = [self.sencs[i] for i in idx]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
                tg = teacher_targets(self.members, idx, sencs, self.cfg, features=False, identical=self.identical)
            for i, part in zip(idx, split_targets(tg, sencs), strict=True):
                cache[i] = part
        self.cache = [c for c in cache if c is not None]
        assert len(self.cache) == len(self.sencs)
        log.info("teacher targets of %d texts computed once in %.1fs", len(self.sencs), time.perf_counter() - t0)

    def fit(self) -> None:
        from ade_distill.student.data import length_grouped_batches

        cfg = self.cfg
        if not self._features:
            self.precompute()
        for epoch in range(self.resume() + 1, cfg.epochs + 1):
            batches = length_grouped_batches([len(e) for e in self.sencs], cfg.batch_size,
                                             seed=cfg.seed * 1000 + epoch)
            t0, sums = time.perf_counter(), dict.fromkeys((*LOSSES, "loss"), 0.0)
            total = len(batches) * cfg.epochs
            for n, b in enumerate(batches, start=1):
                for k, v in self._step(b).items():
                    sums[k] += v
                if self.step % max(1, total // 20) == 0:  # every 5% (shown when stdout is not a terminal)
                    log.info("compress epoch %d step %d/%d (%d%%): mean loss %.4f", epoch, self.step, total,
                             100 * self.step // total, sums["loss"] / n)
            entry = {"epoch": epoch, "step": self.step, "seconds": round(time.perf_counter() - t0, 2),
                     **{k: v / max(1, len(batches)) for k, v in sums.items()}}
            self.history.append(entry)
            log.info("compress epoch %d: %s", epoch, entry)
            self.save_checkpoint(epoch)

    def save_checkpoint(self, epoch: int) -> None:
        """The compression state after ``epoch``: the student with its projections, optimizer, schedule, random
        generators, step and history."""
        from ade_distill.student import checkpoint

        if self.checkpoint is not None:
            checkpoint.save(self.checkpoint, {
                "fingerprint": self.fingerprint, "module": self.model.state_dict(),
                "optimizer": self.optim.state_dict(), "scheduler": self.sched.state_dict(),
                "rng": checkpoint.rng_state(), "epoch": epoch,
                "loop": {"step": self.step, "history": self.history,
                         "earlier_seconds": self.earlier_seconds + time.perf_counter() - self.started_at}},
                "compression")

    def resume(self) -> int:
        """Restore this run's checkpoint (same options, transfer texts, teachers and initial student), if any;
        returns the last finished epoch (0 for a fresh run)."""
        from ade_distill.student import checkpoint

        state = checkpoint.load(self.checkpoint, self.fingerprint, "compression")
        if state is None:
            return 0
        self.model.load_state_dict(state["module"])
        self.optim.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        self.step, self.history = state["loop"]["step"], state["loop"]["history"]
        self.earlier_seconds = state["loop"]["earlier_seconds"]
        log.info("resuming compression from checkpoint %s after epoch %d (step %d)", self.checkpoint,
                 state["epoch"], self.step)
        return int(state["epoch"])

    def _step(self, idx: list[int]) -> dict[str, float]:
        import torch

        self.model.train()
        for m in self.members:
            m.model.module.eval()
        sencs = [self.sencs[i] for i in idx]
        ids, mask = self.student.pad(sencs)
        dev = self.student.device
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            if self.cache is not None:
                tg = join_targets([self.cache[i] for i in idx], ids.size(1))
            else:
                tg = teacher_targets(self.members, idx, sencs, self.cfg, features=self._features,
                                     identical=self.identical)
            parts = student_losses(self.student.module, ids.to(dev), mask.to(dev), tg, self.cfg, self.plan,
                                   self.projections)
        parts["loss"].float().backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad()
        self.step += 1
        return {k: float(v.detach()) for k, v in parts.items()}

    @property
    def _features(self) -> bool:
        return self.cfg.hidden_weight > 0 or self.cfg.attention_weight > 0


def _trainable(module: Any, projections: Any) -> Any:
    """One module over the student's weights and the projections, for train.py's ``_optimizer``: the encoder is
    registered first, so its parameters keep their ``encoder.`` names (the encoder learning rate) and the task
    layers and projections get the head learning rate."""
    import torch

    wrap = torch.nn.Module()
    wrap.encoder = module.encoder
    wrap.student = module
    wrap.projections = projections
    return wrap


def _projections(cfg: CompressConfig, student: Any, teacher: Any, plan: _FeaturePlan) -> Any:
    import torch

    hs, ht = student.module.encoder.config.hidden_size, teacher.module.encoder.config.hidden_size
    layers = plan.layer_map if cfg.hidden_weight > 0 else {}
    proj = torch.nn.ModuleDict({str(i): torch.nn.Linear(hs, ht) for i in layers})
    if cfg.init == "teacher":  # the student's layers are the teacher's own: start from the identity, not noise
        with torch.no_grad():
            for layer in proj.values():
                layer.weight.copy_(torch.eye(ht, hs))
                layer.bias.zero_()
    return proj.to(student.device)


def _members(teachers: Sequence[Any], texts: Sequence[str], sencs: list[Encoding],
             max_length: int) -> tuple[list[_Member], dict[str, int]]:
    """Each teacher's encodings of the texts (at the student's ``max_length``) and their word alignment to the
    student's; counts the student words without a teacher target."""
    members, unaligned = [], set()
    for t in teachers:
        encs = encode_texts(t.tokenizer, texts, max_length)
        aligned = [align_words(s.words, e.words) for s, e in zip(sencs, encs, strict=True)]
        unaligned |= {(i, w) for i, a in enumerate(aligned) for w, x in enumerate(a) if x < 0}
        members.append(_Member(t, encs, aligned))
    return members, {"student_words": sum(len(e.words) for e in sencs), "unaligned_words": len(unaligned)}


def stage1_kl(student: Any, teachers: Sequence[Any], texts: Sequence[str], batch_size: int = 32) -> float:
    """Mean KL(teacher ‖ student) of the stage-1 tag distributions at T = 1 over the aligned words of ``texts``
    (the ensemble's averaged probabilities for several teachers); the student in eval mode."""
    import torch

    sencs = student.encode(texts)
    members, _ = _members(teachers, texts, sencs, student.config.max_length)
    cfg = CompressConfig(temperature=1.0)
    total, n = 0.0, 0.0
    student.module.eval()
    with torch.no_grad():
        for k in range(0, len(texts), batch_size):
            idx = list(range(k, min(k + batch_size, len(texts))))
            tg = teacher_targets(members, idx, sencs[k:k + batch_size], cfg, features=False, identical=False)
            ids, mask = student.pad(sencs[k:k + batch_size])
            _, logits = student.stage1(ids.to(student.device), mask.to(student.device))
            m = float(tg.head_mask.sum())
            total += float(soft_kl(logits, tg.head_soft, tg.head_mask, 1.0)) * m
            n += m
    return total / n if n else 0.0


def compress_student(teachers: Sequence[str | Path], texts: Sequence[str], out: str | Path,
                     cfg: CompressConfig | None = None, *, provenance: dict[str, Any] | None = None,
                     resume: bool = True) -> Path:
    """Distil the teacher folder(s) into a new student on the transfer ``texts`` and save it to ``out`` (see the
    module docstring). The steps: load the teachers, build (and cut) the student, encode and align the transfer
    set, measure the stage-1 KL, train, measure again, save. Returns the folder. With ``resume`` every epoch is
    checkpointed and a killed run of the same options, texts, teachers and student continues after its last
    finished epoch (:mod:`ade_distill.student.checkpoint`).

    Raises:
        ConfigError: no teacher or text, a pairwise teacher, teachers of different tasks, layers out of range,
            or an attention loss across different tokenizers.
    """
    from ade_distill.student import checkpoint
    from ade_distill.student.train import _torch_settings

    cfg = cfg or CompressConfig()
    texts = list(dict.fromkeys(t for t in texts if t and t.strip()))
    if not teachers or not texts:
        raise ConfigError("compress needs at least one teacher folder and one transfer text")
    models = _load_teachers(teachers, cfg)
    _check_init(teachers, models, cfg)
    identical = all(same_tokenizer(_student_tokenizer(cfg.encoder), m.tokenizer) for m in models)
    _check_features(cfg, identical, models)  # before the student's weights are loaded
    tcfg = _train_config(cfg, models[0])
    with _torch_settings(tcfg):
        student = _initial_student(teachers, models, cfg, tcfg)
        kept = keep_layers(student.module.encoder, cfg.layers)
        run = _start(student, models, texts, cfg, tcfg, identical, kept if cfg.init == "teacher" else None)
        if resume:
            run.checkpoint = checkpoint.path_for(Path(out))
            run.fingerprint = checkpoint.fingerprint(
                [cfg.model_dump_json(), student.device.type, checkpoint.tokenizer_spec(student.tokenizer)],
                [("texts", texts)], [run.model, *(m.module for m in models)])
        check = texts[: cfg.check_texts]
        before = stage1_kl(student, models, check) if check else None
        t0 = time.perf_counter()
        run.fit()
        after = stage1_kl(student, models, check) if check else None
        summary = {"teachers": [m.describe() for m in models], "kept_layers": kept,
                   "layer_map": run.plan.layer_map if cfg.hidden_weight > 0 else None, "identical_tokenizer": identical,
                   "teacher_targets_computed_once": run.cache is not None,
                   "alignment": run.alignment, "transfer_texts": len(texts), "config": cfg.model_dump(),
                   "stage1_kl_before": before, "stage1_kl_after": after, "check_texts": len(check),
                   "seconds": round(time.perf_counter() - t0 + run.earlier_seconds, 1),
                   "earlier_attempts_seconds": round(run.earlier_seconds, 1), "history": run.history,
                   **(provenance or {})}
        folder = _save(student, summary, Path(out))
        if run.checkpoint is not None:
            run.checkpoint.unlink(missing_ok=True)
        return folder


def _check_init(paths: Sequence[str | Path], models: Sequence[Any], cfg: CompressConfig) -> None:
    """Refuse ``init="teacher"`` with several teachers or a student encoder other than the teacher's."""
    from ade_distill.student.encoders import resolve_encoder

    if cfg.init == "encoder":
        return
    if len(paths) != 1:
        raise ConfigError(f"init 'teacher' copies one teacher, got {len(paths)}; give one --teacher or use "
                          "init 'encoder'")
    if resolve_encoder(cfg.encoder) != resolve_encoder(models[0].config.encoder):
        raise ConfigError(f"init 'teacher' copies the teacher's encoder ({models[0].config.encoder!r}), but the "
                          f"student's encoder is {cfg.encoder!r}: set encoder to {models[0].config.encoder!r}")


def _initial_student(paths: Sequence[str | Path], models: Sequence[Any], cfg: CompressConfig, tcfg: Any) -> Any:
    """The student before training: the pretrained ``encoder`` with fresh task layers, or (``init="teacher"``) a
    second copy of the one teacher, loaded from its folder (:func:`_check_init` has checked it)."""
    import torch

    from ade_distill.student.model import StudentExtractor
    from ade_distill.student.train import _new_student

    if cfg.init == "encoder":
        return _new_student(models[0].task, tcfg)
    student = StudentExtractor.from_pretrained(paths[0])
    # the compression's own max_length (the teachers are encoded at it too) and dropout, not the teacher's
    student.config = student.config.model_copy(update={"max_length": cfg.max_length, "dropout": cfg.dropout})
    if isinstance(getattr(student.module, "dropout", None), torch.nn.Dropout):
        student.module.dropout.p = cfg.dropout
    return student


def _student_tokenizer(encoder: str) -> Any:
    from transformers import AutoTokenizer

    from ade_distill.student.encoders import resolve_encoder

    try:
        return AutoTokenizer.from_pretrained(resolve_encoder(encoder))
    except OSError as err:
        raise ConfigError(f"cannot load the tokenizer of encoder {encoder!r}: {err}") from None


def _load_teachers(paths: Sequence[str | Path], cfg: CompressConfig) -> list[Any]:
    import torch

    from ade_distill.student.model import StudentExtractor

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    models = [StudentExtractor.from_pretrained(p) for p in paths]
    for m in models:
        if m.module is not None:
            m.module.to(dev).eval()
            if cfg.attention_weight > 0:
                m.module.encoder.set_attn_implementation("eager")
    return models


def _train_config(cfg: CompressConfig, teacher: Any) -> Any:
    """The :class:`TrainConfig` train.py's helpers (seeds, student, optimizer) read; decoding thresholds are the
    teacher's."""
    from ade_distill.student.train import TrainConfig

    return TrainConfig.build(
        encoder=cfg.encoder, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, head_lr=cfg.head_lr,
        max_length=cfg.max_length, seed=cfg.seed, warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip, dropout=cfg.dropout, threads=cfg.threads,
        head_threshold=teacher.config.head_threshold, tail_threshold=teacher.config.tail_threshold)


def _start(student: Any, models: list[Any], texts: list[str], cfg: CompressConfig, tcfg: Any,
           identical: bool, kept: Sequence[int] | None) -> _Run:
    """Student on the teachers' device, transfer set encoded and aligned, projections, optimizer and schedule."""
    from ade_distill.student.train import _optimizer

    student.module.to(models[0].device)
    if cfg.attention_weight > 0:
        student.module.encoder.set_attn_implementation("eager")
    sencs = student.encode(texts)
    members, alignment = _members(models, texts, sencs, cfg.max_length)
    log.info("transfer set: %d texts; alignment %s", len(texts), alignment)
    plan = _FeaturePlan.of(cfg, student.module.encoder.config.num_hidden_layers,
                           models[0].module.encoder.config.num_hidden_layers, kept)
    projections = _projections(cfg, student, models[0], plan)
    model = _trainable(student.module, projections)
    total = math.ceil(len(texts) / cfg.batch_size) * cfg.epochs
    optim, sched = _optimizer(model, tcfg, total)
    return _Run(student, members, sencs, cfg, plan, identical, projections, model, optim, sched, alignment)


def _save(student: Any, summary: dict[str, Any], out: Path) -> Path:
    """The student folder, with the compression in ``student.json`` provenance, the model card and
    ``compress.json``."""
    losses = {k: summary["config"][f"{k}_weight"] for k in LOSSES}
    sources = [t["model"] for t in summary["teachers"]]
    note = (f"compressed from {' + '.join(sources)} ({'ensemble of ' + str(len(sources)) if len(sources) > 1 else 'one'}"
            f" teacher) with losses {losses} at temperature {summary['config']['temperature']}")
    student.config = student.config.model_copy(update={
        "provenance": {"compressed_from": summary["teachers"], "compression": note,
                       "compress_config": summary["config"], "kept_layers": summary["kept_layers"],
                       "transfer_texts": summary["transfer_texts"]},
        "metrics": {k: summary[k] for k in ("stage1_kl_before", "stage1_kl_after", "alignment", "seconds")}})
    student.module.to("cpu")
    return student.save_pretrained(out, card_extra={"compression": note, "losses": losses},
                                   extra_files={"compress.json": json.dumps(summary, indent=2, default=str) + "\n"})


def transfer_texts(records: Sequence[Path] = (), unlabeled: Sequence[Path] = (), exclude: Sequence[Path] = (),
                   max_unlabeled: int | None = None) -> tuple[list[str], dict[str, Any]]:
    """The transfer set: the texts of ``records`` (labels unused) and the sentences of the ``unlabeled`` documents
    left after removing those sharing a PubMed ID or a text with the ``exclude`` records (exactly as
    ``adapt-encoder``: :func:`~ade_distill.experiments.protocol.filter_documents`), at most ``max_unlabeled``
    sentences. Duplicates are kept once. Returns the texts and the counts."""
    from ade_distill.data.formats import read_records
    from ade_distill.data.unlabeled import iter_documents, to_sentences
    from ade_distill.experiments.protocol import filter_documents

    texts = [e.text for p in records for e in read_records(p)]
    stats: dict[str, Any] = {"record_texts": len(texts)}
    docs = [d for p in unlabeled for d in iter_documents(p)]
    if docs and exclude:
        docs, stats["exclusion"] = filter_documents(docs, [e for p in exclude for e in read_records(p)])
    sentences = [s.text for s in to_sentences(docs)][:max_unlabeled]
    stats["unlabeled_sentences"] = len(sentences)
    out = list(dict.fromkeys(t for t in texts + sentences if t.strip()))
    stats["transfer_texts"] = len(out)
    return out, stats


__all__ = ["CompressConfig", "compress_student", "transfer_texts", "align_words", "token_pairs", "same_tokenizer",
           "keep_layers", "default_layer_map", "stage1_kl", "soft_kl"]
