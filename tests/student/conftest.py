"""Fixtures of the student tests: one tiny model trained once per session on 20 real ADE sentences."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec, load_task


def with_thresholds(src: Path, dest: Path, head: float, tail: float) -> Path:
    """A copy of a student folder that decodes with other thresholds: another ensemble member (or teacher), without
    training."""
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "student.json").read_text())
    cfg.update(head_threshold=head, tail_threshold=tail)
    (dest / "student.json").write_text(json.dumps(cfg))
    return dest


@pytest.fixture(scope="session", autouse=True)
def _two_threads() -> None:
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ade_task() -> TaskSpec:
    return load_task("ade")


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from ade_distill.student.encoders import resolve_encoder

    return AutoTokenizer.from_pretrained(resolve_encoder("minilm"))


@pytest.fixture(scope="session")
def tiny_train(ade_positive: list[Example]) -> list[Example]:
    """20 short positive sentences (every one fits in 64 sub-word tokens)."""
    return [e for e in ade_positive if len(e.text) < 140][:20]


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, ade_task: TaskSpec, tiny_train: list[Example]) -> Path:
    """A drug-conditioned MiniLM student over-fitted on ``tiny_train`` (dev = train)."""
    from ade_distill.student.train import TrainConfig, train_student

    cfg = TrainConfig.build(
        epochs=8, batch_size=4, lr=2e-4, head_lr=5e-3, max_length=64, patience=100, warmup_ratio=0.0, dropout=0.0,
        seed=7,
    )
    return train_student(ade_task, tiny_train, tiny_train, cfg, tmp_path_factory.mktemp("student") / "model")
