"""Where the data lives.

``ADE_DISTILL_DATA`` names the data folder. Without it, ``../shared/data`` next to the project checkout
(or next to the current directory) is used when it exists — the layout of the development machines and CI.
"""

from __future__ import annotations

import os
from pathlib import Path

from ade_distill.errors import ConfigError

ENV_VAR = "ADE_DISTILL_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _candidates() -> list[Path]:
    return [_PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]


def data_dir(required: bool = True) -> Path:
    """Return the data folder.

    Raises:
        ConfigError: if ``required`` and neither ``$ADE_DISTILL_DATA`` nor a ``../shared/data`` folder exists.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(f"${ENV_VAR}={env!r} is not a folder; point it at the data folder.")
        return path
    for cand in _candidates():
        if cand.is_dir():
            return cand
    if required:
        raise ConfigError(
            f"No data folder found. Set ${ENV_VAR} to the data folder, or run `ade-distill data download "
            f"--out DIR` and set ${ENV_VAR}=DIR. Looked in: {', '.join(str(c) for c in _candidates())}"
        )
    return _candidates()[0]


def project_root() -> Path:
    return _PROJECT_ROOT
