"""Progress of long commands where no progress bar is drawn (CI, nohup, a notebook's subprocess): when stdout is
not a terminal, `train` / `reproduce` / `adapt-encoder` log a line every 5% of the steps and one per epoch."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import PROGRESS_LOGGERS, _root, app
from ade_distill.records import Example, write_examples


@pytest.fixture
def progress_levels() -> Iterator[None]:
    """Reset the progress loggers' levels around a test (the CLI callback sets them process-wide)."""
    loggers = [logging.getLogger(n) for n in PROGRESS_LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.NOTSET)
    yield
    for lg, level in zip(loggers, before, strict=True):
        lg.setLevel(level)


def test_progress_loggers_are_turned_on_only_without_a_terminal(progress_levels, monkeypatch) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    _root(verbose=False)
    assert all(logging.getLogger(n).getEffectiveLevel() > logging.INFO for n in PROGRESS_LOGGERS)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    _root(verbose=False)
    assert all(logging.getLogger(n).level == logging.INFO for n in PROGRESS_LOGGERS)
    assert set(PROGRESS_LOGGERS) == {"ade_distill.student.train", "ade_distill.student.adapt",
                                     "ade_distill.student.compress"}


def test_non_interactive_train_logs_every_five_percent_and_each_epoch(
        progress_levels, tmp_path: Path, ade_positive: list[Example], caplog: pytest.LogCaptureFixture) -> None:
    train = tmp_path / "train.jsonl"
    write_examples(train, [e for e in ade_positive if len(e.text) < 140][:20])
    # CliRunner's stdout is not a terminal: the non-interactive path
    res = CliRunner().invoke(app, ["train", "--train", str(train), "--epochs", "2", "--batch-size", "1",
                                   "--max-length", "48", "--threads", "2", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    msgs = [r.getMessage() for r in caplog.records if r.name == "ade_distill.student.train"]
    steps = [m for m in msgs if re.match(r"epoch \d step \d+/40 \(\d+%\)", m)]
    assert len(steps) == 20 and steps[0].startswith("epoch 1 step 2/40 (5%)") and "step 40/40 (100%)" in steps[-1]
    assert [m.split(":")[0] for m in msgs if re.match(r"epoch \d: loss", m)] == ["epoch 1", "epoch 2"]
