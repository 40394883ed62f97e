"""Checks of a student folder before and while it is loaded: every file present, readable and consistent.

Without them a folder that lost its tokenizer files still loads — ``AutoTokenizer`` silently builds a 5-token
vocabulary, every word becomes ``[UNK]`` and predictions are garbage — and a truncated ``model.safetensors`` or
a missing ``config.json`` ends in a library traceback. Each check raises one of the package's errors naming the
file and what is wrong: :class:`ConfigError` for a missing file, :class:`DataError` for a corrupt one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError, DataError

__all__ = ["check_student_folder", "load_weights", "load_tokenizer", "TOKENIZER_FILES"]

STUDENT_JSON, WEIGHTS, TASK_YAML, ENCODER_CONFIG = "student.json", "model.safetensors", "task.yaml", "config.json"
# The vocabulary of a tokenizer is in one of these (fast tokenizers: tokenizer.json; WordPiece: vocab.txt; BPE:
# vocab.json; SentencePiece: *.model).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
_REQUIRED = {STUDENT_JSON: "the student's settings", WEIGHTS: "the weights", ENCODER_CONFIG: "the encoder's "
             "configuration", TASK_YAML: "the task"}


def _missing(p: Path) -> list[str]:
    out = [f"{name} ({what})" for name, what in _REQUIRED.items() if not (p / name).is_file()]
    if not any((p / name).is_file() for name in TOKENIZER_FILES):
        out.append(f"the tokenizer's vocabulary (one of {', '.join(TOKENIZER_FILES)})")
    return out


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"corrupt file, not valid JSON ({err})", path=path) from None


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # SafetensorError: empty, truncated or not a safetensors file at all
        raise DataError(f"truncated or corrupt safetensors file, {path.stat().st_size:,} bytes ({err}); copy the "
                        "folder again or retrain", path=path) from None


def _check_settings(path: Path) -> None:
    from pydantic import ValidationError

    from ade_distill.student.model import StudentConfig

    try:
        StudentConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise DataError(f"invalid student settings ({problems})", path=path) from None


def check_student_folder(path: Path) -> None:
    """Raise unless ``path`` holds every file of a student folder, its JSON files parse, its settings validate
    and its weights file is a complete safetensors file (header and data)."""
    if not path.is_dir():
        raise ConfigError(f"{path} is not a student folder (no such folder); give the --out of ade-distill train")
    missing = _missing(path)
    if missing:
        raise ConfigError(f"{path} is not a complete student folder: missing {'; '.join(missing)}. Copy the whole "
                          "folder written by ade-distill train, or retrain")
    for name in (STUDENT_JSON, ENCODER_CONFIG, "tokenizer.json", "tokenizer_config.json"):
        if (path / name).is_file():
            _check_json(path / name)
    _check_settings(path / STUDENT_JSON)
    _check_safetensors(path / WEIGHTS)


def load_weights(module: Any, path: Path) -> None:
    """Load ``path/model.safetensors`` into ``module`` strictly; weights of another architecture are a
    :class:`DataError` naming the file."""
    from safetensors.torch import load_model

    try:
        load_model(module, str(path / WEIGHTS), strict=True, device="cpu")
    except RuntimeError as err:
        raise DataError(f"weights do not fit the model described by {STUDENT_JSON} and {ENCODER_CONFIG} "
                        f"({' '.join(str(err).split())[:400]})", path=path / WEIGHTS) from None


def load_tokenizer(path: Path, vocab_size: int) -> Any:
    """The folder's tokenizer, checked against the encoder's embedding table (``vocab_size`` rows)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot load the tokenizer ({err})", path=path) from None
    if len(tokenizer) > vocab_size:
        raise DataError(f"the tokenizer has {len(tokenizer):,} tokens but the encoder only {vocab_size:,} embeddings: "
                        "tokenizer and weights come from different models", path=path)
    return tokenizer
