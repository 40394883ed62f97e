"""Error analysis: why each strict mismatch happened, counted and illustrated (markdown and JSON).

Categories, decided from the strict matching of each example:

Entities (each unmatched prediction gets one category, each unmatched gold span without any overlapping
prediction is a ``miss``):

* ``ungrounded`` — the predicted span has no offsets (an LLM string that could not be aligned);
* ``label`` — same offsets as a gold span, different label;
* ``boundary`` — overlaps a gold span of the same label, different offsets;
* ``boundary_label`` — overlaps only gold spans of other labels, with different offsets;
* ``spurious`` — overlaps no gold span;
* ``miss`` — a gold span no prediction overlaps.

Relations (unmatched predicted relations; unmatched gold relations with no leniently matching prediction are
``miss``):

* ``ungrounded`` — an argument has no offsets;
* ``wrong_pairing`` — both arguments are exact gold spans, but the gold has no such relation between them;
* ``label`` — the arguments are exactly those of a gold relation with another relation label;
* ``boundary`` — leniently matches a gold relation (both arguments overlap, same labels) but not strictly;
* ``spurious`` — anything else;
* ``miss`` — as above.

Other offset modes (``boundaries``, ``lenient``; see :data:`ERROR_MODES`) apply the same rules to what that mode
leaves unmatched. :func:`classify_example` judges each item of one example (matched pairs as ``correct``, and
``covered`` for an unmatched gold item that some prediction overlaps — not counted, the prediction's error is);
:func:`analyze_errors` counts its errors, and the error browser (:mod:`ade_distill.reports.browse`) shows them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ade_distill.evaluation.matching import RelItem, match_entities, match_relations, spans_overlap
from ade_distill.records import Example, Span

__all__ = [
    "CORRECT",
    "COVERED",
    "ENTITY_CATEGORIES",
    "ERROR_MODES",
    "RELATION_CATEGORIES",
    "ErrorAnalysis",
    "Judgement",
    "analyze_errors",
    "classify_example",
]

ENTITY_CATEGORIES = ("boundary", "label", "boundary_label", "miss", "spurious", "ungrounded")
RELATION_CATEGORIES = ("boundary", "label", "wrong_pairing", "miss", "spurious", "ungrounded")
CORRECT = "correct"
COVERED = "covered"
ERROR_MODES = ("strict", "boundaries", "lenient")
CATEGORIES = {"entity": ENTITY_CATEGORIES, "relation": RELATION_CATEGORIES}


def _fmt_span(s: Span) -> str:
    where = f"[{s.start},{s.end})" if s.grounded else "[unaligned]"
    return f"{s.label} {s.text!r} {where}"


def _same_off(a: Span, b: Span) -> bool:
    return a.grounded and b.grounded and a.start == b.start and a.end == b.end


@dataclass(frozen=True)
class Judgement:
    """One item of one example, judged. ``category`` is ``correct``, an error category of its level, or
    ``covered``. ``pred``/``gold`` are spans (entity level) or ``(Relation, head, tail)`` triples: for
    ``correct`` the matched pair; for an error of a prediction, the gold item its category refers to (``label``,
    ``boundary``, ``boundary_label``) or None; for ``miss`` only ``gold``; for ``covered`` the gold item and the
    first prediction overlapping it."""

    level: str
    category: str
    pred: Span | RelItem | None
    gold: Span | RelItem | None

    @property
    def counted(self) -> bool:
        """True for an error that :func:`analyze_errors` counts."""
        return self.category in CATEGORIES[self.level]


@dataclass
class ErrorAnalysis:
    """Counts per level and category, plus up to ``max_examples`` illustrations per category."""

    system: str
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {"entity": Counter(), "relation": Counter()})
    examples: dict[str, dict[str, list[dict[str, str]]]] = field(
        default_factory=lambda: {"entity": {}, "relation": {}}
    )
    max_examples: int = 5
    mode: str = "strict"

    def _add(self, level: str, cat: str, ex: Example, pred: str = "", gold: str = "") -> None:
        self.counts[level][cat] += 1
        lst = self.examples[level].setdefault(cat, [])
        if len(lst) < self.max_examples:
            lst.append({"id": ex.id, "text": ex.text, "pred": pred, "gold": gold})

    def to_dict(self) -> dict[str, object]:
        cats = {"entity": ENTITY_CATEGORIES, "relation": RELATION_CATEGORIES}
        return {
            "system": self.system,
            "counts": {lvl: {c: int(self.counts[lvl][c]) for c in cats[lvl]} for lvl in cats},
            "examples": {lvl: {c: self.examples[lvl].get(c, []) for c in cats[lvl]} for lvl in cats},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = [f"## Errors of `{self.system}` (categories from {self.mode} matching)", ""]
        for lvl in ("entity", "relation"):
            lines += [f"### {lvl.capitalize()} level", "", "| category | count |", "|---|---:|"]
            for c, n in d["counts"][lvl].items():  # type: ignore[union-attr]
                lines.append(f"| {c} | {n} |")
            lines.append("")
            for c, exs in d["examples"][lvl].items():  # type: ignore[union-attr]
                if not exs:
                    continue
                lines.append(f"**{c}**")
                lines.append("")
                for e in exs:
                    text = e["text"] if len(e["text"]) <= 200 else e["text"][:197] + "..."
                    text = text.replace("|", "\\|")
                    parts = [f"`{e['id']}`"]
                    if e["pred"]:
                        parts.append(f"pred {e['pred']}")
                    if e["gold"]:
                        parts.append(f"gold {e['gold']}")
                    lines.append(f"- {'; '.join(parts)} — {text}")
                lines.append("")
        return "\n".join(lines)


def analyze_errors(
    gold: Sequence[Example], aligned_pred: Sequence[Example], system: str = "system", max_examples: int = 5,
    mode: str = "strict",
) -> ErrorAnalysis:
    """Categorize every error of ``aligned_pred`` (in gold order, see ``metrics.pair_by_id``) under ``mode``
    (``strict`` by default; ``boundaries`` or ``lenient`` count only what those modes do not match)."""
    out = ErrorAnalysis(system=system, max_examples=max_examples, mode=mode)
    for g, p in zip(gold, aligned_pred, strict=True):
        for j in classify_example(g, p, mode):
            if j.counted:
                out._add(j.level, j.category, g, *_describe(j))
    return out


def _describe(j: Judgement) -> tuple[str, str]:
    """The (pred, gold) strings of an error's illustration."""
    if j.level == "entity":
        return (_fmt_span(j.pred) if j.pred else "", _fmt_span(j.gold) if j.gold else "")  # type: ignore[arg-type]
    pred = _fmt_rel(j.pred) if j.pred else ""  # type: ignore[arg-type]
    if j.gold is None:
        return pred, ""
    return pred, f"{j.gold[0].label}(...)" if j.category == "label" else _fmt_rel(j.gold)  # type: ignore[index]


def _fmt_rel(item: RelItem) -> str:
    r, h, t = item
    return f"{r.label}({_fmt_span(h)} → {_fmt_span(t)})"


def classify_example(gold: Example, pred: Example, mode: str = "strict") -> list[Judgement]:
    """Judge every item of one (gold, prediction) pair under ``mode`` (``strict``, ``boundaries`` or
    ``lenient``): matched pairs are ``correct``, each unmatched prediction gets its error category, each
    unmatched gold item is a ``miss`` — or ``covered`` when a prediction overlaps it (that prediction's error is
    the one counted). Entities first, then relations; the order :func:`analyze_errors` counts them in.

    Raises:
        ValueError: a mode other than those of :data:`ERROR_MODES`.
    """
    if mode not in ERROR_MODES:
        raise ValueError(f"error categories need an offset mode {list(ERROR_MODES)}, not {mode!r}")
    return _judge_entities(gold, pred, mode) + _judge_relations(gold, pred, mode)


def _judge_entities(g: Example, p: Example, mode: str) -> list[Judgement]:
    m = match_entities(g.spans, p.spans, mode)
    out = [Judgement("entity", CORRECT, pi, gi) for pi, gi in m.matched]  # type: ignore[arg-type]
    for s in m.unmatched_pred:
        assert isinstance(s, Span)
        out.append(_entity_error(s, g))
    for s in m.unmatched_gold:
        assert isinstance(s, Span)
        over = next((x for x in p.spans if spans_overlap(s, x)), None)
        out.append(Judgement("entity", COVERED, over, s) if over else Judgement("entity", "miss", None, s))
    return out


def _entity_error(s: Span, g: Example) -> Judgement:
    if not s.grounded:
        return Judgement("entity", "ungrounded", s, None)
    same = [x for x in g.spans if _same_off(s, x)]
    over = [x for x in g.spans if spans_overlap(s, x)]
    if same:
        return Judgement("entity", "label", s, same[0])
    if any(x.label == s.label for x in over):
        return Judgement("entity", "boundary", s, next(x for x in over if x.label == s.label))
    if over:
        return Judgement("entity", "boundary_label", s, over[0])
    return Judgement("entity", "spurious", s, None)


def _judge_relations(g: Example, p: Example, mode: str) -> list[Judgement]:
    mr = match_relations(g, p, mode)
    out = [Judgement("relation", CORRECT, pi, gi) for pi, gi in mr.matched]  # type: ignore[arg-type]
    if not mr.unmatched_pred and not mr.unmatched_gold:
        return out
    gold_items = _items(g)
    for item in mr.unmatched_pred:
        out.append(_relation_error(item, g, gold_items))  # type: ignore[arg-type]
    pred_items = _items(p)
    for item in mr.unmatched_gold:
        r, h, t = item  # type: ignore[misc]
        over = next((pi for pi in pred_items if pi[0].label == r.label and spans_overlap(h, pi[1])
                     and spans_overlap(t, pi[2])), None)
        out.append(Judgement("relation", COVERED, over, item) if over else  # type: ignore[arg-type]
                   Judgement("relation", "miss", None, item))  # type: ignore[arg-type]
    return out


def _relation_error(item: RelItem, g: Example, gold_items: list[RelItem]) -> Judgement:
    r, h, t = item
    if not (h.grounded and t.grounded):
        return Judgement("relation", "ungrounded", item, None)
    exact_args = [gi for gi in gold_items if _same_off(h, gi[1]) and _same_off(t, gi[2])
                  and h.label == gi[1].label and t.label == gi[2].label]
    if exact_args:
        return Judgement("relation", "label", item, exact_args[0])
    lenient = [gi for gi in gold_items if gi[0].label == r.label and gi[1].label == h.label
               and gi[2].label == t.label and spans_overlap(h, gi[1]) and spans_overlap(t, gi[2])]
    if lenient:
        return Judgement("relation", "boundary", item, lenient[0])
    h_gold = any(_same_off(h, x) and x.label == h.label for x in g.spans)
    t_gold = any(_same_off(t, x) and x.label == t.label for x in g.spans)
    return Judgement("relation", "wrong_pairing" if h_gold and t_gold else "spurious", item, None)


def _items(ex: Example) -> list[RelItem]:
    spans = ex.span_by_id()
    return [(r, spans[r.head], spans[r.tail]) for r in ex.relations]
