"""Counts per corpus and split, for `ade-distill data stats`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ade_distill.data.ade_corpus import AdeReport, count_dose_relations, read_ade_corpus
from ade_distill.data.cdr import SPLIT_FILES, CdrReport, read_cdr
from ade_distill.data.unlabeled import count_medline, iter_abstracts_jsonl
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example, Span, iter_jsonl

KNOWN_FOLDERS = ("ade_corpus_v2", "bc5cdr", "pubmed_unlabeled", "teacher_outputs")


def _entity_key(span: Span) -> str:
    concepts = span.meta.get("concepts") if span.meta else None
    return str(concepts[0]) if concepts else span.text.lower()


def head_conditioning_stats(examples: list[Example]) -> dict[str, int]:
    """How often the tails depend on *which* head is asked about: examples with relations, those with two or more
    related heads, and those where two heads relate to different sets of tails (entities identified by concept
    id when the corpus has them, else by lowercased text). A stage-2 layer in which the head only shifts class
    scores (the paper's linear layer over [h; v]) cannot tell those heads' tails apart."""
    with_rel = several = differ = 0
    for ex in examples:
        by = ex.span_by_id()
        tails: dict[str, set[str]] = {}
        for r in ex.relations:
            tails.setdefault(_entity_key(by[r.head]), set()).add(_entity_key(by[r.tail]))
        if not tails:
            continue
        with_rel += 1
        several += len(tails) > 1
        differ += len({frozenset(v) for v in tails.values()}) > 1
    return {"examples_with_relations": with_rel, "with_two_or_more_related_heads": several,
            "heads_with_different_tails": differ}


def corpus_stats(root: Path) -> dict[str, Any]:
    """Read every corpus present under ``root`` and return nested counts (JSON-serializable).

    Raises:
        ConfigError: ``root`` is not a folder or holds none of the known corpus folders (an empty table
            would look like success).
        DataError: a corpus file is malformed.
    """
    if not root.is_dir():
        raise ConfigError(f"data folder {str(root)!r} does not exist; set $ADE_DISTILL_DATA or pass --data")
    if not any((root / name).is_dir() for name in KNOWN_FOLDERS):
        raise ConfigError(
            f"no corpus found in {str(root)!r}: expected at least one of {list(KNOWN_FOLDERS)}; "
            f"set $ADE_DISTILL_DATA or pass --data"
        )
    out: dict[str, Any] = {"data_dir": str(root)}
    ade_dir = root / "ade_corpus_v2"
    if ade_dir.is_dir():
        rep = AdeReport()
        exs = read_ade_corpus(ade_dir, report=rep)
        out["ade"] = {**rep.as_dict(), "drug_dose_relations": count_dose_relations(ade_dir),
                      "head_conditioning": head_conditioning_stats(exs)}
    cdr_dir = root / "bc5cdr"
    if cdr_dir.is_dir():
        out["cdr"] = {}
        for split in SPLIT_FILES:
            rep_c = CdrReport()
            docs = read_cdr(cdr_dir, split, rep_c)
            out["cdr"][split] = {**rep_c.as_dict(), "head_conditioning": head_conditioning_stats(docs)}
    un = root / "pubmed_unlabeled"
    if un.is_dir():
        info: dict[str, Any] = {}
        abstracts = un / "pubmed_abstracts.jsonl"
        if abstracts.is_file():
            sources = Counter(str(d.meta.get("source")) for d in iter_abstracts_jsonl(abstracts))
            info["pubmed_abstracts.jsonl"] = {"abstracts": sum(sources.values()), "by_source": dict(sorted(sources.items()))}
        for xml in sorted(un.glob("*.xml*")):
            info[xml.name] = count_medline(xml)
        out["unlabeled"] = info
    tdir = root / "teacher_outputs"
    if tdir.is_dir():
        out["teacher_outputs"] = {}
        for f in sorted(tdir.glob("*.jsonl")):
            reasons: Counter[str] = Counter()
            for lineno, obj in iter_jsonl(f):
                if not isinstance(obj, dict):
                    raise DataError(f"expected a JSON object, found {type(obj).__name__}", path=f, line=lineno)
                reasons[str(obj.get("finish_reason"))] += 1
            out["teacher_outputs"][f.name] = {"responses": sum(reasons.values()), "finish_reason": dict(sorted(reasons.items()))}
    return out
