"""Self-training on unlabeled text (noisy student; Xie et al. 2020, BOND / RoSTER for NER): the distilled student
labels sentences the teachers never saw, the confident part of its output becomes pseudo-silver, and a fresh
student (new seed, dropout as noise) is trained on teacher silver + pseudo-silver. One or more rounds.

Which sentences become pseudo-silver (:func:`select_pseudo`, a pure function):

* a sentence with predicted relations is kept when every relation scores at least ``min_relation_score``
  (``Relation.score``: P(head) × P(tail | head)); only the spans of those relations are kept, as in teacher silver
  (the teachers name relations, not lone drugs); a sentence with any relation below the line is left out whole,
  so no half-labelled sentence teaches "no relation" for what the student was unsure of;
* sentences without any predicted relation are the relation-free examples; ``negative_ratio`` of them per kept
  positive sentence are sampled (seeded) — most PubMed sentences have no adverse event, and the teacher silver
  holds none.

The unlabeled documents go through the same gold guard as ``adapt_encoder`` (no document sharing a PubMed ID
with, or containing the text of, any gold example), so no test sentence of any fold is ever pseudo-labelled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ade_distill.records import Example


def select_pseudo(
    predictions: Sequence[Example], *, min_relation_score: float, negative_ratio: float, seed: int, round_: int
) -> tuple[list[Example], dict[str, Any]]:
    """Pseudo-silver from a student's predictions on unlabeled sentences; returns (examples, counts)."""
    positives: list[Example] = []
    negatives: list[Example] = []
    uncertain = 0
    for ex in predictions:
        if not ex.relations:
            negatives.append(_pseudo(ex, [], [], round_))
        elif all(r.score is not None and r.score >= min_relation_score for r in ex.relations):
            used = {r.head for r in ex.relations} | {r.tail for r in ex.relations}
            positives.append(_pseudo(ex, [s for s in ex.spans if s.id in used], list(ex.relations), round_))
        else:
            uncertain += 1
    n_neg = min(len(negatives), round(negative_ratio * len(positives)))
    kept_neg = random.Random(seed).sample(negatives, n_neg) if n_neg else []
    counts = {"sentences": len(predictions), "positive": len(positives), "uncertain_left_out": uncertain,
              "relation_free": len(negatives), "relation_free_kept": n_neg,
              "relations": sum(len(e.relations) for e in positives)}
    return positives + kept_neg, counts


def _pseudo(ex: Example, spans: list[Any], relations: list[Any], round_: int) -> Example:
    meta = {**ex.meta, "source": "pseudo-silver", "pseudo_round": round_}
    meta.pop("status", None)
    return Example(id=ex.id, text=ex.text, spans=spans, relations=relations, meta=meta)


def sample_sentences(sentences: Sequence[Example], max_sentences: int | None, seed: int) -> list[Example]:
    """A seeded sample of at most ``max_sentences`` sentences, in their original order."""
    if max_sentences is None or len(sentences) <= max_sentences:
        return list(sentences)
    keep = set(random.Random(seed).sample(range(len(sentences)), max_sentences))
    return [s for i, s in enumerate(sentences) if i in keep]
