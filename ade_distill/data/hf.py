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


def _first(indexes: Mapping[str, Any], key: str, text: str, mention: str, row: int) -> tuple[int, int]:
    try:
        starts = list(indexes[key]["start_char"])
        ends = list(indexes[key]["end_char"])
    except (KeyError, TypeError):
        starts, ends = [], []
    if starts and ends:
        s, e = int(starts[0]), int(ends[0])
        if text[s:e] == mention:
            return s, e
    i = text.find(mention)
    if i < 0:
        raise DataError(f"{key} mention {mention!r} not found in its text", record_id=f"row {row}")
    return i, i + len(mention)


def examples_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Example]:
    """Turn rows with the hub schema into examples (one per distinct sentence text)."""
    groups: OrderedDict[str, list[tuple[int, int, int, int]]] = OrderedDict()
    for i, row in enumerate(rows):
        for col in ("text", "drug", "effect", "indexes"):
            if col not in row:
                raise DataError(f"missing column {col!r} (is this the {HF_CONFIG} config?)", record_id=f"row {i}")
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
        rels = tuple(OrderedDict.fromkeys(
            Relation(head=ids[("DRUG", ds, de)], tail=ids[("ADE", es, ee)], label="ADE") for ds, de, es, ee in pairs
        ))
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        out.append(Example(id=f"hf_{digest}", text=text, spans=spans, relations=rels,
                           meta={"doc_id": digest, "source": f"hf:{HF_NAME}", "has_ade": True}))
    return out


def load_hf_ade(split: str = "train", cache_dir: str | None = None) -> list[Example]:  # pragma: no cover - network
    """Download (or load from the HF cache) the hub data set and convert it."""
    from datasets import load_dataset

    ds = load_dataset(HF_NAME, HF_CONFIG, split=split, cache_dir=cache_dir)
    return examples_from_rows(ds)
