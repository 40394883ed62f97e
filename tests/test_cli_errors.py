"""Package errors reach the terminal as one line, exactly as raised: rich markup must not eat bracketed text such as
an install hint's extra (`pip install 'ade-distill[mpnet]'`) or a path with brackets."""

from __future__ import annotations

import pytest

import ade_distill.cli as cli
from ade_distill.errors import ConfigError


def test_main_prints_the_error_with_its_brackets(monkeypatch, capsys) -> None:
    message = "encoder 'mpnet' needs the packages (pip install 'ade-distill[mpnet]'); see runs/[bold]x.jsonl"

    def boom() -> None:
        raise ConfigError(message)

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: {message}" in err
