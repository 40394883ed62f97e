"""ADE corpus v2 (Gurulingappa et al. 2012) from its raw files → one :class:`Example` per (PubMed ID, sentence).

``DRUG-AE.rel`` gives document-level offsets (``PubMed-ID\\n\\nTitle\\n\\nAbstract``) but only the sentence, so
sentence-level spans have to be located. Policy for a mention string that occurs several times in its sentence:

1. **Anchor.** Every occurrence of every mention of the sentence proposes a sentence offset
   ``doc_begin - local_start``; the offset that explains the most distinct mentions is the sentence's document
   offset, provided it explains at least two of them and no other offset explains as many (an offset proposed
   by one mention alone would only restate that mention's own guess). A repeated mention takes the occurrence
   at ``doc_begin - offset`` (resolved ``anchored``). In the distributed file every sentence has such an anchor.
2. **Pair distance.** Without an anchor, the (drug, effect) occurrence pair whose local distance equals the
   document distance ``drug_begin - effect_begin`` is taken (``pair_distance``).
3. **First.** Otherwise the first occurrence (``first_occurrence``) — counted, never silent.

A mention absent from its sentence is looked up case-insensitively (``case_insensitive``; the anchor picks among
several such occurrences, else the first); if still absent it is counted as ``unlocated`` and its relation is
dropped from the example — and listed in the report. Each line's offsets must satisfy
``end - begin == len(mention)`` (half-open, as in the distributed file); a line that does not is malformed.

``ADE-NEG.txt`` sentences become examples with no spans (``meta.has_ade = False``). De-duplication policy:
exact duplicate (PubMed ID, sentence) lines of ADE-NEG.txt are kept once (7 in the distributed file), and a
negative sentence identical to a positive one of the same PubMed ID would be dropped (0 in the distributed file).
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ade_distill.data.textio import iter_lines
from ade_distill.errors import DataError
from ade_distill.records import Example, Relation, Span

SOURCE = "ade_corpus_v2"
REL_FILE = "DRUG-AE.rel"
NEG_FILE = "ADE-NEG.txt"
DOSE_FILE = "DRUG-DOSE.rel"


@dataclass(frozen=True)
class _RawMention:
    text: str
    begin: int
    end: int


@dataclass(frozen=True)
class _RawRelation:
    line: int
    effect: _RawMention
    drug: _RawMention


@dataclass
class AdeReport:
    """Counts of what the reader did, so nothing is lost silently."""

    relation_lines: int = 0
    positive_examples: int = 0
    distinct_positive_texts: int = 0
    pmids_positive: int = 0
    relations: int = 0
    duplicate_relations_merged: int = 0
    spans: dict[str, int] = field(default_factory=dict)
    mention_resolution: dict[str, int] = field(default_factory=dict)
    unlocated: list[dict[str, object]] = field(default_factory=list)
    negative_lines: int = 0
    negative_examples: int = 0
    negative_duplicates_dropped: int = 0
    negative_also_positive_dropped: int = 0
    pmids_total: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "relation_lines": self.relation_lines,
            "positive_examples": self.positive_examples,
            "distinct_positive_texts": self.distinct_positive_texts,
            "pmids_positive": self.pmids_positive,
            "relations": self.relations,
            "duplicate_relations_merged": self.duplicate_relations_merged,
            "spans": dict(sorted(self.spans.items())),
            "mention_resolution": dict(sorted(self.mention_resolution.items())),
            "unlocated_mentions": len(self.unlocated),
            "negative_lines": self.negative_lines,
            "negative_examples": self.negative_examples,
            "negative_duplicates_dropped": self.negative_duplicates_dropped,
            "negative_also_positive_dropped": self.negative_also_positive_dropped,
            "pmids_total": self.pmids_total,
            "negative_policy": (
                "ADE-NEG.txt: exact duplicate (PubMed ID, sentence) lines kept once; a negative sentence equal to "
                "a positive sentence of the same PubMed ID dropped"
            ),
        }


def _occurrences(text: str, sub: str) -> list[int]:
    out, i = [], text.find(sub)
    while i != -1:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


def _parse_int(value: str, what: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{what} {value!r} is not an integer", path=path, line=line) from None


def _read_rel_file(path: Path) -> Iterator[tuple[str, str, _RawRelation]]:
    """Yield (pmid, sentence, relation) per line of a ``.rel`` file; malformed lines raise DataError."""
    if not path.is_file():
        raise DataError("file not found (is the data folder right? see `ade-distill data stats`)", path=path)
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 8:
            raise DataError(
                f"expected 8 '|'-separated fields (PubMed-ID|sentence|effect|begin|end|drug|begin|end), "
                f"found {len(parts)}",
                path=path, line=lineno,
            )
        pmid = parts[0].strip()
        tail = parts[-6:]
        sentence = "|".join(parts[1:-6])
        if not pmid.isdigit():
            raise DataError(f"PubMed ID {pmid!r} is not numeric", path=path, line=lineno)
        eff = _RawMention(tail[0], _parse_int(tail[1], "effect begin", path, lineno),
                          _parse_int(tail[2], "effect end", path, lineno))
        drug = _RawMention(tail[3], _parse_int(tail[4], "drug begin", path, lineno),
                           _parse_int(tail[5], "drug end", path, lineno))
        if not sentence.strip():
            raise DataError("empty sentence", path=path, line=lineno)
        for m, what in ((eff, "effect"), (drug, "drug")):
            if not m.text:
                raise DataError(f"empty {what} mention", path=path, line=lineno)
            if m.begin < 0 or m.end - m.begin != len(m.text):
                raise DataError(
                    f"{what} offsets [{m.begin}, {m.end}) do not fit mention {m.text!r} "
                    f"(length {len(m.text)}; expected end - begin == length, begin >= 0)",
                    path=path, line=lineno,
                )
        yield pmid, sentence, _RawRelation(lineno, eff, drug)


def _locate(
    sentence: str, rels: list[_RawRelation], report: AdeReport, pmid: str
) -> list[tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """Return, per relation, the local (start, end) of its effect and drug mentions (None = unlocated)."""
    # 1. sentence offset: the candidate ``begin - occurrence`` that explains the most distinct mentions
    votes: Counter[int] = Counter()
    distinct = {(m.text, m.begin) for r in rels for m in (r.effect, r.drug)}
    for text, begin in distinct:
        for occ in set(_occurrences(sentence, text)):
            votes[begin - occ] += 1
    offset = None
    if votes:
        ranked = votes.most_common(2)
        best, n_best = ranked[0]
        if n_best >= 2 and (len(ranked) == 1 or ranked[1][1] < n_best):
            offset = best

    def resolve(m: _RawMention, partner: _RawMention, r: _RawRelation) -> tuple[int, int] | None:
        occ = _occurrences(sentence, m.text)
        status: str
        if len(occ) == 1:
            status, start = "unique", occ[0]
        elif len(occ) > 1:
            if offset is not None and (m.begin - offset) in occ:
                status, start = "anchored", m.begin - offset
            else:
                p_occ = _occurrences(sentence, partner.text)
                want = m.begin - partner.begin
                pairs = [a for a in occ for b in p_occ if a - b == want]
                if pairs:
                    status, start = "pair_distance", pairs[0]
                else:
                    status, start = "first_occurrence", occ[0]
        else:
            # a regex rather than str.lower(): lower() may change the length of some characters (e.g. 'İ'),
            # which would shift every offset after them
            low = [mt.start() for mt in re.finditer(re.escape(m.text), sentence, re.IGNORECASE)
                   if mt.end() - mt.start() == len(m.text)]
            if low:
                status, start = "case_insensitive", low[0]
                if offset is not None and (m.begin - offset) in low:
                    start = m.begin - offset
            else:
                report.mention_resolution["unlocated"] = report.mention_resolution.get("unlocated", 0) + 1
                report.unlocated.append({"pmid": pmid, "line": r.line, "mention": m.text, "sentence": sentence})
                return None
        report.mention_resolution[status] = report.mention_resolution.get(status, 0) + 1
        return start, start + len(m.text)

    return [(resolve(r.effect, r.drug, r), resolve(r.drug, r.effect, r)) for r in rels]


def _build_positive(
    ex_id: str, pmid: str, sentence: str, rels: list[_RawRelation], report: AdeReport,
    labels: tuple[str, str, str] = ("DRUG", "ADE", "ADE"),
) -> Example:
    """One example from the relation lines of a sentence; ``labels``: (drug label, tail label, relation label)."""
    head_label, tail_label, rel_label = labels
    located = _locate(sentence, rels, report, pmid)
    span_keys: dict[tuple[str, int, int], None] = {}
    pairs: list[tuple[tuple[str, int, int], tuple[str, int, int]]] = []
    for eff, drug in located:
        if eff is None or drug is None:
            continue
        dk, ek = (head_label, *drug), (tail_label, *eff)
        span_keys.setdefault(dk)
        span_keys.setdefault(ek)
        pairs.append((dk, ek))
    ordered = sorted(span_keys, key=lambda k: (k[1], k[2], k[0]))
    ids = {k: f"T{i + 1}" for i, k in enumerate(ordered)}
    spans = tuple(Span(id=ids[k], label=k[0], start=k[1], end=k[2], text=sentence[k[1]:k[2]]) for k in ordered)
    for k in ordered:
        report.spans[k[0]] = report.spans.get(k[0], 0) + 1
    seen: set[tuple[str, str]] = set()
    relations = []
    for dk, ek in pairs:
        key = (ids[dk], ids[ek])
        if key in seen:
            report.duplicate_relations_merged += 1
            continue
        seen.add(key)
        relations.append(Relation(head=key[0], tail=key[1], label=rel_label))
    report.relations += len(relations)
    return Example(
        id=ex_id,
        text=sentence,
        spans=spans,
        relations=tuple(relations),
        meta={"pmid": pmid, "source": SOURCE, "has_ade": True, "lines": [r.line for r in rels]},
    )


def _positive_ids(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Example id of each distinct (PubMed ID, sentence) of ``DRUG-AE.rel``, in file order: ``{pmid}_p{k}`` for
    the k-th sentence of that PubMed ID (the ids of :func:`read_ade_corpus` and :func:`read_drug_dose`)."""
    per_pmid: Counter[str] = Counter()
    out: dict[tuple[str, str], str] = {}
    for pmid, sentence in keys:
        if (pmid, sentence) not in out:
            out[(pmid, sentence)] = f"{pmid}_p{per_pmid[pmid]}"
            per_pmid[pmid] += 1
    return out


def _read_negatives(path: Path) -> Iterator[tuple[int, str, str]]:
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        pmid, sep, sentence = line.partition(" NEG ")
        if not sep or not pmid.strip().isdigit() or not sentence.strip():
            raise DataError("expected 'PubMed-ID NEG sentence'", path=path, line=lineno)
        yield lineno, pmid.strip(), sentence


def read_ade_corpus(
    folder: str | Path, *, include_negatives: bool = True, report: AdeReport | None = None
) -> list[Example]:
    """Read ``DRUG-AE.rel`` (and ``ADE-NEG.txt``) into examples.

    Example ids are ``{pmid}_p{k}`` for the k-th distinct sentence of that PubMed ID with relations (in file
    order) and ``{pmid}_n{k}`` for negatives. ``report`` (if given) is filled with counts.

    Raises:
        DataError: a file is missing or a line is malformed (file and line named).
    """
    folder = Path(folder)
    report = report if report is not None else AdeReport()
    groups: OrderedDict[tuple[str, str], list[_RawRelation]] = OrderedDict()
    for pmid, sentence, rel in _read_rel_file(folder / REL_FILE):
        report.relation_lines += 1
        groups.setdefault((pmid, sentence), []).append(rel)
    ids = _positive_ids(groups)
    examples = [_build_positive(ids[key], *key, rels, report) for key, rels in groups.items()]
    report.positive_examples = len(examples)
    report.distinct_positive_texts = len({s for _, s in groups})
    pmids = {p for p, _ in groups}
    report.pmids_positive = len(pmids)
    if include_negatives:
        seen: set[tuple[str, str]] = set()
        neg_k: Counter[str] = Counter()
        for lineno, pmid, sentence in _read_negatives(folder / NEG_FILE):
            report.negative_lines += 1
            if (pmid, sentence) in groups:
                report.negative_also_positive_dropped += 1
                continue
            if (pmid, sentence) in seen:
                report.negative_duplicates_dropped += 1
                continue
            seen.add((pmid, sentence))
            k = neg_k[pmid]
            neg_k[pmid] += 1
            pmids.add(pmid)
            examples.append(
                Example(id=f"{pmid}_n{k}", text=sentence,
                        meta={"pmid": pmid, "source": SOURCE, "has_ade": False, "lines": [lineno]})
            )
        report.negative_examples = len(seen)
    report.pmids_total = len(pmids)
    return examples


def count_dose_relations(folder: str | Path) -> int:
    """Number of drug → dose relation lines in ``DRUG-DOSE.rel`` (validated, for statistics)."""
    return sum(1 for _ in _read_rel_file(Path(folder) / DOSE_FILE))


def read_drug_dose(
    folder: str | Path, *, include_negatives: bool = True, report: AdeReport | None = None
) -> list[Example]:
    """The corpus' second relation, drug → dose (``DRUG-DOSE.rel``), as the sentence-level task ``drug_dose``
    (``ade_distill/tasks/drug_dose.yaml``): spans ``DRUG`` and ``DOSE``, relation ``DOSE``, mentions located as
    for ``DRUG-AE.rel``.

    Doses were annotated in the sentences that report an adverse effect (every ``DRUG-DOSE.rel`` sentence is also
    a ``DRUG-AE.rel`` sentence; in the distributed files 24 of the 4,059 other ``DRUG-AE.rel`` sentences contain an
    amount such as "5 mg", against 497 of the 16,688 ``ADE-NEG.txt`` sentences, where doses were not annotated).
    So the examples are the ``DRUG-AE.rel`` sentences, in file order, with the ids :func:`read_ade_corpus` gives
    them (``{pmid}_p{k}``): with their dose relations (``meta.has_dose = True``), or, with ``include_negatives``,
    without spans as negatives (``meta.has_dose = False``). A dose sentence missing from ``DRUG-AE.rel`` would be
    kept with the id ``{pmid}_d{k}``.

    Raises:
        DataError: a file is missing or a line is malformed (file and line named).
    """
    folder = Path(folder)
    report = report if report is not None else AdeReport()
    ade_ids = _positive_ids((pmid, sentence) for pmid, sentence, _ in _read_rel_file(folder / REL_FILE))
    groups: OrderedDict[tuple[str, str], list[_RawRelation]] = OrderedDict()
    for pmid, sentence, rel in _read_rel_file(folder / DOSE_FILE):
        report.relation_lines += 1
        groups.setdefault((pmid, sentence), []).append(rel)
    extra: Counter[str] = Counter()
    order = list(ade_ids) + [k for k in groups if k not in ade_ids]
    examples: list[Example] = []
    for key in order:
        pmid, sentence = key
        if key in groups:
            ex_id = ade_ids.get(key)
            if ex_id is None:
                ex_id = f"{pmid}_d{extra[pmid]}"
                extra[pmid] += 1
            rels = groups[key]
            ex = _build_positive(ex_id, pmid, sentence, rels, report, labels=("DRUG", "DOSE", "DOSE"))
            examples.append(ex.model_copy(update={"meta": {"pmid": pmid, "source": SOURCE, "has_dose": True,
                                                           "lines": [r.line for r in rels]}}))
            report.positive_examples += 1
        elif include_negatives:
            examples.append(Example(id=ade_ids[key], text=sentence,
                                    meta={"pmid": pmid, "source": SOURCE, "has_dose": False}))
            report.negative_examples += 1
    report.distinct_positive_texts = len({s for _, s in groups})
    report.pmids_positive = len({p for p, _ in groups})
    report.pmids_total = len({e.meta["pmid"] for e in examples})
    return examples
