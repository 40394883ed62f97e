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


class FakePairStudent:
    """A pair classifier predicting two relations with fixed probabilities, gold holding only the first."""

    def __init__(self) -> None:
        from ade_distill.tasks.spec import load_task

        self.config = StudentConfig(encoder="x", architecture="pair_classifier")
        self.task = load_task("cdr")
        self.thresholds: list[float] = []

    def predict(self, dev: list[Example], batch_size: int = 8) -> list[Example]:
        self.thresholds.append(self.config.relation_threshold)
        rels = tuple(r for r in (Relation(head="T1", tail="T2", label="CID", score=0.35),
                                 Relation(head="T1", tail="T3", label="CID", score=0.25))
                     if r.score >= self.config.relation_threshold)
        return [e.model_copy(update={"relations": rels}) for e in dev]


def test_pair_classifier_calibrates_its_relation_threshold_from_one_prediction() -> None:
    from ade_distill.student.train import RELATION_GRID, calibrate_relation_threshold

    text = "Cocaine caused seizures and asthma."
    spans = (Span(id="T1", label="CHEMICAL", start=0, end=7, text="Cocaine"),
             Span(id="T2", label="DISEASE", start=15, end=23, text="seizures"),
             Span(id="T3", label="DISEASE", start=28, end=34, text="asthma"))
    gold = [Example(id="d", text=text, spans=spans, relations=(Relation(head="T1", tail="T2", label="CID"),))]
    st = FakePairStudent()
    out = calibrate_relation_threshold(st, gold)
    # 0.3 keeps the true pair (0.35) and drops the false one (0.25); 0.5, the default, drops both
    assert out["relation_threshold"] == 0.3 and out["dev_f1"] == 1.0 and out["dev_f1_before"] == 0.0
    assert st.thresholds == [min(RELATION_GRID)] and st.config.relation_threshold == 0.5  # one pass, restored
    assert TrainConfig(architecture="pair_classifier", calibrate_thresholds=True).calibrate_thresholds
