"""Token-level BIO tags and seqeval scores, consistent with the strict span scores.

Tokenization: ``\\w+`` runs and single non-space, non-word characters (``[^\\w\\s]``), with character offsets —
so "azithromycin-induced" is three tokens. A span becomes the BIO tags of the tokens it overlaps (its
boundaries snap outwards to token boundaries). BIO cannot hold overlapping spans: among overlapping spans the
longest (then earliest, then label order) is kept and the others are counted in ``dropped``; unaligned spans
have no tokens and are counted too.

Consistency, as tested: when every span starts and ends on token boundaries and no two spans of an example
overlap, seqeval's micro and per-label P/R/F1 on these tags equal :func:`micro_prf`'s ``strict`` entity scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ade_distill.records import Example, Span

__all__ = ["tokenize", "bio_tags", "TagScores", "seqeval_scores"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[tuple[int, int]]:
    """Character offsets ``[start, end)`` of the tokens of ``text``."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def bio_tags(example: Example, spans: Sequence[Span] | None = None) -> tuple[list[str], int]:
    """IOB2 tags of ``example``'s tokens for ``spans`` (default: its own). Returns ``(tags, dropped)``."""
    toks = tokenize(example.text)
    tags = ["O"] * len(toks)
    dropped = 0
    cand = [s for s in (example.spans if spans is None else spans)]
    grounded = [s for s in cand if s.grounded]
    dropped += len(cand) - len(grounded)
    grounded.sort(key=lambda s: (-(s.end - s.start), s.start, s.label))  # type: ignore[operator]
    for s in grounded:
        idx = [i for i, (a, b) in enumerate(toks) if a < s.end and s.start < b]  # type: ignore[operator]
        if not idx or any(tags[i] != "O" for i in idx):
            dropped += 1
            continue
        tags[idx[0]] = f"B-{s.label}"
        for i in idx[1:]:
            tags[i] = f"I-{s.label}"
    return tags, dropped


@dataclass(frozen=True)
class TagScores:
    """seqeval micro and per-label P/R/F1, token accuracy, and how many spans BIO could not hold."""

    precision: float
    recall: float
    f1: float
    per_label: dict[str, tuple[float, float, float, int]]  # label → (P, R, F1, support)
    token_accuracy: float
    dropped_gold: int
    dropped_pred: int


def seqeval_scores(gold: Sequence[Example], aligned_pred: Sequence[Example]) -> TagScores:
    """Entity-level scores of BIO tags by seqeval (IOB2, strict scheme) — examples paired in gold order."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    yt, yp = [], []
    dg = dp = 0
    for g, p in zip(gold, aligned_pred, strict=True):
        tg, a = bio_tags(g)
        tp_, b = bio_tags(g, p.spans)
        dg += a
        dp += b
        yt.append(tg)
        yp.append(tp_)
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    rep = classification_report(yt, yp, output_dict=True, **kw)
    per = {k: (v["precision"], v["recall"], v["f1-score"], int(v["support"])) for k, v in rep.items()
           if not k.endswith(" avg")}
    return TagScores(
        precision_score(yt, yp, **kw), recall_score(yt, yp, **kw), f1_score(yt, yp, **kw), per,
        accuracy_score(yt, yp), dg, dp,
    )
