"""Threshold calibration on the (silver) dev set: picks the grid point with the best dev F1, restores the config."""

from __future__ import annotations

from ade_distill.records import Example, Relation, Span
from ade_distill.student.model import StudentConfig
from ade_distill.student.train import THRESHOLD_GRID, TrainConfig, calibrate_thresholds


def _gold() -> list[Example]:
    text = "Aspirin caused rash."
    spans = (Span(id="T1", label="DRUG", start=0, end=7, text="Aspirin"),
             Span(id="T2", label="ADE", start=15, end=19, text="rash"))
    return [Example(id="e1", text=text, spans=spans, relations=(Relation(head="T1", tail="T2", label="ADE"),))]


class FakeStudent:
    """Predicts the gold relation only at the thresholds in ``good``; records the configs it was asked with."""

    def __init__(self, good: set[tuple[float, float]]) -> None:
        self.config = StudentConfig(encoder="x")
        self.good = good
        self.seen: list[tuple[float, float]] = []

    def predict(self, dev: list[Example], batch_size: int = 64) -> list[Example]:
        key = (self.config.head_threshold, self.config.tail_threshold)
        self.seen.append(key)
        return [e if key in self.good else Example(id=e.id, text=e.text) for e in dev]


def test_calibration_picks_the_best_grid_point_and_restores_the_config() -> None:
    st = FakeStudent({(0.6, 0.4)})
    out = calibrate_thresholds(st, _gold())
    assert (out["head_threshold"], out["tail_threshold"]) == (0.6, 0.4)
    assert out["dev_f1"] == 1.0 and out["dev_f1_before"] == 0.0
    assert len(out["grid"]) == len(THRESHOLD_GRID) ** 2 == len(st.seen)
    assert (st.config.head_threshold, st.config.tail_threshold) == (0.5, 0.5)  # restored


def test_calibration_ties_keep_the_pair_closest_to_the_defaults() -> None:
    st = FakeStudent({(0.3, 0.3), (0.5, 0.5), (0.7, 0.7)})
    out = calibrate_thresholds(st, _gold())
    assert (out["head_threshold"], out["tail_threshold"]) == (0.5, 0.5)
    st = FakeStudent({(0.3, 0.3), (0.6, 0.5)})
    out = calibrate_thresholds(st, _gold())
    assert (out["head_threshold"], out["tail_threshold"]) == (0.6, 0.5)


def test_calibration_is_off_by_default_and_out_of_stage_keys() -> None:
    from ade_distill.experiments.reproduce import train_key_dict

    assert TrainConfig().calibrate_thresholds is False
    assert "calibrate_thresholds" not in train_key_dict(TrainConfig())
    assert train_key_dict(TrainConfig(calibrate_thresholds=True))["calibrate_thresholds"] is True
