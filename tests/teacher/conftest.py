"""Fixtures of the teacher tests: the ADE task, recorded GPT-4 responses, and small input sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ade_distill.records import Example
from ade_distill.tasks.spec import TaskSpec, load_task


@pytest.fixture(scope="session")
def ade_task() -> TaskSpec:
    return load_task("ade")


@pytest.fixture(scope="session")
def json_recordings_path(teacher_outputs_dir: Path) -> Path:
    return teacher_outputs_dir / "ade_gpt-4-1106-preview_json.jsonl"


@pytest.fixture(scope="session")
def json_recordings(json_recordings_path: Path) -> dict[str, dict]:
    from ade_distill.teacher.backends.replay import load_recordings

    return load_recordings(json_recordings_path)[0]


@pytest.fixture(scope="session")
def sample_inputs(ade_positive: list[Example]) -> list[Example]:
    """The first 40 distinct ADE sentences as unlabeled inputs (gold spans removed)."""
    out, seen = [], set()
    for ex in ade_positive:
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(Example(id=ex.id, text=ex.text, meta={"pmid": ex.meta.get("pmid")}))
        if len(out) == 40:
            break
    return out


def write_inputs(path: Path, examples: list[Example]) -> Path:
    from ade_distill.records import write_examples

    write_examples(path, examples)
    return path
