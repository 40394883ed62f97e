"""Per-example matching of predicted against gold spans and relations (pure functions, no I/O).

Every mode produces, for one (gold, prediction) pair of examples, per-label true-positive, false-positive and
false-negative counts (:class:`LabelCounts`). Counts are summed over examples and divided once
(:mod:`ade_distill.evaluation.metrics`).

Matching rules (``level="entity"`` scores spans, ``level="relation"`` scores relations):

``strict``
    A predicted span matches a gold span with the same ``[start, end)`` and the same label. Matching is
    one-to-one: a duplicate prediction (a second span with the same offsets and label) is a false positive, and
    a duplicated gold span needs two predictions. A relation matches when its label is equal and both arguments
    match strictly.
``boundaries``
    Same offsets; the entity label is ignored. Among spans with equal offsets, pairs with equal labels are
    matched first (it does not change the counts, only which pair is reported). Per-label counts attribute a
    true positive and a false negative to the *gold* label and a false positive to the *predicted* label, so
    per-label counts always sum to the micro counts. For relations the relation label must still be equal;
    the argument entity labels are ignored.
``lenient``
    Character overlap (at least one shared character) and the same label. A maximum one-to-one matching is
    computed (maximum cardinality; among maximum matchings the one with the largest total Jaccard overlap;
    ties broken on a canonical sort of the spans by offsets, label, text and id), so the result is
    deterministic and independent of input order — unlike first-come greedy matching, one prediction
    overlapping two gold spans matches only one of them, and a first greedy choice cannot block a better one.
    A relation matches when its label is equal and both arguments overlap a gold relation's arguments with
    the same entity labels (again a maximum one-to-one matching over relations).
``text``
    Per example, the *set* of normalized strings (lowercase, whitespace runs collapsed to one space,
    stripped): entities are ``(text, label)`` pairs, relations ``(head text, tail text, label)`` triples.
    Duplicates collapse. Offsets are ignored, so unaligned (ungrounded) LLM strings take part here and only here.
``concept``
    Document-level concept scoring for BC5CDR-like gold (spans carry ``meta["concepts"]``, relations carry
    ``meta["head_concept"]``/``meta["tail_concept"]``). See :func:`match_concept`.

Unaligned predicted spans (no offsets) never match in ``strict``, ``boundaries`` or ``lenient``: they are false
positives there, as are relations with an unaligned argument. Gold spans without offsets can likewise only be
missed in those modes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ade_distill.records import Example, Relation, Span

__all__ = [
    "MODES",
    "ADE_MODES",
    "LEVELS",
    "LabelCounts",
    "ExampleMatch",
    "normalize_text",
    "match_example",
    "match_entities",
    "match_relations",
    "match_concept",
    "max_matching",
    "spans_overlap",
]

ADE_MODES: tuple[str, ...] = ("strict", "boundaries", "lenient", "text")
MODES: tuple[str, ...] = (*ADE_MODES, "concept")
LEVELS: tuple[str, ...] = ("entity", "relation")


def normalize_text(s: str) -> str:
    """Lowercase, collapse every whitespace run to one space, strip: the ``text``-mode key of a string."""
    return " ".join(s.lower().split())


@dataclass
class LabelCounts:
    """True positives, false positives and false negatives per label for one example (or a sum of them)."""

    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)

    def labels(self) -> set[str]:
        return set(self.tp) | set(self.fp) | set(self.fn)

    def add(self, other: LabelCounts) -> None:
        self.tp.update(other.tp)
        self.fp.update(other.fp)
        self.fn.update(other.fn)

    def micro(self) -> tuple[int, int, int]:
        return sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())


@dataclass
class ExampleMatch:
    """The outcome of matching one example: counts plus the matched and unmatched items (for error analysis).

    Items are spans (entity level of the offset modes), relations as ``(Relation, head Span, tail Span)``
    triples (relation level of the offset modes), or normalized tuples (``text`` and ``concept`` modes).
    """

    counts: LabelCounts
    matched: list[tuple[object, object]] = field(default_factory=list)  # (pred item, gold item)
    unmatched_pred: list[object] = field(default_factory=list)
    unmatched_gold: list[object] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# helpers


def spans_overlap(a: Span, b: Span) -> bool:
    """True when both spans are grounded and share at least one character."""
    if a.start is None or b.start is None:
        return False
    assert a.end is not None and b.end is not None
    return a.start < b.end and b.start < a.end


def _jaccard(a: Span, b: Span) -> float:
    assert a.start is not None and a.end is not None and b.start is not None and b.end is not None
    inter = min(a.end, b.end) - max(a.start, b.start)
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def _span_sort_key(s: Span) -> tuple:
    return (s.start if s.start is not None else -1, s.end if s.end is not None else -1, s.label, s.text, s.id)


def max_matching(weights: np.ndarray) -> list[tuple[int, int]]:
    """Maximum-cardinality one-to-one matching on a (n_pred, n_gold) matrix of edge weights.

    ``weights[i, j]`` is NaN where ``i`` and ``j`` may not be matched, else a preference in ``[0, 1]``. Among the
    matchings of maximum cardinality, the one with the largest total preference is returned (Hungarian
    algorithm, :func:`scipy.optimize.linear_sum_assignment`). Deterministic for a given matrix; callers sort
    their items canonically first so that the result does not depend on input order.
    """
    n, m = weights.shape
    if n == 0 or m == 0:
        return []
    ok = ~np.isnan(weights)
    if not ok.any():
        return []
    from scipy.optimize import linear_sum_assignment

    # Each edge is worth 1 + pref/(k+1): the preferences of a whole matching add up to less than one edge, so
    # cardinality always wins and preference only breaks ties between maximum matchings.
    k = min(n, m)
    w = np.where(ok, 1.0 + np.nan_to_num(weights) / (k + 1), 0.0)
    rows, cols = linear_sum_assignment(w, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if ok[i, j]]


def _equality_matching(
    preds: Sequence[object], golds: Sequence[object], key, prefer
) -> list[tuple[int, int]]:
    """One-to-one matching where compatibility is equality of ``key(item)`` (cliques): maximum by construction.

    Within a class of equal keys, pairs with equal ``prefer(item)`` are matched first, then the rest in
    canonical order.
    """
    by_key_p: dict[object, list[int]] = {}
    by_key_g: dict[object, list[int]] = {}
    for i, p in enumerate(preds):
        k = key(p)
        if k is not None:
            by_key_p.setdefault(k, []).append(i)
    for j, g in enumerate(golds):
        k = key(g)
        if k is not None:
            by_key_g.setdefault(k, []).append(j)
    pairs: list[tuple[int, int]] = []
    for k, ps in by_key_p.items():
        gs = by_key_g.get(k)
        if not gs:
            continue
        free_g = list(gs)
        rest_p = []
        for i in ps:
            pi = prefer(preds[i])
            hit = next((j for j in free_g if prefer(golds[j]) == pi), None)
            if hit is None:
                rest_p.append(i)
            else:
                pairs.append((i, hit))
                free_g.remove(hit)
        for i, j in zip(rest_p, free_g, strict=False):  # leftovers pair up in canonical order
            pairs.append((i, j))
    return pairs


def _finish(
    preds: Sequence[object],
    golds: Sequence[object],
    pairs: Iterable[tuple[int, int]],
    pred_label,
    gold_label,
) -> ExampleMatch:
    counts = LabelCounts()
    mp: set[int] = set()
    mg: set[int] = set()
    matched = []
    for i, j in pairs:
        mp.add(i)
        mg.add(j)
        counts.tp[gold_label(golds[j])] += 1
        matched.append((preds[i], golds[j]))
    unmatched_pred = [p for i, p in enumerate(preds) if i not in mp]
    unmatched_gold = [g for j, g in enumerate(golds) if j not in mg]
    for p in unmatched_pred:
        counts.fp[pred_label(p)] += 1
    for g in unmatched_gold:
        counts.fn[gold_label(g)] += 1
    return ExampleMatch(counts, matched, unmatched_pred, unmatched_gold)


# ---------------------------------------------------------------------------------------------------------
# entities


def match_entities(gold: Sequence[Span], pred: Sequence[Span], mode: str) -> ExampleMatch:
    """Match the spans of one example under ``mode`` (``strict``, ``boundaries``, ``lenient`` or ``text``)."""
    if mode == "text":
        g = {(normalize_text(s.text), s.label) for s in gold}
        p = {(normalize_text(s.text), s.label) for s in pred}
        return _match_sets(g, p, label=lambda t: t[-1])
    golds = sorted(gold, key=_span_sort_key)
    preds = sorted(pred, key=_span_sort_key)
    lab = lambda s: s.label  # noqa: E731
    if mode == "strict":
        pairs = _equality_matching(
            preds, golds, key=lambda s: (s.start, s.end, s.label) if s.grounded else None, prefer=lab
        )
    elif mode == "boundaries":
        pairs = _equality_matching(
            preds, golds, key=lambda s: (s.start, s.end) if s.grounded else None, prefer=lab
        )
    elif mode == "lenient":
        w = np.full((len(preds), len(golds)), np.nan)
        for i, p in enumerate(preds):
            for j, g in enumerate(golds):
                if p.label == g.label and spans_overlap(p, g):
                    w[i, j] = _jaccard(p, g)
        pairs = max_matching(w)
    else:
        raise ValueError(f"unknown entity matching mode {mode!r}")
    return _finish(preds, golds, pairs, pred_label=lab, gold_label=lab)


def _match_sets(gold: set, pred: set, label) -> ExampleMatch:
    counts = LabelCounts()
    common = gold & pred
    for t in common:
        counts.tp[label(t)] += 1
    up = sorted(pred - gold)
    ug = sorted(gold - pred)
    for t in up:
        counts.fp[label(t)] += 1
    for t in ug:
        counts.fn[label(t)] += 1
    return ExampleMatch(counts, [(t, t) for t in sorted(common)], list(up), list(ug))


# ---------------------------------------------------------------------------------------------------------
# relations

RelItem = tuple[Relation, Span, Span]


def _rel_items(ex: Example) -> list[RelItem]:
    spans = ex.span_by_id()
    items = [(r, spans[r.head], spans[r.tail]) for r in ex.relations]
    items.sort(key=lambda t: (t[0].label, _span_sort_key(t[1]), _span_sort_key(t[2])))
    return items


def _off(s: Span) -> tuple[int, int] | None:
    return (s.start, s.end) if s.grounded else None  # type: ignore[return-value]


def match_relations(gold: Example, pred: Example, mode: str) -> ExampleMatch:
    """Match the relations of one example under ``mode``: label equal and both arguments matching."""
    if mode == "text":
        gs, ps = gold.span_by_id(), pred.span_by_id()
        g = {(normalize_text(gs[r.head].text), normalize_text(gs[r.tail].text), r.label) for r in gold.relations}
        p = {(normalize_text(ps[r.head].text), normalize_text(ps[r.tail].text), r.label) for r in pred.relations}
        return _match_sets(g, p, label=lambda t: t[-1])
    golds = _rel_items(gold)
    preds = _rel_items(pred)
    lab = lambda t: t[0].label  # noqa: E731

    def grounded(t: RelItem) -> bool:
        return t[1].grounded and t[2].grounded

    if mode == "strict":
        pairs = _equality_matching(
            preds, golds,
            key=lambda t: (t[0].label, _off(t[1]), t[1].label, _off(t[2]), t[2].label) if grounded(t) else None,
            prefer=lab,
        )
    elif mode == "boundaries":
        pairs = _equality_matching(
            preds, golds,
            key=lambda t: (t[0].label, _off(t[1]), _off(t[2])) if grounded(t) else None,
            prefer=lambda t: (t[1].label, t[2].label),
        )
    elif mode == "lenient":
        w = np.full((len(preds), len(golds)), np.nan)
        for i, (pr, ph, pt) in enumerate(preds):
            for j, (gr, gh, gt) in enumerate(golds):
                if (
                    pr.label == gr.label
                    and ph.label == gh.label
                    and pt.label == gt.label
                    and spans_overlap(ph, gh)
                    and spans_overlap(pt, gt)
                ):
                    w[i, j] = (_jaccard(ph, gh) + _jaccard(pt, gt)) / 2
        pairs = max_matching(w)
    else:
        raise ValueError(f"unknown relation matching mode {mode!r}")
    return _finish(preds, golds, pairs, pred_label=lab, gold_label=lab)


# ---------------------------------------------------------------------------------------------------------
# concept mode (document-level, BC5CDR)


def has_concepts(gold: Iterable[Example]) -> bool:
    """True when some gold span carries ``meta["concepts"]`` or some relation ``meta["head_concept"]``."""
    for ex in gold:
        if any("concepts" in s.meta for s in ex.spans):
            return True
        if any("head_concept" in r.meta for r in ex.relations):
            return True
    return False


def _gold_concepts_for(span: Span, gold: Example) -> set[str]:
    key = normalize_text(span.text)
    out: set[str] = set()
    for g in gold.spans:
        if g.label != span.label:
            continue
        if normalize_text(g.text) == key or spans_overlap(span, g):
            out.update(g.meta.get("concepts", ()))
    return out


def match_concept(gold: Example, pred: Example, level: str) -> ExampleMatch:
    """Document-level concept matching (BC5CDR-style).

    Each predicted argument maps to the union of the concept ids (``meta["concepts"]``) of the gold mentions of
    the same label whose normalized text equals the argument's, and — for a grounded argument — of the gold
    mentions it overlaps. Relation level: a predicted relation yields every ``(head concept, tail concept,
    label)`` triple of the product of its arguments' concepts — or, when it names its concept pair
    (``meta["head_concept"]``/``meta["tail_concept"]``, as the ``pair_classifier`` student and the co-occurrence
    baseline do) and its arguments map to those concepts, that one triple; the document's predictions are the *set* of
    those triples; gold is the set of ``(meta["head_concept"], meta["tail_concept"], label)`` of its relations
    plus ``example.meta["unanchored_relations"]`` (gold pairs whose concept has no mention in the text, which
    can only be missed). A predicted relation with an argument that maps to no concept counts as one false
    positive per distinct normalized ``(head text, tail text, label)``. Entity level: the set of
    ``(concept, label)``; an unmapped predicted span counts one false positive per distinct normalized
    ``(text, label)``.
    """
    if level == "entity":
        g = {(c, s.label) for s in gold.spans for c in s.meta.get("concepts", ())}
        p: set[tuple] = set()
        unmapped: set[tuple] = set()
        for s in pred.spans:
            cs = _gold_concepts_for(s, gold)
            if cs:
                p.update((c, s.label) for c in cs)
            else:
                unmapped.add((normalize_text(s.text), s.label))
    elif level == "relation":
        g = set()
        for r in gold.relations:
            if "head_concept" in r.meta and "tail_concept" in r.meta:
                g.add((r.meta["head_concept"], r.meta["tail_concept"], r.label))
        for u in gold.meta.get("unanchored_relations", ()) or ():
            g.add((u["head_concept"], u["tail_concept"], u.get("label", "CID")))
        spans = pred.span_by_id()
        p = set()
        unmapped = set()
        for r in pred.relations:
            h, t = spans[r.head], spans[r.tail]
            ch, ct = _gold_concepts_for(h, gold), _gold_concepts_for(t, gold)
            named = (r.meta.get("head_concept"), r.meta.get("tail_concept"))
            if named[0] in ch and named[1] in ct:  # a concept pair named by the system, borne out by its mentions
                p.add((named[0], named[1], r.label))
            elif ch and ct:
                p.update((a, b, r.label) for a in ch for b in ct)
            else:
                unmapped.add((normalize_text(h.text), normalize_text(t.text), r.label))
    else:
        raise ValueError(f"unknown level {level!r}")
    res = _match_sets(g, p, label=lambda t: t[-1])
    for t in sorted(unmapped):
        res.counts.fp[t[-1]] += 1
        res.unmatched_pred.append(t)
    return res


def match_example(gold: Example, pred: Example, mode: str, level: str) -> ExampleMatch:
    """Match one example under ``mode`` (see the module docstring) at ``level`` (``entity`` or ``relation``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {list(MODES)}")
    if mode == "concept":
        return match_concept(gold, pred, level)
    if level == "entity":
        return match_entities(gold.spans, pred.spans, mode)
    if level == "relation":
        return match_relations(gold, pred, mode)
    raise ValueError(f"unknown level {level!r}; expected one of {list(LEVELS)}")
