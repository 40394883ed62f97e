"""Protocol guards for distillation experiments (pure functions).

1. The distilled student never sees gold labels of the training folds: the teacher is given the training text
   with every gold span and relation stripped (:func:`strip_labels`), and silver comes from the teacher alone.
2. No test-fold text enters silver data: silver records whose PubMed ID is a test-fold PubMed ID, or whose
   normalized text equals a test-fold text, are removed (:func:`filter_silver`) and counted; the final check
   (:func:`contamination`) must then report zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The key that detects the same sentence under another id: lowercased, whitespace collapsed — the same key as
# the evaluation's ``text`` matching mode.
from ade_distill.evaluation.matching import normalize_text
from ade_distill.records import Example


def _pmids(ex: Example) -> set[str]:
    out = set()
    for key in ("pmid", "doc_id"):
        if key in ex.meta:
            out.add(str(ex.meta[key]))
    for sid in ex.meta.get("source_pmids", []) or []:
        out.add(str(sid))
    return out


def strip_labels(examples: Iterable[Example]) -> list[Example]:
    """Text and provenance only: spans, relations and label-bearing meta (``has_ade``) removed."""
    return [
        Example(id=e.id, text=e.text, meta={k: v for k, v in e.meta.items() if k not in ("has_ade", "lines")})
        for e in examples
    ]


@dataclass
class ContaminationReport:
    silver_in: int = 0
    removed_by_pmid: int = 0
    removed_by_text: int = 0
    silver_out: int = 0
    remaining_overlap_pmid: int = 0
    remaining_overlap_text: int = 0
    examples_removed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.remaining_overlap_pmid == 0 and self.remaining_overlap_text == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "silver_in": self.silver_in,
            "removed_by_pmid": self.removed_by_pmid,
            "removed_by_text": self.removed_by_text,
            "silver_out": self.silver_out,
            "remaining_overlap_pmid": self.remaining_overlap_pmid,
            "remaining_overlap_text": self.remaining_overlap_text,
            "clean": self.clean,
            "examples_removed": self.examples_removed[:20],
        }


def contamination(silver: Sequence[Example], test: Sequence[Example]) -> tuple[int, int]:
    """Count silver records sharing a PubMed ID / a normalized text with the test examples."""
    test_pmids = set().union(*(_pmids(e) for e in test)) if test else set()
    test_texts = {normalize_text(e.text) for e in test}
    by_pmid = sum(1 for s in silver if _pmids(s) & test_pmids)
    by_text = sum(1 for s in silver if normalize_text(s.text) in test_texts)
    return by_pmid, by_text


def filter_silver(silver: Sequence[Example], test: Sequence[Example]) -> tuple[list[Example], ContaminationReport]:
    """Remove silver records that share a PubMed ID or a normalized text with any test example."""
    rep = ContaminationReport(silver_in=len(silver))
    test_pmids = set().union(*(_pmids(e) for e in test)) if test else set()
    test_texts = {normalize_text(e.text) for e in test}
    kept = []
    for s in silver:
        if _pmids(s) & test_pmids:
            rep.removed_by_pmid += 1
            rep.examples_removed.append(s.id)
        elif normalize_text(s.text) in test_texts:
            rep.removed_by_text += 1
            rep.examples_removed.append(s.id)
        else:
            kept.append(s)
    rep.silver_out = len(kept)
    rep.remaining_overlap_pmid, rep.remaining_overlap_text = contamination(kept, test)
    return kept, rep


def filter_documents(documents: Sequence[Example], gold: Sequence[Example]) -> tuple[list[Example], dict[str, int]]:
    """Unlabeled documents without any gold text, for an encoder adapted once for all folds (every gold example is
    a test example of some fold): a document is removed when it shares a PubMed ID with a gold example or when
    its normalized text contains the normalized text of one. Returns the kept documents and the counts."""
    gold_pmids = set().union(*(_pmids(e) for e in gold)) if gold else set()
    norms = [normalize_text(d.text) for d in documents]
    everything = "\x00".join(norms)  # one search per gold text, then per document only for the texts found
    found = [t for t in {normalize_text(e.text) for e in gold} if t and t in everything]
    kept, by_pmid, by_text = [], 0, 0
    for d, norm in zip(documents, norms, strict=True):
        if _pmids(d) & gold_pmids:
            by_pmid += 1
            continue
        if any(t in norm for t in found):
            by_text += 1
            continue
        kept.append(d)
    return kept, {"documents_in": len(documents), "removed_by_pmid": by_pmid, "removed_by_text": by_text,
                  "documents_out": len(kept)}
