"""Where a system's gold relations go: each gold relation of the scored sentences, sorted into one bucket.

    python scripts/relation_misses.py GOLD.jsonl NAME=PRED.jsonl [NAME=PRED.jsonl ...]

Scores only the gold ids the first prediction file covers (e.g. one fold's held-out sentences). For each gold
relation (head mention -> tail mention), the first bucket that applies:

- ``exact``: the same two mentions are related in the prediction (a strict true positive);
- ``boundary``: a predicted relation overlaps both mentions (a lenient, not strict, match);
- ``other mention``: a predicted relation has the same two strings elsewhere in the sentence (a repeated mention);
- ``tail found, head not linked`` / ``head found, tail not linked``: one argument is in a predicted relation;
- ``no relation in the sentence``: the prediction has no relation at all for that sentence;
- ``other miss``: anything else (both arguments unused though the sentence has predicted relations).

Ungrounded predicted spans (no offsets) take no part. Prints a Markdown table, one column per system. This
splits the scorer's ``miss`` category (``ade-distill score --out``, errors.md) by what the system did instead."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ade_distill.evaluation.matching import spans_overlap
from ade_distill.records import Example, Span, read_examples

BUCKETS = ("exact", "boundary", "other mention", "tail found, head not linked", "head found, tail not linked",
           "no relation in the sentence", "other miss")
Pair = tuple[Span, Span, str, str]


def grounded_pairs(ex: Example) -> list[Pair]:
    """(head span, tail span, head text, tail text) of every relation whose two spans have offsets."""
    spans = ex.span_by_id()
    pairs = [(spans[r.head], spans[r.tail]) for r in ex.relations]
    return [(h, t, ex.text[h.start:h.end].lower(), ex.text[t.start:t.end].lower())
            for h, t in pairs if h.grounded and t.grounded]


def bucket(g: Pair, pred: list[Pair]) -> str:
    """The bucket of one gold relation given the predicted relations of its sentence."""
    head, tail, head_text, tail_text = g
    if any((head.start, head.end, tail.start, tail.end) == (ph.start, ph.end, pt.start, pt.end) for ph, pt, _, _ in pred):
        return "exact"
    if any(spans_overlap(head, ph) and spans_overlap(tail, pt) for ph, pt, _, _ in pred):
        return "boundary"
    if any((head_text, tail_text) == (x, y) for _, _, x, y in pred):
        return "other mention"
    if any(spans_overlap(tail, pt) for _, pt, _, _ in pred):
        return "tail found, head not linked"
    if any(spans_overlap(head, ph) for ph, _, _, _ in pred):
        return "head found, tail not linked"
    return "no relation in the sentence" if not pred else "other miss"


def breakdown(gold: dict[str, Example], pred: dict[str, Example]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for ex_id, g in gold.items():
        p = grounded_pairs(pred[ex_id]) if ex_id in pred else []
        counts.update(bucket(rel, p) for rel in grounded_pairs(g))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gold", type=Path)
    ap.add_argument("pred", nargs="+", help="NAME=PATH")
    args = ap.parse_args()
    systems = []
    for item in args.pred:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected NAME=PATH")
        systems.append((name, {e.id: e for e in read_examples(path)}))
    ids = set(systems[0][1])
    gold = {e.id: e for e in read_examples(args.gold, unique_ids=False) if e.id in ids}
    if not gold:
        raise SystemExit(f"{args.gold}: none of the {len(ids):,} ids of {args.pred[0]} is there")
    counts = [(name, breakdown(gold, pred)) for name, pred in systems]
    total = sum(counts[0][1].values())
    print(f"{total:,} gold relations in {len(gold):,} sentences\n")
    print("| gold relation | " + " | ".join(name for name, _ in counts) + " |")
    print("|---|" + "---:|" * len(counts))
    for b in BUCKETS:
        print(f"| {b} | " + " | ".join(str(c[b]) for _, c in counts) + " |")


if __name__ == "__main__":
    main()
