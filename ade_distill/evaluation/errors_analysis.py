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
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ade_distill.evaluation.matching import match_entities, match_relations, spans_overlap
from ade_distill.records import Example, Span

__all__ = ["ENTITY_CATEGORIES", "RELATION_CATEGORIES", "ErrorAnalysis", "analyze_errors"]

ENTITY_CATEGORIES = ("boundary", "label", "boundary_label", "miss", "spurious", "ungrounded")
RELATION_CATEGORIES = ("boundary", "label", "wrong_pairing", "miss", "spurious", "ungrounded")


def _fmt_span(s: Span) -> str:
    where = f"[{s.start},{s.end})" if s.grounded else "[unaligned]"
    return f"{s.label} {s.text!r} {where}"


def _same_off(a: Span, b: Span) -> bool:
    return a.grounded and b.grounded and a.start == b.start and a.end == b.end


@dataclass
class ErrorAnalysis:
    """Counts per level and category, plus up to ``max_examples`` illustrations per category."""

    system: str
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {"entity": Counter(), "relation": Counter()})
    examples: dict[str, dict[str, list[dict[str, str]]]] = field(
        default_factory=lambda: {"entity": {}, "relation": {}}
    )
    max_examples: int = 5

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
        lines = [f"## Errors of `{self.system}` (categories from strict matching)", ""]
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
    gold: Sequence[Example], aligned_pred: Sequence[Example], system: str = "system", max_examples: int = 5
) -> ErrorAnalysis:
    """Categorize every strict error of ``aligned_pred`` (in gold order, see ``metrics.pair_by_id``)."""
    out = ErrorAnalysis(system=system, max_examples=max_examples)
    for g, p in zip(gold, aligned_pred, strict=True):
        # -- entities
        m = match_entities(g.spans, p.spans, "strict")
        for s in m.unmatched_pred:
            assert isinstance(s, Span)
            if not s.grounded:
                out._add("entity", "ungrounded", g, _fmt_span(s))
                continue
            same = [x for x in g.spans if _same_off(s, x)]
            over = [x for x in g.spans if spans_overlap(s, x)]
            if same:
                out._add("entity", "label", g, _fmt_span(s), _fmt_span(same[0]))
            elif any(x.label == s.label for x in over):
                gx = next(x for x in over if x.label == s.label)
                out._add("entity", "boundary", g, _fmt_span(s), _fmt_span(gx))
            elif over:
                out._add("entity", "boundary_label", g, _fmt_span(s), _fmt_span(over[0]))
            else:
                out._add("entity", "spurious", g, _fmt_span(s))
        for s in m.unmatched_gold:
            assert isinstance(s, Span)
            if not any(spans_overlap(s, x) for x in p.spans):
                out._add("entity", "miss", g, gold=_fmt_span(s))
        # -- relations
        mr = match_relations(g, p, "strict")
        if not mr.unmatched_pred and not mr.unmatched_gold:
            continue
        gold_items = [it for it in _items(g)]
        for item in mr.unmatched_pred:
            r, h, t = item  # type: ignore[misc]
            desc = f"{r.label}({_fmt_span(h)} → {_fmt_span(t)})"
            if not (h.grounded and t.grounded):
                out._add("relation", "ungrounded", g, desc)
                continue
            exact_args = [gi for gi in gold_items if _same_off(h, gi[1]) and _same_off(t, gi[2])
                          and h.label == gi[1].label and t.label == gi[2].label]
            lenient = [gi for gi in gold_items if gi[0].label == r.label and gi[1].label == h.label
                       and gi[2].label == t.label and spans_overlap(h, gi[1]) and spans_overlap(t, gi[2])]
            h_gold = any(_same_off(h, x) and x.label == h.label for x in g.spans)
            t_gold = any(_same_off(t, x) and x.label == t.label for x in g.spans)
            if exact_args:
                gi = exact_args[0]
                out._add("relation", "label", g, desc, f"{gi[0].label}(...)")
            elif lenient:
                gi = lenient[0]
                out._add("relation", "boundary", g, desc, f"{gi[0].label}({_fmt_span(gi[1])} → {_fmt_span(gi[2])})")
            elif h_gold and t_gold:
                out._add("relation", "wrong_pairing", g, desc)
            else:
                out._add("relation", "spurious", g, desc)
        pred_items = _items(p)
        for item in mr.unmatched_gold:
            r, h, t = item  # type: ignore[misc]
            if not any(pi[0].label == r.label and spans_overlap(h, pi[1]) and spans_overlap(t, pi[2])
                       for pi in pred_items):
                out._add("relation", "miss", g, gold=f"{r.label}({_fmt_span(h)} → {_fmt_span(t)})")
    return out


def _items(ex: Example) -> list[tuple]:
    spans = ex.span_by_id()
    return [(r, spans[r.head], spans[r.tail]) for r in ex.relations]
