"""Reproduction config validation and fold aggregation (hand-computed numbers)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ade_distill.errors import ConfigError
from ade_distill.experiments.config import load_config
from ade_distill.reports.aggregate import fold_means, paired_t, pooled_paired, t_interval

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.name == name.removesuffix(".yaml")
    for t in cfg.teachers:
        assert "${" not in t.spec


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nteachers: [{name: t, spec: 'replay:f'}]\nfolds: {k: 1}\n")
    with pytest.raises(ConfigError, match=r"folds\.k"):
        load_config(p)
    p.write_text("name: x\nteachers: [{name: t, spec: 'replay:f'}]\nstudnet: {}\n")
    with pytest.raises(ConfigError, match="studnet"):
        load_config(p)
    p.write_text("name: x\nteachers: [{name: a, spec: s}, {name: b, spec: s}]\n")
    with pytest.raises(ConfigError, match="vote"):
        load_config(p)


def test_t_interval_hand_computed() -> None:
    mean, sd, lo, hi = t_interval([0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.7) and sd == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, df=2)
    assert (lo, hi) == (pytest.approx(0.7 - half), pytest.approx(0.7 + half))


def test_paired_t() -> None:
    r = paired_t([0.8, 0.7, 0.9], [0.7, 0.6, 0.8])  # constant difference 0.1
    assert r["delta_mean"] == pytest.approx(0.1) and r["p_value"] == 0.0 and r["n_folds"] == 3
    r = paired_t([0.5, 0.6], [0.5, 0.6])
    assert r["delta_mean"] == 0.0 and r["p_value"] == 1.0


def _scores(f1s: dict[str, float]) -> dict:
    return {"results": {s: {"strict": {"relation": {"micro": {"precision": f, "recall": f, "f1": f}}}}
                        for s, f in f1s.items()}}


def test_fold_means_and_pooled_paired_sign() -> None:
    fm = fold_means([_scores({"a": 0.5, "b": 0.4}), _scores({"a": 0.7, "b": 0.6})], ["a", "b"], ["strict"])
    assert fm["a"]["strict"]["f1"] == pytest.approx(0.6) and fm["a"]["strict"]["per_fold_f1"] == [0.5, 0.7]
    pooled = {"paired": [{"system_a": "b", "system_b": "a", "mode": "strict", "level": "relation",
                          "delta_f1": -0.1, "ci_low": -0.2, "ci_high": -0.05, "p_value": 0.01}]}
    out = pooled_paired(pooled, "a", "b")["strict"]
    assert out == {"delta_f1": 0.1, "ci_low": 0.05, "ci_high": 0.2, "p_value": 0.01}


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "beat_the_teacher").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_lever_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == "btt_" + path.stem
    assert cfg.report_dir == "reports/beat_the_teacher/levers"
