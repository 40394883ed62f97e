"""Which records of a training file a student may learn from — checked where the file is read, before training.

A silver record whose teacher status (``meta.status``) is not ``ok`` says nothing reliable about its text:

* ``error``, ``no_recording``: the teacher never answered;
* ``refused``: a content filter stopped the answer;
* ``parse_error``: the answer could not be read;
* ``truncated``: the answer was cut at the token limit. Its complete items are kept in the record, but the
  relations after the cut are missing, so the record's other mentions would be learned as "no relation" — the
  README promises truncations are never read as "no relations". Excluded too.

Learning any of them as an example would teach "no relations" (or too few) for that text. They are left out and
counted per status. Gold records carry no status and are kept.

Older silver files stored the fuzzy-grounding match score in ``Span.score``, which training reads as teacher
confidence; such a score (on a span with ``alignment="fuzzy"``) is moved to ``meta["match_score"]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ade_distill.records import AlignmentStatus, Example

__all__ = ["USABLE_STATUS", "usable_records"]

USABLE_STATUS = "ok"


def _without_match_scores(ex: Example) -> Example:
    """``ex`` with the match scores of fuzzy spans moved out of ``Span.score`` (see the module docstring)."""
    if not any(s.alignment is AlignmentStatus.FUZZY and s.score is not None for s in ex.spans):
        return ex
    spans = tuple(
        s.model_copy(update={"score": None, "meta": {**s.meta, "match_score": s.score}})
        if s.alignment is AlignmentStatus.FUZZY and s.score is not None else s
        for s in ex.spans
    )
    return ex.model_copy(update={"spans": spans})


def usable_records(examples: Sequence[Example]) -> tuple[list[Example], dict[str, int]]:
    """Split off the records whose teacher status is not ``ok``.

    Returns:
        The usable records (gold, or silver with status ``ok``), in order, and the count of the excluded ones
        per status (empty when none was excluded).
    """
    kept: list[Example] = []
    excluded: Counter[str] = Counter()
    for ex in examples:
        status = ex.meta.get("status", USABLE_STATUS)
        if status == USABLE_STATUS:
            kept.append(_without_match_scores(ex))
        else:
            excluded[str(status)] += 1
    return kept, dict(sorted(excluded.items()))
