"""Named gold corpora in the data folder, loaded as lists of examples in the common schema."""

from __future__ import annotations

from pathlib import Path

from ade_distill.data.ade_corpus import AdeReport, read_ade_corpus, read_drug_dose
from ade_distill.data.cdr import SPLIT_FILES, CdrReport, read_cdr
from ade_distill.errors import ConfigError
from ade_distill.paths import data_dir
from ade_distill.records import Example

CORPORA = ("ade", "ade-positive", "ade-dose", "cdr", "cdr-train", "cdr-dev", "cdr-test")


def load_corpus(
    name: str, root: str | Path | None = None, *, fmt: str | None = None, options: str | Path | None = None
) -> list[Example]:
    """Load a gold corpus by name.

    * ``ade`` — ADE corpus v2, sentences with relations and ADE-NEG sentences;
    * ``ade-positive`` — only the 4,272 sentences with relations;
    * ``ade-dose`` — the corpus' drug → dose relations (task ``drug_dose``) on its 4,272 adverse-effect sentences,
      where doses were annotated (213 with a dose relation, the rest negatives);
    * ``cdr`` — all three BC5CDR splits (``meta.split`` says which); ``cdr-train|dev|test`` — one split;
    * a path to a ``.jsonl`` file in the common schema, a BRAT folder or a BioC file — your own corpus, read by
      :func:`ade_distill.data.formats.read_records` (``fmt`` detected unless given; ``options``: a label map).
    """
    if name not in CORPORA and (name.endswith((".jsonl", ".jsonl.gz")) or Path(name).exists() or fmt):
        from ade_distill.data.formats import read_records

        return read_records(name, fmt, options=options)
    base = Path(root) if root is not None else data_dir()
    if name == "ade":
        return read_ade_corpus(base / "ade_corpus_v2")
    if name == "ade-positive":
        return read_ade_corpus(base / "ade_corpus_v2", include_negatives=False)
    if name == "ade-dose":
        return read_drug_dose(base / "ade_corpus_v2")
    if name == "cdr":
        return [ex for split in SPLIT_FILES for ex in read_cdr(base / "bc5cdr", split)]
    if name.startswith("cdr-") and name[4:] in SPLIT_FILES:
        return read_cdr(base / "bc5cdr", name[4:])
    raise ConfigError(f"unknown corpus {name!r}; expected one of {list(CORPORA)}, a .jsonl file, a BRAT folder "
                      "or a BioC file")


__all__ = ["CORPORA", "load_corpus", "AdeReport", "CdrReport"]
