"""Rule baselines over given entity mentions, the floor a learned relation extractor should clear: link every
(head entity, tail entity) pair that shares a sentence (``window="sentence"``) or a text (``window="text"``).

Entities are grouped as the ``pair_classifier`` student groups them (:mod:`ade_distill.entities`), and a linked
pair becomes one relation between their anchor mentions, carrying the concept ids where the mentions have them,
so the ``concept`` scorer reads baseline and student predictions alike. Pure functions; no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ade_distill.entities import entity_pair_relation, group_mentions, mention_sentences
from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec

Window = Literal["sentence", "text"]


def cooccurrence(example: Example, task: TaskSpec, window: Window = "sentence") -> Example:
    """``example`` with its head and tail mentions kept and every co-occurring entity pair linked by the task's
    primary relation (its other spans and its relations are dropped)."""
    labels = (task.head_label, task.tail_label)
    spans = tuple(s for s in example.spans if s.label in labels and s.start is not None and s.end is not None)
    groups = group_mentions(spans, labels)
    where = mention_sentences(example.text, [s.start for s in spans]) if window == "sentence" else [0] * len(spans)
    sents = {k: {where[i] for i in idx} for k, idx in groups.items()}
    heads = [k for k in groups if k[0] == task.head_label]
    tails = [k for k in groups if k[0] == task.tail_label]
    rels = tuple(entity_pair_relation(h, t, groups, spans, task.primary.label)
                 for h in heads for t in tails if sents[h] & sents[t])
    meta = {**{k: v for k, v in example.meta.items() if k != "unanchored_relations"},
            "predicted_by": f"cooccurrence baseline ({window})"}
    return Example(id=example.id, text=example.text, spans=spans, relations=rels, meta=meta)


def cooccurrence_all(examples: Sequence[Example], task: TaskSpec, window: Window = "sentence") -> list[Example]:
    return [cooccurrence(ex, task, window) for ex in examples]


__all__ = ["Window", "cooccurrence", "cooccurrence_all"]
