"""Real download code for users online (`ade-distill data download`). Never run by the test suite.

Sources:
* ADE corpus v2 raw files — the copy distributed with Gurulingappa et al. (GitHub mirror);
* BC5CDR — the BioCreative V CDR corpus archive;
* unlabeled PubMed — one MEDLINE baseline file from NCBI;
* the Hugging Face ``ade_corpus_v2`` data set — through ``datasets`` (cached by HF).
"""

from __future__ import annotations

import io
import logging
import shutil
import urllib.request
import zipfile
from pathlib import Path

from ade_distill.errors import ConfigError

log = logging.getLogger(__name__)

ADE_BASE = "https://raw.githubusercontent.com/trunghlt/AdverseDrugReaction/master/ADE-Corpus-V2/"
ADE_FILES = ("DRUG-AE.rel", "DRUG-DOSE.rel", "ADE-NEG.txt")
CDR_ZIP = "https://biocreative.bioinformatics.udel.edu/media/store/files/2016/CDR_Data.zip"
MEDLINE_FILE = "https://ftp.ncbi.nlm.nih.gov/pubmed/baseline/pubmed25n0001.xml.gz"
WHAT = ("ade", "cdr", "medline", "hf-ade")


def _fetch(url: str, timeout: float = 120.0) -> bytes:
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs
        return resp.read()


def download(out: Path, what: list[str]) -> list[Path]:
    """Download the named sets into ``out`` (the layout `ADE_DISTILL_DATA` expects). Returns written paths."""
    unknown = sorted(set(what) - set(WHAT))
    if unknown:
        raise ConfigError(f"unknown data set(s) {unknown}; choose from {list(WHAT)}")
    written: list[Path] = []
    if "ade" in what:
        d = out / "ade_corpus_v2"
        d.mkdir(parents=True, exist_ok=True)
        for name in ADE_FILES:
            (d / name).write_bytes(_fetch(ADE_BASE + name))
            written.append(d / name)
    if "cdr" in what:
        d = out / "bc5cdr"
        d.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(_fetch(CDR_ZIP))) as zf:
            for info in zf.infolist():
                name = Path(info.filename).name
                if name.endswith(".PubTator.txt") and name.startswith("CDR_"):
                    with zf.open(info) as src, (d / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    written.append(d / name)
    if "medline" in what:
        d = out / "pubmed_unlabeled"
        d.mkdir(parents=True, exist_ok=True)
        target = d / Path(MEDLINE_FILE).name
        target.write_bytes(_fetch(MEDLINE_FILE))
        written.append(target)
    if "hf-ade" in what:
        from ade_distill.data.hf import load_hf_ade
        from ade_distill.records import write_examples

        target = out / "ade_corpus_v2_hf.jsonl"
        write_examples(target, load_hf_ade())
        written.append(target)
    return written
