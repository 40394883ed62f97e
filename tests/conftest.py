"""Shared fixtures. The real corpora come from ../shared/data (or $ADE_DISTILL_DATA); tests that need them fail
loudly if the folder is missing, because CI always has it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ade_distill.paths import data_dir
from ade_distill.records import Example

# Keep torch/tokenizers to the machine's two cores and never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_net = pytest.mark.skip(reason="needs the internet (run with ADE_DISTILL_NETWORK_TESTS=1)")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    run_net = os.environ.get("ADE_DISTILL_NETWORK_TESTS") == "1"
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_gpu = False
    for item in items:
        if "network" in item.keywords and not run_net:
            item.add_marker(skip_net)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return data_dir()


@pytest.fixture(scope="session")
def ade_gold(data_root: Path) -> list[Example]:
    """ADE corpus v2: 4,272 positive examples then 16,688 ADE-NEG examples (read once per session)."""
    from ade_distill.data.ade_corpus import read_ade_corpus

    return read_ade_corpus(data_root / "ade_corpus_v2")


@pytest.fixture(scope="session")
def ade_positive(ade_gold: list[Example]) -> list[Example]:
    return [e for e in ade_gold if e.relations]


@pytest.fixture(scope="session")
def ade_first_pmids(ade_gold: list[Example]) -> Callable[[int], list[Example]]:
    """``f(n)``: the examples of the first ``n`` PubMed IDs that have relations (positives and their negatives),
    for tiny end-to-end runs on real data."""

    def subset(n_pmids: int) -> list[Example]:
        pmids: list[str] = []
        for e in ade_gold:
            if e.relations and e.meta["pmid"] not in pmids:
                pmids.append(e.meta["pmid"])
            if len(pmids) == n_pmids:
                break
        keep = set(pmids)
        return [e for e in ade_gold if e.meta["pmid"] in keep]

    return subset


@pytest.fixture(scope="session")
def teacher_outputs_dir(data_root: Path) -> Path:
    return data_root / "teacher_outputs"


TINY_STUDENT = {"encoder": "minilm", "epochs": 1, "batch_size": 8, "max_length": 64, "lr": 1e-4, "head_lr": 1e-3,
                "patience": 0, "threads": 2}


@pytest.fixture
def tiny_config(tmp_path: Path, ade_first_pmids: Callable[[int], list[Example]]) -> Callable[..., Path]:
    """``f(config, **updates)``: a copy of a shipped reproduction config for a tiny real run — the gold of the
    first 8 PubMed IDs, 2 folds, one short MiniLM epoch, 20 bootstrap samples, runs and reports under tmp_path —
    with ``updates`` applied on top; returns the path of the YAML written."""
    import yaml

    from ade_distill.records import write_examples

    root = Path(__file__).resolve().parents[1]

    def make(config: str, **updates: object) -> Path:
        gold_path = tmp_path / "gold.jsonl"
        write_examples(gold_path, ade_first_pmids(8))
        raw = yaml.safe_load((root / config).read_text())
        raw.update({"corpus": str(gold_path), "folds": {"k": 2, "seed": 13}, "runs_dir": str(tmp_path / "runs"),
                    "report_dir": str(tmp_path / "reports"), "student": dict(TINY_STUDENT), **updates})
        raw["scoring"]["n_boot"] = 20
        out = tmp_path / "tiny.yaml"
        out.write_text(yaml.safe_dump(raw))
        return out

    return make
