"""``pair_classifier``: a relation classifier over candidate entity pairs, for pair-level and document-level tasks
(BC5CDR chemical-induced disease), in the manner of ATLOP (Zhou et al. 2021).

Setting: **given entities** ("gold entities" for BC5CDR). The entity mentions come with the input records — gold
mentions at training and at test time (in distillation the teacher says which entity pairs are related, see
:func:`onto_gold_entities`); the student only classifies pairs. It never tags entities.

* **Entities.** Mentions of the task's head and tail labels are grouped into entities by concept id
  (``span.meta["concepts"]``, the MeSH ids of BC5CDR gold mentions; a composite mention with several ids belongs
  to each of their entities), else by normalized text (:func:`entity_keys`).
* **Encoding.** The whole text, with a marker token (``*``) before and after every mention, is cut into chunks of
  ``max_length`` tokens (``[CLS] ... [SEP]`` each) and every chunk is encoded; the token states of the chunks
  together are the document's states, so long abstracts need no sentence windows and no mention is lost.
  A mention's embedding is the state of its start marker.
* **Aggregation.** An entity's embedding is the log-sum-exp of its mentions' embeddings (a smooth max over
  mentions), so a relation stated once among many mentions can still be read.
* **Classifier.** For every (head entity, tail entity) pair: ``z_h = tanh(W_h e_h)``, ``z_t = tanh(W_t e_t)``,
  logits over ``[TH, r_1, ..., r_n]`` from an MLP over ``[z_h; z_t; z_h * z_t]``. Class 0 is ATLOP's adaptive
  threshold: a relation is predicted when its logit exceeds the pair's own threshold logit, trained by the
  adaptive-threshold loss (:func:`adaptive_threshold_loss`). With the single relation of a task this is a
  softmax over ``[TH, r]``: ``P(r) >= relation_threshold`` (0.5 by default) is exactly ``logit_r > logit_TH``.
* **Structure features** (option ``pair_structure``): the classifier input also holds each pair's
  :data:`STRUCTURE_FEATURES` (:func:`pair_structure`) — the smallest sentence distance between a head and a tail
  mention, their same-sentence co-occurrences, whether each entity is named in the first sentence and how often it
  is mentioned against the most mentioned entity of its side — the distance features of document-level relation
  extraction baselines (DocRED's, BRAN's), which a small encoder reading 512-token chunks does not recover by
  itself. Sentences are spaCy's rule-based ones (:func:`~ade_distill.entities.mention_sentences`): for an
  abstract the first sentence is mostly its title (of the 500 BC5CDR development abstracts, 26 titles are split
  in two and 4 run into the abstract's first sentence).
* **Targets** are concept-pair labels: a pair of entities is positive when a relation of the record links them
  (by ``relation.meta["head_concept"/"tail_concept"]`` where present, else by its two mentions' entities) —
  document labels are never projected onto mention pairs.
* **Output** records: the input's head and tail mentions as spans (with their meta) and one relation per
  predicted entity pair, between the first mention of each entity (the BC5CDR reader's anchor), carrying
  ``head_concept``/``tail_concept`` where the entities are concepts — what the ``concept`` scorer reads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ade_distill.entities import (
    EntityKey,
    entity_keys,
    entity_pair_relation,
    group_mentions,
    mention_sentences,
    normalize_text,
)
from ade_distill.records import Example, Relation, Span
from ade_distill.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from ade_distill.student.model import StudentExtractor

log = logging.getLogger(__name__)

MARKER = "*"


def logsumexp_pool(mentions: torch.Tensor, membership: torch.Tensor) -> torch.Tensor:
    """Entity embeddings (E, H): log-sum-exp over the mention embeddings ``mentions`` (M, H) selected by the
    0/1 matrix ``membership`` (E, M). An entity without a mention gets zeros."""
    neg = torch.finfo(mentions.dtype).min
    x = mentions.unsqueeze(0).expand(membership.size(0), -1, -1)
    x = x.masked_fill(membership.unsqueeze(-1) <= 0, neg)
    out = torch.logsumexp(x, dim=1)
    return torch.where(membership.sum(1, keepdim=True) > 0, out, torch.zeros_like(out))


def adaptive_threshold_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
                            ) -> torch.Tensor:
    """ATLOP's adaptive-threshold loss. ``logits`` (P, 1 + n): class 0 is the threshold class TH; ``labels``
    (P, 1 + n) multi-hot over the relations, column 0 set for a pair without relation. Part 1 pushes every
    positive relation above TH (softmax over the positives and TH); part 2 pushes TH above every negative
    relation (softmax over TH and the negatives). Mean over pairs, each scaled by its weight."""
    labels = labels.float()
    logits = logits.float()
    th = torch.zeros_like(labels)
    th[:, 0] = 1.0
    pos = labels.clone()
    pos[:, 0] = 0.0
    neg_mask = 1.0 - pos - th  # negatives (TH excluded)
    big = 1e30
    logit1 = logits - (1.0 - pos - th) * big  # keep positives and TH
    loss1 = -(torch.log_softmax(logit1, dim=-1) * pos).sum(-1)
    logit2 = logits - (1.0 - neg_mask - th) * big  # keep negatives and TH
    loss2 = -(torch.log_softmax(logit2, dim=-1) * th).sum(-1)
    loss = loss1 + loss2
    if weights is not None:
        loss = loss * weights.float()
    return loss.mean() if loss.numel() else logits.sum() * 0.0


def adaptive_threshold_decide(logits: torch.Tensor) -> torch.Tensor:
    """Boolean (P, n): relation ``k`` holds for a pair when its logit exceeds that pair's TH logit (column 0)."""
    return logits[:, 1:] > logits[:, :1]


class PairClassifier(nn.Module):
    """Encoder + mention markers + log-sum-exp entity pooling + pair classifier with a threshold class."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1, n_relations: int = 1, structure: bool = False
                 ) -> None:
        super().__init__()
        h = encoder.config.hidden_size
        self.encoder = encoder
        self.structure = structure
        self.dropout = nn.Dropout(dropout)
        self.head_proj = nn.Linear(h, h)
        self.tail_proj = nn.Linear(h, h)
        extra = len(STRUCTURE_FEATURES) if structure else 0
        self.pair_classifier = nn.Sequential(
            nn.Linear(3 * h + extra, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, 1 + n_relations))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)

    def pair_logits(self, states: torch.Tensor, mention_chunk: torch.Tensor, mention_pos: torch.Tensor,
                    entity_mentions: torch.Tensor, pair_head: torch.Tensor, pair_tail: torch.Tensor,
                    pair_structure: torch.Tensor | None = None) -> torch.Tensor:
        mentions = states[mention_chunk, mention_pos]  # (M, H): start-marker states
        entities = logsumexp_pool(mentions, entity_mentions)  # (E, H)
        zh = torch.tanh(self.head_proj(entities[pair_head]))
        zt = torch.tanh(self.tail_proj(entities[pair_tail]))
        parts = [zh, zt, zh * zt]
        if self.structure:
            if pair_structure is None:
                raise ValueError("this pair classifier reads pair structure features: pass pair_structure")
            parts.append(pair_structure.to(zh.dtype))
        return self.pair_classifier(torch.cat(parts, dim=-1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mention_chunk: torch.Tensor,
                mention_pos: torch.Tensor, entity_mentions: torch.Tensor, pair_head: torch.Tensor,
                pair_tail: torch.Tensor, pair_labels: torch.Tensor | None = None,
                pair_weights: torch.Tensor | None = None, pair_structure: torch.Tensor | None = None
                ) -> dict[str, Any]:
        states = self.encode(input_ids, attention_mask)
        out: dict[str, Any] = {"loss": None}
        if pair_head.numel():
            logits = self.pair_logits(states, mention_chunk, mention_pos, entity_mentions, pair_head, pair_tail,
                                      pair_structure)
            out["pair_logits"] = logits
            if pair_labels is not None:
                out["loss"] = adaptive_threshold_loss(logits, pair_labels, pair_weights)
        if out["loss"] is None:  # no candidate pair in the batch: a zero loss that still touches the graph
            out["loss"] = states.sum() * 0.0
        return out


# -- features ------------------------------------------------------------------------------------------------
@dataclass
class PairEncoding:
    """A text with mention markers, cut into encoder chunks. ``mention_at[i]``: (chunk, position) of span
    ``i``'s start marker, or None (a span without offsets or of another label)."""

    chunks: list[list[int]]
    mention_at: list[tuple[int, int] | None]

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass
class PairFeatures:
    index: int
    enc: PairEncoding
    entities: list[EntityKey]
    members: list[list[int]]  # per entity: indices into the encoding's mentions (spans with a marker)
    mentions: list[tuple[int, int]]  # (chunk, position) per mention used
    pairs: list[tuple[int, int]]  # (head entity, tail entity)
    labels: list[list[float]]  # per pair: [TH, r1..rn]
    weights: list[float]
    structure: list[list[float]] = field(default_factory=list)  # per pair: STRUCTURE_FEATURES
    has_relation: bool = False


@dataclass
class PairStats:
    examples: int = 0
    entities: int = 0
    mentions: int = 0
    candidate_pairs: int = 0
    positive_pairs: int = 0
    relations_used: int = 0
    relations_unmapped: int = 0
    chunks: int = 0
    multi_chunk_texts: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


STRUCTURE_FEATURES = (
    "same_sentence", "adjacent_sentences", "two_sentences_apart", "farther_apart", "log_cooccurrences",
    "head_in_first_sentence", "tail_in_first_sentence", "head_mention_share", "tail_mention_share",
    "head_most_mentioned", "tail_most_mentioned", "log_head_mentions", "log_tail_mentions",
)


def pair_structure(sentence_of: Sequence[int], members: Sequence[Sequence[int]],
                   pairs: Sequence[tuple[int, int]]) -> list[list[float]]:
    """:data:`STRUCTURE_FEATURES` of each (head entity, tail entity) pair. ``sentence_of[m]``: the sentence of
    mention ``m``; ``members[e]``: the mentions of entity ``e``. Mention shares compare an entity's mention count
    with the most mentioned entity of its side (head or tail) among ``pairs``."""
    sents = [[sentence_of[m] for m in row] for row in members]
    heads, tails = {a for a, _ in pairs}, {b for _, b in pairs}
    top_h = max((len(sents[a]) for a in heads), default=1) or 1
    top_t = max((len(sents[b]) for b in tails), default=1) or 1
    out = []
    for a, b in pairs:
        sa, sb = sents[a], sents[b]
        d = min((abs(x - y) for x in sa for y in sb), default=99)
        co = sum(1 for x in sa for y in sb if x == y)
        out.append([float(d == 0), float(d == 1), float(d == 2), float(d >= 3), math.log1p(co),
                    float(0 in sa), float(0 in sb), len(sa) / top_h, len(sb) / top_t,
                    float(len(sa) == top_h), float(len(sb) == top_t), math.log1p(len(sa)), math.log1p(len(sb))])
    return out


def encode_with_markers(tokenizer: Any, text: str, spans: Sequence[Span], labels: Sequence[str],
                        max_length: int) -> PairEncoding:
    """Tokens of ``text`` with a marker before and after each mention (spans of ``labels``), in chunks of
    at most ``max_length`` tokens including ``[CLS]``/``[SEP]``."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    marker = tokenizer.convert_tokens_to_ids(MARKER)
    starts: dict[int, list[int]] = {}
    ends: dict[int, int] = {}
    for i, s in enumerate(spans):
        if s.start is None or s.end is None or s.label not in labels:
            continue
        toks = [k for k, (a, b) in enumerate(offs) if a < s.end and s.start < b and b > a]
        if not toks:
            continue
        starts.setdefault(toks[0], []).append(i)
        ends[toks[-1]] = ends.get(toks[-1], 0) + 1
    flat: list[int] = []
    where: dict[int, int] = {}
    for k, tid in enumerate(ids):
        for i in starts.get(k, ()):
            where[i] = len(flat)
            flat.append(marker)
        flat.append(tid)
        flat.extend([marker] * ends.get(k, 0))
    body = max(1, max_length - 2)
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    chunks = [[cls_id, *flat[k : k + body], sep_id] for k in range(0, max(1, len(flat)), body)]
    mention_at: list[tuple[int, int] | None] = [None] * len(spans)
    for i, p in where.items():
        mention_at[i] = (p // body, p % body + 1)
    return PairEncoding(chunks, mention_at)


def _pair_targets(task: TaskSpec, ex: Example, entities: dict[EntityKey, list[int]], stats: PairStats,
                  min_confidence: float, weighting: bool) -> dict[tuple[EntityKey, EntityKey], float]:
    """Related entity pairs of a record (concept-pair level), with their weights."""
    rel_labels = [task.primary.label]
    by_id = {s.id: s for s in ex.spans}
    out: dict[tuple[EntityKey, EntityKey], float] = {}
    for r in ex.relations:
        if r.label not in rel_labels or (r.score is not None and r.score < min_confidence):
            continue
        h, t = by_id.get(r.head), by_id.get(r.tail)
        keys: list[tuple[EntityKey, EntityKey]] = []
        if "head_concept" in r.meta and "tail_concept" in r.meta:
            keys = [((task.head_label, f"c:{r.meta['head_concept']}"), (task.tail_label, f"c:{r.meta['tail_concept']}"))]
        elif h is not None and t is not None and h.start is not None and t.start is not None:
            keys = [(a, b) for a in entity_keys(h) for b in entity_keys(t)]
        keys = [k for k in keys if k[0] in entities and k[1] in entities]
        if not keys:
            stats.relations_unmapped += 1
            continue
        stats.relations_used += 1
        w = float(r.score) if (weighting and r.score is not None) else 1.0
        for k in keys:
            out[k] = max(out.get(k, 0.0), w)
    return out


def build_pair_features(task: TaskSpec, examples: Sequence[Example], tokenizer: Any, max_length: int, *,
                        min_confidence: float = 0.0, confidence_weighting: bool = False,
                        stats: PairStats | None = None, with_targets: bool = True) -> list[PairFeatures]:
    """Encodings, entities, candidate pairs (every head entity × every tail entity) and concept-pair targets."""
    stats = stats if stats is not None else PairStats()
    labels = (task.head_label, task.tail_label)
    out = []
    for n, ex in enumerate(examples):
        spans = [s for s in ex.spans if s.score is None or s.score >= min_confidence or not with_targets]
        enc = encode_with_markers(tokenizer, ex.text, spans, labels, max_length)
        groups = group_mentions(spans, labels)
        used = [i for i, at in enumerate(enc.mention_at) if at is not None]
        pos_of = {i: k for k, i in enumerate(used)}
        ents = [k for k, idx in groups.items() if any(i in pos_of for i in idx)]
        members = [[pos_of[i] for i in groups[k] if i in pos_of] for k in ents]
        ent_index = {k: j for j, k in enumerate(ents)}
        heads = [j for j, k in enumerate(ents) if k[0] == task.head_label]
        tails = [j for j, k in enumerate(ents) if k[0] == task.tail_label]
        pairs = [(a, b) for a in heads for b in tails]
        targets = _pair_targets(task, ex, ent_index, stats, min_confidence, confidence_weighting) \
            if with_targets else {}
        structure = pair_structure(mention_sentences(ex.text, [spans[i].start for i in used]),  # type: ignore[misc]
                                   members, pairs)
        lab, wts = [], []
        for a, b in pairs:
            key = (ents[a], ents[b])
            lab.append([0.0, 1.0] if key in targets else [1.0, 0.0])
            wts.append(targets.get(key, 1.0))
        f = PairFeatures(n, enc, ents, members, [enc.mention_at[i] for i in used], pairs, lab, wts,  # type: ignore[misc]
                         structure=structure, has_relation=bool(targets))
        stats.examples += 1
        stats.entities += len(ents)
        stats.mentions += len(used)
        stats.candidate_pairs += len(pairs)
        stats.positive_pairs += sum(1 for x in lab if x[1] > 0)
        stats.chunks += len(enc.chunks)
        stats.multi_chunk_texts += int(len(enc.chunks) > 1)
        out.append(f)
    return out


def collate_pairs(batch: Sequence[PairFeatures], pad_id: int) -> dict[str, torch.Tensor]:
    """Tensors for a batch of documents: all their chunks padded to the longest, mentions, entity membership
    (block-diagonal over documents), candidate pairs and their targets."""
    chunks = [c for f in batch for c in f.enc.chunks]
    width = max(len(c) for c in chunks)
    ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for i, c in enumerate(chunks):
        ids[i, : len(c)] = torch.tensor(c)
        mask[i, : len(c)] = 1
    mc, mp, ph, pt, pl, pw, ps = [], [], [], [], [], [], []
    member_rows: list[list[int]] = []
    c_off = m_off = e_off = 0
    for f in batch:
        for c, p in f.mentions:
            mc.append(c + c_off)
            mp.append(p)
        member_rows.extend([[m + m_off for m in row] for row in f.members])
        for (a, b), lab, w, st in zip(f.pairs, f.labels, f.weights, f.structure, strict=True):
            ph.append(a + e_off)
            pt.append(b + e_off)
            pl.append(lab)
            pw.append(w)
            ps.append(st)
        c_off += len(f.enc.chunks)
        m_off += len(f.mentions)
        e_off += len(f.entities)
    membership = torch.zeros((len(member_rows), m_off), dtype=torch.float)
    for e, row in enumerate(member_rows):
        membership[e, row] = 1.0
    return {
        "input_ids": ids, "attention_mask": mask,
        "mention_chunk": torch.tensor(mc, dtype=torch.long), "mention_pos": torch.tensor(mp, dtype=torch.long),
        "entity_mentions": membership,
        "pair_head": torch.tensor(ph, dtype=torch.long), "pair_tail": torch.tensor(pt, dtype=torch.long),
        "pair_labels": torch.tensor(pl, dtype=torch.float).reshape(len(pl), 2),
        "pair_weights": torch.tensor(pw, dtype=torch.float),
        "pair_structure": torch.tensor(ps, dtype=torch.float).reshape(len(ps), len(STRUCTURE_FEATURES)),
    }


# -- prediction ----------------------------------------------------------------------------------------------
@torch.inference_mode()
def predict_pairs(student: StudentExtractor, examples: Sequence[Example], batch_size: int = 8) -> list[Example]:
    """Relations between the given entity mentions of each example (see the module docstring)."""
    from ade_distill.errors import ConfigError

    if student.module is None:
        raise ConfigError("the pair_classifier student runs in torch only (no ONNX export)")
    task, cfg = student.task, student.config
    labels = (task.head_label, task.tail_label)
    keep = [[s for s in ex.spans if s.label in labels and s.start is not None] for ex in examples]
    feats = build_pair_features(task, [ex.model_copy(update={"spans": tuple(k), "relations": ()})
                                       for ex, k in zip(examples, keep, strict=True)],
                                student.tokenizer, cfg.max_length, with_targets=False)
    no_entities = sum(1 for ex, f in zip(examples, feats, strict=True) if not f.pairs and ex.text)
    if examples and not any(keep):
        log.warning("none of the %d input texts carries %s or %s mentions: pair_classifier only classifies pairs "
                    "of the entity mentions given with the input (gold, or from an entity tagger), so it predicts "
                    "nothing here; for raw text use the drug_conditioned student", len(examples), *labels)
    elif no_entities:
        log.info("%d of %d texts have no candidate (head, tail) entity pair among their given mentions; "
                 "pair_classifier predicts relations between the entity mentions given with the input",
                 no_entities, len(examples))
    student.module.eval()
    device = student.device
    probs: list[list[float]] = [[] for _ in feats]
    order = sorted(range(len(feats)), key=lambda i: len(feats[i].enc))
    todo = [i for i in order if feats[i].pairs]
    for k in range(0, len(todo), batch_size):
        idx = todo[k : k + batch_size]
        batch = collate_pairs([feats[i] for i in idx], student.tokenizer.pad_token_id or 0)
        batch = {n: v.to(device) for n, v in batch.items() if n not in ("pair_labels", "pair_weights")}
        with student._autocast():
            logits = student.module(**batch)["pair_logits"]
        p = torch.softmax(logits.float(), dim=-1)[:, 1].tolist()
        at = 0
        for i in idx:
            probs[i] = p[at : at + len(feats[i].pairs)]
            at += len(feats[i].pairs)
    out = []
    rel_label = task.primary.label
    for ex, spans, f, pr in zip(examples, keep, feats, probs, strict=True):
        groups = group_mentions(spans, labels)
        rels: list[Relation] = []
        for (a, b), p in zip(f.pairs, pr, strict=True):
            if p >= cfg.relation_threshold:
                rels.append(entity_pair_relation(f.entities[a], f.entities[b], groups, spans, rel_label,
                                                 min(1.0, max(0.0, p))))
        m = {k: v for k, v in ex.meta.items() if k != "unanchored_relations"}
        m["predicted_by"] = student.describe()
        out.append(Example(id=ex.id, text=ex.text, spans=tuple(spans), relations=tuple(rels), meta=m))
    return out


def entity_pair_prf(task: TaskSpec, gold: Sequence[Example], pred: Sequence[Example]) -> tuple[float, float, float]:
    """Micro P/R/F1 of related entity pairs (entities keyed as in :func:`entity_keys`, relations as in training
    targets): the dev score of a pair_classifier, for gold (concept ids) and silver (text keys) dev sets alike."""
    def pairs(ex: Example) -> set[tuple[EntityKey, EntityKey]]:
        ents = group_mentions(ex.spans, (task.head_label, task.tail_label))
        return set(_pair_targets(task, ex, {k: 0 for k in ents}, PairStats(), 0.0, False))

    tp = fp = fn = 0
    pmap = {e.id: e for e in pred}
    for g in gold:
        gs = pairs(g)
        ps = pairs(pmap[g.id]) if g.id in pmap else set()
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def onto_gold_entities(silver: Example, gold: Example, task: TaskSpec) -> tuple[Example, int]:
    """Distillation in the gold-entities setting: the teacher's relations (grounded strings) mapped onto the
    gold entities of the same text, as in the ``concept`` scorer (an argument maps to the concepts of gold mentions
    of its label with the same normalized text or overlapping it). Returns the record with the gold mentions and
    one relation per related concept pair, and the number of teacher relations that mapped to no gold entity
    (left out)."""
    from ade_distill.evaluation.matching import _gold_concepts_for

    first: dict[EntityKey, Span] = {}
    for s in gold.spans:
        for k in entity_keys(s):
            first.setdefault(k, s)
    by_id = silver.span_by_id()
    rels: dict[tuple[str, str], Relation] = {}
    unmapped = 0
    for r in silver.relations:
        if r.label != task.primary.label:
            continue
        h, t = by_id[r.head], by_id[r.tail]
        ch, ct = _gold_concepts_for(h, gold), _gold_concepts_for(t, gold)
        pairs = [(a, b) for a in sorted(ch) for b in sorted(ct)
                 if (h.label, f"c:{a}") in first and (t.label, f"c:{b}") in first]
        if not pairs:
            unmapped += 1
            continue
        for a, b in pairs:
            hs, ts = first[(h.label, f"c:{a}")], first[(t.label, f"c:{b}")]
            old = rels.get((a, b))
            score = r.score if old is None or old.score is None or r.score is None else max(old.score, r.score)
            rels[(a, b)] = Relation(head=hs.id, tail=ts.id, label=r.label, score=score,
                                    meta={"head_concept": a, "tail_concept": b})
    meta = {**silver.meta, "silver_relations_unmapped_to_gold_entities": unmapped}
    return (Example(id=silver.id, text=gold.text, spans=gold.spans, relations=tuple(rels.values()), meta=meta),
            unmapped)


__all__ = ["STRUCTURE_FEATURES", "PairClassifier", "adaptive_threshold_decide", "adaptive_threshold_loss", "build_pair_features",
           "collate_pairs", "entity_keys", "entity_pair_prf", "group_mentions", "logsumexp_pool",
           "mention_sentences", "normalize_text", "onto_gold_entities", "pair_structure", "predict_pairs"]
