"""Fixtures for the data-layer tests: the tiny real-format files and the real BC5CDR splits (read once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ade_distill.records import Example

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def cdr_real(data_root: Path) -> dict[str, tuple[list[Example], dict[str, object]]]:
    """Each BC5CDR split as (examples, report dict)."""
    from ade_distill.data.cdr import CdrReport, read_cdr

    out = {}
    for split in ("train", "dev", "test"):
        rep = CdrReport()
        out[split] = (read_cdr(data_root / "bc5cdr", split, rep), rep.as_dict())
    return out
