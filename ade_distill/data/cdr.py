"""BioCreative V CDR (Li et al. 2016) PubTator files → one :class:`Example` per abstract.

The text is ``title + " " + abstract`` (the PubTator offset convention). Mentions become spans labelled
``CHEMICAL`` / ``DISEASE`` with their MeSH concept ids in ``span.meta["concepts"]`` (composite mentions such as
``D001|D002`` list several). CID relations are document-level and hold between *concepts*; each becomes one
:class:`Relation` between the first mention of the chemical concept and the first mention of the disease concept,
with the concept ids in ``relation.meta``. Document-level scoring compares concept pairs, so the choice of
representative mention does not affect scores. A CID relation whose concept has no mention in the text is kept in
``example.meta["unanchored_relations"]`` and counted — never dropped silently. A mention line repeating the
offsets and type of an earlier one in the same document is merged into it (its concept ids are added) and
counted in ``duplicate_mentions``; a repeated CID line is merged and counted in ``duplicate_relations``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ade_distill.data.textio import iter_lines
from ade_distill.errors import DataError
from ade_distill.records import Example, Relation, Span

SOURCE = "bc5cdr"
SPLIT_FILES = {
    "train": "CDR_TrainingSet.PubTator.txt",
    "dev": "CDR_DevelopmentSet.PubTator.txt",
    "test": "CDR_TestSet.PubTator.txt",
}
_LABELS = {"Chemical": "CHEMICAL", "Disease": "DISEASE"}


@dataclass
class CdrReport:
    documents: int = 0
    mentions: dict[str, int] = field(default_factory=dict)
    cid_relations: int = 0
    unanchored_relations: int = 0
    duplicate_mentions: int = 0
    duplicate_relations: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "documents": self.documents,
            "mentions": dict(sorted(self.mentions.items())),
            "cid_relations": self.cid_relations,
            "unanchored_relations": self.unanchored_relations,
            "duplicate_mentions": self.duplicate_mentions,
            "duplicate_relations": self.duplicate_relations,
        }


def _blocks(path: Path) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Yield (first_line_number, [(line_number, line), ...]) per blank-line separated document."""
    block: list[tuple[int, str]] = []
    for lineno, line in iter_lines(path):
        if line.strip():
            block.append((lineno, line))
        elif block:
            yield block[0][0], block
            block = []
    if block:
        yield block[0][0], block


def _parse_document(path: Path, block: list[tuple[int, str]], report: CdrReport) -> Example:
    if len(block) < 2 or "|t|" not in block[0][1] or "|a|" not in block[1][1]:
        raise DataError("a PubTator document must start with 'PMID|t|title' and 'PMID|a|abstract' lines",
                        path=path, line=block[0][0])
    pmid, _, title = block[0][1].partition("|t|")
    pmid2, _, abstract = block[1][1].partition("|a|")
    if not pmid.isdigit():
        raise DataError(f"PubMed ID {pmid!r} is not numeric", path=path, line=block[0][0])
    if pmid != pmid2:
        raise DataError(f"title PMID {pmid!r} and abstract PMID {pmid2!r} differ", path=path, line=block[1][0])
    text = f"{title} {abstract}"
    spans: list[Span] = []
    first_mention: dict[tuple[str, str], str] = {}
    cids: list[tuple[int, str, str]] = []
    seen_offsets: dict[tuple[int, int, str], int] = {}
    for lineno, line in block[2:]:
        cols = line.split("\t")
        if len(cols) >= 2 and cols[1] == "CID":
            if len(cols) < 4 or not cols[2] or not cols[3]:
                raise DataError("CID line needs 'PMID<TAB>CID<TAB>chemical<TAB>disease'", path=path, line=lineno)
            if cols[0] != pmid:
                raise DataError(f"PMID {cols[0]!r} inside document {pmid!r}", path=path, line=lineno)
            cids.append((lineno, cols[2], cols[3]))
            continue
        if len(cols) < 6:
            raise DataError(f"mention line needs 6 tab-separated fields, found {len(cols)}", path=path, line=lineno)
        if cols[0] != pmid:
            raise DataError(f"PMID {cols[0]!r} inside document {pmid!r}", path=path, line=lineno)
        try:
            start, end = int(cols[1]), int(cols[2])
        except ValueError:
            raise DataError(f"offsets {cols[1]!r}, {cols[2]!r} are not integers", path=path, line=lineno) from None
        if cols[4] not in _LABELS:
            raise DataError(f"unknown entity type {cols[4]!r}; expected Chemical or Disease", path=path, line=lineno)
        label = _LABELS[cols[4]]
        if not (0 <= start < end <= len(text)):
            raise DataError(f"offsets [{start}, {end}) outside the text (length {len(text)})", path=path, line=lineno)
        if text[start:end] != cols[3]:
            raise DataError(f"mention {cols[3]!r} differs from text[{start}:{end}] = {text[start:end]!r}",
                            path=path, line=lineno)
        concepts = [c for c in cols[5].split("|") if c and c != "-1"]
        if (start, end, label) in seen_offsets:
            # the same mention annotated twice: keep one span, union of concept ids, and count it
            report.duplicate_mentions += 1
            i = seen_offsets[(start, end, label)]
            old = spans[i]
            merged = list(dict.fromkeys([*old.meta["concepts"], *concepts]))
            spans[i] = old.model_copy(update={"meta": {**old.meta, "concepts": merged}})
            for c in merged:
                first_mention.setdefault((label, c), old.id)
            continue
        seen_offsets[(start, end, label)] = len(spans)
        sid = f"T{len(spans) + 1}"
        spans.append(Span(id=sid, label=label, start=start, end=end, text=cols[3], meta={"concepts": concepts}))
        report.mentions[label] = report.mentions.get(label, 0) + 1
        for c in concepts:
            first_mention.setdefault((label, c), sid)
    relations: list[Relation] = []
    unanchored: list[dict[str, str]] = []
    seen_cids: set[tuple[str, str]] = set()
    for _lineno, chem, dis in cids:
        if (chem, dis) in seen_cids:
            report.duplicate_relations += 1
            continue
        seen_cids.add((chem, dis))
        report.cid_relations += 1
        h, t = first_mention.get(("CHEMICAL", chem)), first_mention.get(("DISEASE", dis))
        if h is None or t is None:
            report.unanchored_relations += 1
            unanchored.append({"head_concept": chem, "tail_concept": dis, "label": "CID"})
            continue
        relations.append(Relation(head=h, tail=t, label="CID", meta={"head_concept": chem, "tail_concept": dis}))
    meta: dict[str, object] = {"pmid": pmid, "source": SOURCE, "title_end": len(title)}
    if unanchored:
        meta["unanchored_relations"] = unanchored
    report.documents += 1
    return Example(id=pmid, text=text, spans=tuple(spans), relations=tuple(relations), meta=meta)


def iter_pubtator(path: str | Path, report: CdrReport | None = None) -> Iterator[Example]:
    """Stream examples from one PubTator file (memory-flat: one document at a time)."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", path=p)
    report = report if report is not None else CdrReport()
    seen: set[str] = set()
    for first, block in _blocks(p):
        ex = _parse_document(p, block, report)
        if ex.id in seen:
            raise DataError("duplicate document (PubMed ID seen earlier in the file)", path=p, line=first,
                            record_id=ex.id)
        seen.add(ex.id)
        yield ex


def read_cdr(folder: str | Path, split: str, report: CdrReport | None = None) -> list[Example]:
    """Read one split (``train``, ``dev`` or ``test``) of BC5CDR; each example gets ``meta.split``."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown CDR split {split!r}; expected one of {list(SPLIT_FILES)}")
    out = []
    for ex in iter_pubtator(Path(folder) / SPLIT_FILES[split], report):
        out.append(ex.model_copy(update={"meta": {**ex.meta, "split": split}}))
    return out
