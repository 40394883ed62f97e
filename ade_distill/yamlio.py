"""Reading YAML mapping files (configs, price tables) with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ade_distill.errors import ConfigError


def read_yaml_mapping(path: Path, *, not_found: str, not_mapping: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is ``{}``).

    Raises:
        ConfigError: ``not_found`` if the file is missing; ``PATH: not valid YAML: ...``; ``PATH: not_mapping``.
    """
    if not path.is_file():
        raise ConfigError(not_found)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {not_mapping}")
    return raw
