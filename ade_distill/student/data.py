"""Training features, collation with dynamic padding, and length-grouped batching.

What is ignored, and counted (:class:`FeatureStats`):

* spans without offsets (``alignment="unaligned"``: an ungrounded teacher string) and every relation touching
  them;
* spans and relations whose confidence (``Span.score`` / ``Relation.score``; ``None`` counts as 1.0) is below
  ``min_confidence``, and relations touching a dropped span;
* spans cut off by truncation (``lost``) or overlapping an earlier span of the same tag sequence (``conflict``),
  see :mod:`ade_distill.student.encode`;
* for the pairwise architecture's joint tag set (one BIO sequence for heads and tails), tail spans overlapping a
  head span (``tail_overlapping_head``, e.g. DRUG "codeine" inside ADE "codeine intoxication"): the head wins and
  the whole tail is left out of ``Features.tail_tags`` (a partial tail would be an ``I`` without ``B``). The
  drug-conditioned model tags tails per head mention and keeps them.

With ``confidence_weighting`` the loss of every word tagged by a span is multiplied by that span's score and the
loss of a tail word in stage 2 by the relation's score (words tagged O keep weight 1).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ade_distill.records import Example, Relation, Span
from ade_distill.student.encode import (
    IGNORE,
    AlignStats,
    Encoding,
    O,
    char_to_words,
    spans_to_word_tags,
    word_values_to_tokens,
)
from ade_distill.tasks.spec import TaskSpec


@dataclass
class Mention:
    """A head mention (word range) with the BIO tags of its tails and the tails' word ranges."""

    ws: int
    we: int
    tail_tags: list[int]
    tail_weights: list[float]
    tails: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Features:
    """Everything both architectures need from one training example."""

    index: int
    enc: Encoding
    head_tags: list[int]
    head_weights: list[float]
    tail_tags: list[int]  # every tail entity not overlapping a head (pairwise joint tag set)
    tail_weights: list[float]
    mentions: list[Mention]
    pairs: list[tuple[tuple[int, int], tuple[int, int], int, float]]  # head range, tail range, label, weight
    has_relation: bool


@dataclass
class FeatureStats:
    examples: int = 0
    with_relations: int = 0
    truncated: int = 0
    unaligned_spans: int = 0
    low_confidence_spans: int = 0
    relations_used: int = 0
    relations_dropped: int = 0
    tail_overlapping_head: int = 0
    head: AlignStats = field(default_factory=AlignStats)
    tail: AlignStats = field(default_factory=AlignStats)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, AlignStats)}
        d["head_alignment"] = self.head.as_dict()
        d["tail_alignment"] = self.tail.as_dict()
        return d


def _conf(x: float | None) -> float:
    return 1.0 if x is None else float(x)


def build_features(
    task: TaskSpec,
    examples: Sequence[Example],
    encodings: Sequence[Encoding],
    *,
    min_confidence: float = 0.0,
    confidence_weighting: bool = False,
    stats: FeatureStats | None = None,
) -> list[Features]:
    """Turn examples (gold or silver) into word-level training targets for both stages."""
    stats = stats if stats is not None else FeatureStats()
    out: list[Features] = []
    for i, (ex, enc) in enumerate(zip(examples, encodings, strict=True)):
        stats.examples += 1
        stats.truncated += int(enc.truncated)
        out.append(_example_features(task, i, ex, enc, min_confidence, confidence_weighting, stats))
    return out


def _example_features(
    task: TaskSpec, index: int, ex: Example, enc: Encoding, min_confidence: float, weighting: bool,
    stats: FeatureStats,
) -> Features:
    """The features of one example: usable spans and relations, stage-1 head tags, the pairwise joint tail tags,
    stage-2 mentions with their tails, and the pairwise classifier's candidate pairs."""
    usable, rels = _usable_labels(task, ex, min_confidence, stats)
    heads = [s for s in usable.values() if s.label == task.head_label]
    tails = [s for s in usable.values() if s.label == task.tail_label]
    head_tags, head_weights, head_ranges = _head_tags(enc, heads, weighting, stats)
    tail_tags, tail_weights, tail_ranges = _joint_tail_tags(enc, tails, head_tags, weighting, stats)
    mentions, positives = _mentions(enc, heads, head_ranges, tail_ranges, rels, usable, weighting, stats)
    pairs = _candidate_pairs(mentions, tails, tail_ranges, positives)
    has_rel = bool(positives)
    stats.with_relations += int(has_rel)
    return Features(index, enc, head_tags, head_weights, tail_tags, tail_weights, list(mentions.values()), pairs,
                    has_rel)


def _weight(score: float | None, weighting: bool) -> float:
    return _conf(score) if weighting else 1.0


def _usable_labels(
    task: TaskSpec, ex: Example, min_confidence: float, stats: FeatureStats
) -> tuple[dict[str, Span], list[Relation]]:
    """Spans with offsets, confident enough and of the head or tail type (by id), and the primary relations
    between a usable head and a usable tail; what is left out is counted."""
    head_label, tail_label, rel_label = task.head_label, task.tail_label, task.primary.label
    usable: dict[str, Span] = {}
    for s in ex.spans:
        if s.start is None:
            stats.unaligned_spans += 1
        elif _conf(s.score) < min_confidence:
            stats.low_confidence_spans += 1
        elif s.label in (head_label, tail_label):
            usable[s.id] = s
    rels = []
    for r in ex.relations:
        if r.label == rel_label and r.head in usable and r.tail in usable and _conf(r.score) >= min_confidence \
                and usable[r.head].label == head_label and usable[r.tail].label == tail_label:
            rels.append(r)
        else:
            stats.relations_dropped += 1
    return usable, rels


WordRange = tuple[int, int]


def _head_tags(
    enc: Encoding, heads: Sequence[Span], weighting: bool, stats: FeatureStats
) -> tuple[list[int], list[float], dict[str, WordRange | None]]:
    """Stage 1: BIO tags and loss weights of the head entities, and each head's word range (None when it
    could not be tagged). Duplicates with the same word range are merged, not counted as conflicts."""
    n = len(enc.words)
    head_ranges: dict[str, WordRange | None] = {}
    tagged = spans_to_word_tags(enc.words, [(s.start, s.end) for s in heads])
    head_weights = [1.0] * n
    by_range: dict[WordRange, str] = {}
    for s, rng in zip(heads, tagged.ranges, strict=True):
        if rng is None:
            alt = char_to_words(enc.words, s.start, s.end)
            if alt is not None and alt in by_range:  # an exact duplicate of an earlier head: merge
                tagged.stats.conflict -= 1
                tagged.stats.exact += 1
                rng = alt
        head_ranges[s.id] = rng
        if rng is not None:
            by_range.setdefault(rng, s.id)
            for w in range(*rng):
                head_weights[w] = _weight(s.score, weighting)
    stats.head.add(tagged.stats)
    return tagged.tags, head_weights, head_ranges


def _joint_tail_tags(
    enc: Encoding, tails: Sequence[Span], head_tags: Sequence[int], weighting: bool, stats: FeatureStats
) -> tuple[list[int], list[float], dict[str, WordRange | None]]:
    """Pairwise: BIO tags and loss weights of every tail entity, and each tail's word range. A tail overlapping
    a head cannot be held by the joint tag sequence: it is left out whole (the head wins) and counted, never
    merged word by word into a broken I-without-B span."""
    ttag = spans_to_word_tags(enc.words, [(s.start, s.end) for s in tails])
    stats.tail.add(ttag.stats)
    tail_ranges = {s.id: r for s, r in zip(tails, ttag.ranges, strict=True)}
    joint_tail_tags = list(ttag.tags)
    tail_weights = [1.0] * len(enc.words)
    for s, rng in zip(tails, ttag.ranges, strict=True):
        if rng is None:
            continue
        if any(head_tags[w] != O for w in range(*rng)):
            stats.tail_overlapping_head += 1
            for w in range(*rng):
                joint_tail_tags[w] = O
            continue
        for w in range(*rng):
            tail_weights[w] = _weight(s.score, weighting)
    return joint_tail_tags, tail_weights, tail_ranges


def _mentions(
    enc: Encoding,
    heads: Sequence[Span],
    head_ranges: dict[str, WordRange | None],
    tail_ranges: dict[str, WordRange | None],
    rels: Sequence[Relation],
    usable: dict[str, Span],
    weighting: bool,
    stats: FeatureStats,
) -> tuple[dict[WordRange, Mention], dict[tuple[WordRange, WordRange], float]]:
    """Stage 2: one mention per distinct head word range, tagged with that head's tails; and the related
    (head range, tail range) pairs with their weights. A relation whose tail cannot be tagged is dropped and
    counted."""
    n = len(enc.words)
    mentions: dict[WordRange, Mention] = {}
    for s in heads:
        rng = head_ranges[s.id]
        if rng is not None and rng not in mentions:
            mentions[rng] = Mention(rng[0], rng[1], [O] * n, [1.0] * n)
    pairs_pos: dict[tuple[WordRange, WordRange], float] = {}
    for r in rels:
        hr = head_ranges.get(r.head)
        tr = tail_ranges.get(r.tail)
        if tr is None:  # a tail in conflict in the union sequence can still be tagged for its head
            tr = char_to_words(enc.words, usable[r.tail].start, usable[r.tail].end)
        if hr is None or tr is None:
            stats.relations_dropped += 1
            continue
        m = mentions[hr]
        if any(m.tail_tags[w] != O for w in range(*tr)):
            if tr not in m.tails:
                stats.relations_dropped += 1
                continue
        else:
            m.tail_tags[tr[0]] = 1
            for w in range(tr[0] + 1, tr[1]):
                m.tail_tags[w] = 2
            m.tails.append(tr)
        for w in range(*tr):
            m.tail_weights[w] = _weight(r.score, weighting)
        pairs_pos[(hr, tr)] = _weight(r.score, weighting)
        stats.relations_used += 1
    return mentions, pairs_pos


def _candidate_pairs(
    mentions: dict[WordRange, Mention],
    tails: Sequence[Span],
    tail_ranges: dict[str, WordRange | None],
    positives: dict[tuple[WordRange, WordRange], float],
) -> list[tuple[WordRange, WordRange, int, float]]:
    """Candidate pairs for the pairwise classifier: every tagged head × every tagged tail, labelled 1 when
    related (with the relation's weight), else 0 (weight 1)."""
    pairs: list[tuple[WordRange, WordRange, int, float]] = []
    for hr in mentions:
        for s in tails:
            tr = tail_ranges[s.id]
            if tr is None:
                continue
            key = (hr, tr)
            if any(p[0] == hr and p[1] == tr for p in pairs):
                continue
            pairs.append((hr, tr, int(key in positives), positives.get(key, 1.0)))
    return pairs


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, *, seed: int, shuffle: bool = True, group_factor: int = 50
) -> list[list[int]]:
    """Index batches of similar lengths: shuffle, cut into pools of ``group_factor`` batches, sort each pool
    by length, split it into batches, then shuffle the batches. Without ``shuffle``: sorted by length."""
    idx = list(range(len(lengths)))
    if not shuffle:
        idx.sort(key=lambda i: lengths[i])
        return [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(idx)
    pool = batch_size * group_factor
    batches = []
    for k in range(0, len(idx), pool):
        chunk = sorted(idx[k : k + pool], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _pad(rows: Sequence[Sequence[Any]], width: int, fill: Any) -> list[list[Any]]:
    return [list(r) + [fill] * (width - len(r)) for r in rows]


def collate(batch: Sequence[Features], pad_id: int, architecture: str) -> dict[str, Any]:
    """Tensors for one batch, padded to the longest sequence in it (dynamic padding)."""
    import torch

    if architecture == "pair_classifier":
        from ade_distill.student.pair_classifier import collate_pairs

        return collate_pairs(batch, pad_id)  # type: ignore[arg-type]
    width = max(len(f.enc) for f in batch)
    ids = torch.tensor(_pad([f.enc.input_ids for f in batch], width, pad_id))
    mask = torch.tensor(_pad([[1] * len(f.enc) for f in batch], width, 0))
    token_word = [list(f.enc.token_word) + [-1] * (width - len(f.enc)) for f in batch]
    out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
    if architecture == "pairwise":
        joint = []
        jw = []
        for f in batch:
            tags = list(f.head_tags)
            w = list(f.head_weights)
            for k, t in enumerate(f.tail_tags):
                if t != O and tags[k] == O:
                    tags[k] = t + 2
                    w[k] = f.tail_weights[k]
            joint.append(word_values_to_tokens(f.enc, tags) + [IGNORE] * (width - len(f.enc)))
            jw.append(word_values_to_tokens(f.enc, w, 0.0) + [0.0] * (width - len(f.enc)))
        out["entity_labels"] = torch.tensor(joint)
        out["entity_weights"] = torch.tensor(jw)
        pb, ph, pt, pl, pw = [], [], [], [], []
        for b, f in enumerate(batch):
            tw = token_word[b]
            for hr, tr, lab, w in f.pairs:
                pb.append(b)
                ph.append([1.0 if hr[0] <= x < hr[1] else 0.0 for x in tw])
                pt.append([1.0 if tr[0] <= x < tr[1] else 0.0 for x in tw])
                pl.append(lab)
                pw.append(w)
        out["pair_batch_index"] = torch.tensor(pb, dtype=torch.long)
        out["pair_head_mask"] = torch.tensor(ph, dtype=torch.float).reshape(len(pb), width)
        out["pair_tail_mask"] = torch.tensor(pt, dtype=torch.float).reshape(len(pb), width)
        out["pair_labels"] = torch.tensor(pl, dtype=torch.long)
        out["pair_weights"] = torch.tensor(pw, dtype=torch.float)
        return out
    out["head_labels"] = torch.tensor(
        [word_values_to_tokens(f.enc, f.head_tags) + [IGNORE] * (width - len(f.enc)) for f in batch]
    )
    out["head_weights"] = torch.tensor(
        [word_values_to_tokens(f.enc, f.head_weights, 0.0) + [0.0] * (width - len(f.enc)) for f in batch]
    )
    mb, mm, ml, mw = [], [], [], []
    for b, f in enumerate(batch):
        tw = token_word[b]
        for m in f.mentions:
            mb.append(b)
            mm.append([1.0 if m.ws <= x < m.we else 0.0 for x in tw])
            ml.append(word_values_to_tokens(f.enc, m.tail_tags) + [IGNORE] * (width - len(f.enc)))
            mw.append(word_values_to_tokens(f.enc, m.tail_weights, 0.0) + [0.0] * (width - len(f.enc)))
    out["mention_batch_index"] = torch.tensor(mb, dtype=torch.long)
    out["mention_token_mask"] = torch.tensor(mm, dtype=torch.float).reshape(len(mb), width)
    out["tail_labels"] = torch.tensor(ml, dtype=torch.long).reshape(len(mb), width)
    out["tail_weights"] = torch.tensor(mw, dtype=torch.float).reshape(len(mb), width)
    return out


def iter_batches(features: Sequence[Features], batches: Sequence[Sequence[int]]) -> Iterator[list[Features]]:
    for b in batches:
        yield [features[i] for i in b]
