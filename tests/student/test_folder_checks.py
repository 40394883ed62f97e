"""Issue 15: a student folder is verified when loaded — a missing tokenizer, a 0-byte or truncated
``model.safetensors`` or a missing ``config.json`` is an error naming the file, never garbage or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ade_distill.errors import ConfigError, DataError
from ade_distill.student.model import StudentExtractor


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory, ade_task) -> Path:
    """An untrained student folder (fresh heads on MiniLM): every file a trained one has."""
    from ade_distill.student.model import StudentConfig

    model = StudentExtractor.from_encoder(ade_task, StudentConfig(encoder="minilm", max_length=32), seed=0)
    return model.save_pretrained(tmp_path_factory.mktemp("student") / "model")


def _copy(src: Path, dst: Path) -> Path:
    """A copy made of hard links (cheap); the mutations below replace a file, never write into it."""
    dst.mkdir()
    for f in src.iterdir():
        os.link(f, dst / f.name)
    return dst


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _no_tokenizer(d: Path) -> None:
    for name in ("tokenizer.json", "vocab.txt"):
        (d / name).unlink(missing_ok=True)


def _empty_weights(d: Path) -> None:
    _replace(d / "model.safetensors", b"")


def _truncated_weights(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    _replace(d / "model.safetensors", data[: len(data) - 1000])


def _no_config(d: Path) -> None:
    (d / "config.json").unlink()


CASES: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "no_tokenizer": (_no_tokenizer, ConfigError, "tokenizer"),
    "empty_weights": (_empty_weights, DataError, "model.safetensors: truncated or corrupt"),
    "truncated_weights": (_truncated_weights, DataError, "model.safetensors: truncated or corrupt"),
    "no_config": (_no_config, ConfigError, "missing config.json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_student_folder_is_a_clear_error(case, student_dir, tmp_path):
    mutate, error, message = CASES[case]
    broken = _copy(student_dir, tmp_path / case)
    mutate(broken)
    with pytest.raises(error, match=message):
        StudentExtractor.from_pretrained(broken)


def test_intact_folder_loads_with_its_vocabulary(student_dir):
    model = StudentExtractor.from_pretrained(student_dir)
    assert len(model.tokenizer) == model.module.encoder.config.vocab_size


@pytest.mark.parametrize("case", ["no_tokenizer", "truncated_weights"])
def test_predict_cli_reports_a_broken_folder_without_traceback(case, student_dir, tmp_path):
    broken = _copy(student_dir, tmp_path / case)
    CASES[case][0](broken)
    inp = tmp_path / "in.txt"
    inp.write_text("Cough after enalapril.\n")
    p = subprocess.run([sys.executable, "-m", "ade_distill", "predict", "--model", str(broken), "--input", str(inp),
                        "--out", str(tmp_path / "preds.jsonl")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and str(broken) in p.stderr.replace("\n", "")
    assert not (tmp_path / "preds.jsonl").exists()
