"""Training is resumable: a run killed after an epoch and started again continues from its checkpoint and saves
exactly the model the uninterrupted run saves; a checkpoint of other options or data is not resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ade_distill.records import Example
from ade_distill.student import train as train_mod
from ade_distill.student.train import TrainConfig, train_student

pytestmark = pytest.mark.slow

CFG = dict(epochs=3, batch_size=4, lr=2e-4, head_lr=5e-3, max_length=64, patience=100, dropout=0.1, seed=5)


class Killed(Exception):
    """Stands for the process being killed mid-epoch."""


def _kill_in_epoch(monkeypatch: pytest.MonkeyPatch, when: int) -> None:
    real = train_mod._TrainingRun._epoch

    def epoch(self, n: int, feats):  # type: ignore[no-untyped-def]
        if n == when:
            raise Killed
        return real(self, n, feats)

    monkeypatch.setattr(train_mod._TrainingRun, "_epoch", epoch)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _history(folder: Path) -> list[dict]:
    hist = json.loads((folder / "metrics.json").read_text())["history"]
    return [{k: v for k, v in h.items() if "second" not in k and k != "peak_rss_mb"} for h in hist]


def test_a_killed_run_resumes_to_the_same_model(ade_task, tiny_train: list[Example], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dev the saved weights are the last epoch's: equal only if weights, optimizer, schedule and the
    random generators (dropout) all continue where the killed run left them."""
    cfg = TrainConfig.build(**CFG)
    whole = train_student(ade_task, tiny_train, None, cfg, tmp_path / "whole")

    out = tmp_path / "resumed"
    ckpt = out.parent / f".{out.name}.checkpoint.pt"
    with monkeypatch.context() as m:
        _kill_in_epoch(m, 3)
        with pytest.raises(Killed):
            train_student(ade_task, tiny_train, None, cfg, out)
    assert ckpt.is_file() and not out.exists()  # two epochs kept, no half model
    assert not list(tmp_path.glob("*.tmp"))
    resumed = train_student(ade_task, tiny_train, None, cfg, out)
    assert not ckpt.exists()  # removed once the model is saved

    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert _history(whole) == _history(resumed)
    log = [json.loads(line) for line in (resumed / "training_log.jsonl").read_text().splitlines()]
    assert [e for e in log if e["event"] == "resumed"] == [{"event": "resumed", "after_epoch": 2, "step": 10}]
    assert json.loads((resumed / "metrics.json").read_text())["earlier_attempts_seconds"] > 0
    assert json.loads((whole / "metrics.json").read_text())["earlier_attempts_seconds"] == 0


def test_a_run_killed_after_early_stopping_saves_the_same_best_model(ade_task, tiny_train: list[Example],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after training stopped but before the model was saved: the rerun trains no further epoch and saves
    the same best-dev weights, with the same dev history and early-stopping point."""
    train, dev = tiny_train[:16], tiny_train[16:]
    cfg = TrainConfig.build(**{**CFG, "epochs": 6, "patience": 0})
    whole = train_student(ade_task, train, dev, cfg, tmp_path / "whole")
    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        def finish(self):  # type: ignore[no-untyped-def]
            raise Killed
        m.setattr(train_mod._TrainingRun, "finish", finish)
        with pytest.raises(Killed):
            train_student(ade_task, train, dev, cfg, out)
    resumed = train_student(ade_task, train, dev, cfg, out)
    mw, mr = (json.loads((p / "metrics.json").read_text()) for p in (whole, resumed))
    assert mr["best_dev"] == mw["best_dev"] and mr["epochs_run"] == mw["epochs_run"] and mr["steps"] == mw["steps"]
    assert _history(whole) == _history(resumed)
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage_seconds_add_the_interrupted_attempts(tmp_path: Path) -> None:
    from ade_distill.experiments.stages import Stage

    stage = Stage(tmp_path / "s", "k")
    stage.start()
    stage.finish({}, earlier_seconds=125.0)
    assert 125.0 <= stage.seconds < 135.0


def test_a_checkpoint_of_other_options_is_not_resumed(ade_task, tiny_train: list[Example], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    train, dev = tiny_train[:16], tiny_train[16:]
    out = tmp_path / "m"
    with monkeypatch.context() as m:
        _kill_in_epoch(m, 2)
        with pytest.raises(Killed):
            train_student(ade_task, train, dev, TrainConfig.build(**CFG), out)
    other = TrainConfig.build(**{**CFG, "epochs": 1, "lr": 1e-4})
    with caplog.at_level("WARNING", logger="ade_distill.student.train"):
        train_student(ade_task, train, dev, other, out)
    assert "written for other options or data" in caplog.text
    log = (out / "training_log.jsonl").read_text()
    assert '"resumed"' not in log
    (out.parent / f".{out.name}.checkpoint.pt").write_bytes(b"torn")  # an unreadable file: start over, say so
    caplog.clear()
    with caplog.at_level("WARNING", logger="ade_distill.student.train"):
        train_student(ade_task, train, dev, other, tmp_path / "m")
    assert "unreadable training checkpoint" in caplog.text
