"""The accuracy guard of int8 models, shared by the ONNX export (:mod:`ade_distill.student.onnx_export`) and torch's
dynamic int8 (:mod:`ade_distill.student.quantize`).

A check set is predicted by the float model and by its int8 version. Two losses are measured, in relation F1
points, strict and lenient: against the float model's predictions as reference (``100 × (1 − F1(int8 | fp32))``:
how much of its output changed) and, for a labelled check set, against its labels (``F1(fp32) − F1(int8)``: what
users lose). The guard's reference is the labels when the check set has them, else the fp32 predictions; when the
larger of the strict and lenient losses exceeds ``max_f1_loss`` (default 0.5) the int8 model is refused with
:class:`AccuracyGuardError`, whose message says the measured loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.records import Example

DEFAULT_MAX_F1_LOSS = 0.5
GUARD_MODES = ("strict", "lenient")
GUARD_REFERENCES = ("gold", "fp32")


class AccuracyGuardError(ConfigError):
    """The int8 model lost more relation F1 than allowed; ``report`` holds the measurement."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _relation_counts(ref: Sequence[Example], pred: Sequence[Example], mode: str) -> tuple[int, int, int]:
    from ade_distill.evaluation.metrics import count_matrix, pair_by_id

    aligned = pair_by_id(ref, pred)
    tp, fp, fn = (int(x) for x in count_matrix(ref, aligned, mode, "relation").micro.sum(axis=0))
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int, *, empty: float) -> float:
    return 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else empty


def measure_loss(check: Sequence[Example], fp32: Sequence[Example], int8: Sequence[Example], *,
                 labelled: bool) -> dict[str, Any]:
    """Relation F1 (points) of int8 against fp32 (two empty outputs agree: 100) and, when ``labelled``, of both
    against the check set's labels; the losses per mode (see the module docstring)."""
    out: dict[str, Any] = {"agreement_f1": {}, "loss_vs_fp32": {}}
    if labelled:
        out.update({"fp32_f1": {}, "int8_f1": {}, "loss_vs_gold": {}})
    for mode in GUARD_MODES:
        agree = _f1(*_relation_counts(fp32, int8, mode), empty=100.0)
        out["agreement_f1"][mode] = round(agree, 2)
        out["loss_vs_fp32"][mode] = round(100.0 - agree, 2)
        if labelled:
            f_fp32 = _f1(*_relation_counts(check, fp32, mode), empty=0.0)
            f_int8 = _f1(*_relation_counts(check, int8, mode), empty=0.0)
            out["fp32_f1"][mode], out["int8_f1"][mode] = round(f_fp32, 2), round(f_int8, 2)
            out["loss_vs_gold"][mode] = round(f_fp32 - f_int8, 2)
    return out


def default_check_set(folder: Path) -> tuple[list[Example], str]:
    """The student's own dev file (``provenance.dev_file``) when it still exists unchanged.

    Raises:
        ConfigError: the student names no dev file, or it is gone or changed since training.
    """
    from ade_distill.hashing import path_sha256
    from ade_distill.student.config import StudentConfig
    from ade_distill.student.folder import STUDENT_JSON, TASK_YAML
    from ade_distill.student.train import read_training_file
    from ade_distill.tasks.spec import load_task

    prov = StudentConfig.model_validate_json((folder / STUDENT_JSON).read_text(encoding="utf-8")).provenance
    dev = prov.get("dev_file")
    hint = "give a held-out labelled check set with --check-gold FILE (records JSONL)"
    if not dev:
        raise ConfigError(f"the int8 accuracy guard needs a check set and the student saved no dev file: {hint}")
    path = Path(dev)
    if not path.exists() or (prov.get("dev_sha256") and path_sha256(path) != prov["dev_sha256"]):
        raise ConfigError(f"the student's dev file {path} is gone or changed since training: {hint}")
    return read_training_file(path, load_task(folder / TASK_YAML)), str(path)


def check_guard_options(check: Sequence[Example], *, check_source: str, labelled: bool, reference: str | None,
                        max_f1_loss: float) -> str:
    """The guard's reference (``gold`` or ``fp32``) after checking its options.

    Raises:
        ConfigError: a negative ``max_f1_loss``, an empty check set, or a reference that does not fit it.
    """
    if max_f1_loss < 0:
        raise ConfigError(f"max_f1_loss must be >= 0 (F1 points), got {max_f1_loss}")
    if not check:
        raise ConfigError(f"the int8 check set {check_source} is empty")
    ref = reference or ("gold" if labelled else "fp32")
    if ref not in GUARD_REFERENCES or (ref == "gold" and not labelled):
        raise ConfigError(f"reference must be 'fp32' or, for a labelled check set, 'gold'; got {ref!r}")
    return ref


def judge(check: Sequence[Example], fp32: Sequence[Example], int8: Sequence[Example], *, labelled: bool,
          reference: str, max_f1_loss: float, check_source: str) -> dict[str, Any]:
    """The guard's verdict: :func:`measure_loss` plus ``reference``, ``loss`` (the larger of strict and lenient),
    ``accepted`` and a one-line ``message`` with the measurement."""
    measured = measure_loss(check, fp32, int8, labelled=labelled)
    losses = measured["loss_vs_gold" if reference == "gold" else "loss_vs_fp32"]
    loss = max(losses.values())
    message = (f"relation F1 loss against {'the check labels' if reference == 'gold' else 'the fp32 predictions'} "
               f"{losses['strict']:.2f} strict / {losses['lenient']:.2f} lenient points on {len(check)} "
               f"examples of {check_source} (agreement with fp32: {measured['agreement_f1']['strict']:.2f} "
               f"strict / {measured['agreement_f1']['lenient']:.2f} lenient)")
    return {"check_set": check_source, "check_examples": len(check), "reference": reference,
            "max_f1_loss": max_f1_loss, "loss": loss, "accepted": loss <= max_f1_loss, **measured,
            "message": message}
