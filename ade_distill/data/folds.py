"""k-fold cross-validation grouped by PubMed ID, written once to a file that every later stage reads.

Groups (PubMed IDs) are shuffled with the seed, then assigned largest-first to the fold with the fewest
examples *with relations* so far (ties: fewest examples, then lowest fold index); documents without any relation
go last, each to the fold with the fewest examples. No document is ever in two
folds, folds are balanced in the examples that are scored, and the same seed gives the same file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Folds:
    """A fold assignment: ``folds[i]`` is the list of example ids of fold ``i`` (0-based)."""

    corpus: str
    k: int
    seed: int
    folds: tuple[tuple[str, ...], ...]
    groups: tuple[tuple[str, ...], ...]
    corpus_hash: str

    def test_ids(self, fold: int) -> set[str]:
        self._check(fold)
        return set(self.folds[fold])

    def train_ids(self, fold: int) -> set[str]:
        self._check(fold)
        return {i for j, ids in enumerate(self.folds) if j != fold for i in ids}

    def fold_of(self) -> dict[str, int]:
        return {i: j for j, ids in enumerate(self.folds) for i in ids}

    def _check(self, fold: int) -> None:
        if not 0 <= fold < self.k:
            raise ConfigError(f"fold {fold} out of range: folds are numbered 0..{self.k - 1}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "corpus": self.corpus,
                "k": self.k,
                "seed": self.seed,
                "corpus_hash": self.corpus_hash,
                "folds": [
                    {"fold": j, "pmids": list(self.groups[j]), "example_ids": list(self.folds[j])}
                    for j in range(self.k)
                ],
            },
            indent=1,
            sort_keys=False,
        ) + "\n"

    def save(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Folds:
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            folds = tuple(tuple(f["example_ids"]) for f in raw["folds"])
            groups = tuple(tuple(f["pmids"]) for f in raw["folds"])
            out = cls(raw["corpus"], int(raw["k"]), int(raw["seed"]), folds, groups, raw["corpus_hash"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"not a folds file written by `ade-distill data folds`: {err}", path=p) from None
        if raw.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"format_version {raw.get('format_version')!r} is not {FORMAT_VERSION}; regenerate it with "
                f"`ade-distill data folds`",
                path=p,
            )
        if len(out.folds) != out.k:
            raise DataError(f"declares k={out.k} but holds {len(out.folds)} folds", path=p)
        for what, parts in (("example id", out.folds), ("PubMed ID", out.groups)):
            seen: set[str] = set()
            for j, ids in enumerate(parts):
                for i in ids:
                    if not isinstance(i, str):
                        raise DataError(f"fold {j}: {what} {i!r} is not a string", path=p)
                    if i in seen:
                        raise DataError(f"{what} {i!r} is in two folds (or twice in fold {j})", path=p)
                    seen.add(i)
        return out


def corpus_hash(examples: Sequence[Example]) -> str:
    """A short content hash of (id, text) pairs, to detect folds used with a different corpus."""
    h = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: e.id):
        h.update(ex.id.encode())
        h.update(b"\0")
        h.update(ex.text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def make_folds(examples: Sequence[Example], k: int, seed: int, corpus: str) -> Folds:
    """Assign examples to ``k`` folds grouped by PubMed ID (``meta.pmid``, else ``meta.doc_id``, else id).

    Raises:
        ConfigError: ``k < 2`` or fewer documents than folds.
        DataError: two examples share an id.
    """
    if k < 2:
        raise ConfigError(f"k must be at least 2, got {k}")
    by_group: dict[str, list[Example]] = defaultdict(list)
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise DataError("duplicate example id: folds are lists of ids, so ids must be unique",
                            record_id=ex.id)
        seen.add(ex.id)
        by_group[ex.document_id()].append(ex)
    if len(by_group) < k:
        raise ConfigError(f"cannot make {k} folds from {len(by_group)} documents")
    names = sorted(by_group)
    random.Random(seed).shuffle(names)
    scored = {g: sum(1 for e in by_group[g] if e.relations) for g in names}
    names.sort(key=lambda g: (-scored[g], -len(by_group[g])))  # stable: ties keep the seeded order
    load_rel = [0] * k
    load_all = [0] * k
    members: list[list[str]] = [[] for _ in range(k)]
    for g in names:
        if scored[g]:
            j = min(range(k), key=lambda i: (load_rel[i], load_all[i], i))
        else:  # documents without relations balance the total size
            j = min(range(k), key=lambda i: (load_all[i], load_rel[i], i))
        members[j].append(g)
        load_rel[j] += scored[g]
        load_all[j] += len(by_group[g])
    folds = []
    groups = []
    for j in range(k):
        gs = sorted(members[j])
        groups.append(tuple(gs))
        folds.append(tuple(sorted(e.id for g in gs for e in by_group[g])))
    return Folds(corpus, k, seed, tuple(folds), tuple(groups), corpus_hash(examples))


def check_folds(folds: Folds, examples: Sequence[Example], path: str | Path | None = None) -> None:
    """Raise :class:`DataError` unless the folds cover exactly these examples (same corpus hash)."""
    if folds.corpus_hash != corpus_hash(examples):
        raise DataError(
            "the folds file was made for a different corpus (hash mismatch); regenerate it with "
            "`ade-distill data folds`",
            path=path,
        )
