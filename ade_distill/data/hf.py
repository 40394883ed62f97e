"""ADE corpus v2 through Hugging Face ``datasets`` (``ade_corpus_v2``, config ``Ade_corpus_v2_drug_ade_relation``),
for users online. The hub version has one row per relation — ``text``, ``drug``, ``effect`` and sentence-level
``indexes.{drug,effect}.{start_char,end_char}`` listing *every* occurrence of the string — and no PubMed ID.

Rows are grouped by sentence text. When a mention occurs several times, the first listed occurrence is used
(the hub data carries no document offsets to disambiguate; the raw-file reader in :mod:`.ade_corpus` does
better). Without PubMed IDs, folds group by sentence text (``meta.pmid`` is absent; ``meta.doc_id`` is a hash).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from ade_distill.errors import DataError
from ade_distill.records import Example, Relation, Span

HF_NAME = "ade_corpus_v2"
HF_CONFIG = "Ade_corpus_v2_drug_ade_relation"


def _occurrence_lists(indexes: Any, key: str) -> tuple[list[int], list[int]]:
    """Starts and ends listed for ``key``: a dict of lists (``datasets.Sequence`` of a dict, the hub's
    shape) or a list of ``{start_char, end_char}`` dicts (``datasets.List`` of a dict). Missing → empty."""
    try:
        entry = indexes[key]
    except (KeyError, TypeError, IndexError):
        return [], []
    if isinstance(entry, Mapping):
        starts, ends = entry.get("start_char") or [], entry.get("end_char") or []
        return [int(x) for x in starts], [int(x) for x in ends]
    if isinstance(entry, (list, tuple)):
        pairs = [(d.get("start_char"), d.get("end_char")) for d in entry if isinstance(d, Mapping)]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        return [int(a) for a, _ in pairs], [int(b) for _, b in pairs]
    return [], []


def _first(indexes: Any, key: str, text: str, mention: str, row: int) -> tuple[int, int]:
    """The first listed occurrence of ``mention`` whose slice equals it, else its first occurrence in the text.

    The hub computed the indexes with an unescaped ``re.finditer(mention, text)``, so a mention holding regex
    metacharacters ("(", "+", ".") may have no, or wrong, listed occurrences: each is checked against the text.
    """
    starts, ends = _occurrence_lists(indexes, key)
    for s, e in zip(starts, ends, strict=False):  # a malformed row may list unequal counts
        if 0 <= s < e <= len(text) and text[s:e] == mention:
            return s, e
    i = text.find(mention)
    if i < 0:
        raise DataError(f"{key} mention {mention!r} not found in its text", record_id=f"row {row}")
    return i, i + len(mention)


def examples_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Example]:
    """Turn rows with the hub schema into examples (one per distinct sentence text).

    ``meta.rows`` is the number of hub rows merged into the example; it exceeds the number of relations when
    two rows of a sentence resolve to the same pair of spans (a repeated mention, see the module docstring).

    Raises:
        DataError: a column is missing or not a string, or a mention does not occur in its text (the message
            names the 0-based row).
    """
    groups: OrderedDict[str, list[tuple[int, int, int, int]]] = OrderedDict()
    for i, row in enumerate(rows):
        for col in ("text", "drug", "effect", "indexes"):
            if col not in row:
                raise DataError(f"missing column {col!r} (is this the {HF_CONFIG} config?)", record_id=f"row {i}")
        for col in ("text", "drug", "effect"):
            if not isinstance(row[col], str) or not row[col]:
                raise DataError(f"column {col!r} must be a non-empty string, found {row[col]!r}",
                                record_id=f"row {i}")
        text = row["text"]
        d = _first(row["indexes"], "drug", text, row["drug"], i)
        e = _first(row["indexes"], "effect", text, row["effect"], i)
        groups.setdefault(text, []).append((*d, *e))
    out = []
    for text, pairs in groups.items():
        keys: dict[tuple[str, int, int], None] = {}
        for ds, de, es, ee in pairs:
            keys.setdefault(("DRUG", ds, de))
            keys.setdefault(("ADE", es, ee))
        ordered = sorted(keys, key=lambda k: (k[1], k[2], k[0]))
        ids = {k: f"T{j + 1}" for j, k in enumerate(ordered)}
        spans = tuple(Span(id=ids[k], label=k[0], start=k[1], end=k[2], text=text[k[1]:k[2]]) for k in ordered)
        # de-duplicate on (head, tail) ids: Relation itself is unhashable (its ``meta`` is a dict)
        arg_pairs = dict.fromkeys((ids[("DRUG", ds, de)], ids[("ADE", es, ee)]) for ds, de, es, ee in pairs)
        rels = tuple(Relation(head=h, tail=t, label="ADE") for h, t in arg_pairs)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        out.append(Example(id=f"hf_{digest}", text=text, spans=spans, relations=rels,
                           meta={"doc_id": digest, "source": f"hf:{HF_NAME}", "has_ade": True,
                                 "rows": len(pairs)}))
    return out


def load_hf_ade(split: str = "train", cache_dir: str | None = None) -> list[Example]:  # pragma: no cover - network
    """Download (or load from the HF cache) the hub data set and convert it."""
    from datasets import load_dataset

    ds = load_dataset(HF_NAME, HF_CONFIG, split=split, cache_dir=cache_dir)
    return examples_from_rows(ds)
