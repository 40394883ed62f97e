"""torch int8 behind the accuracy guard.

``ade-distill quantize --model FOLDER`` applies torch's dynamic quantization to the student's encoder (int8
weights, one scale per output channel by default; activations quantized on the fly at each call; the task layers
stay in float), after smoothing the activations' outlier channels into the weights
(:mod:`ade_distill.student.smoothing`, calibrated on the check set's texts or ``--calibration``; query, key and
value share one division of their input, the attention output's is folded into the value projection, the
feed-forward output's divides the activation in place, and the float function is checked to be unchanged before
anything is measured). It predicts a
check set (default: the student's own dev file) in fp32 and in int8 and judges the loss with the guard of
:mod:`ade_distill.student.int8_guard` (default: at most 0.5 relation F1 points, strict and lenient). The verdict
goes to ``FOLDER/int8.json`` with the options and a sha256 of the weights and settings it measured (``model.
safetensors``, ``student.json``, ``task.yaml``), the smoothing scales and plan to
``FOLDER/int8_scales.safetensors``.

``--compile`` measures the compiled kernel instead (:mod:`ade_distill.student.int8_compiled`: one activation scale
per token, the int8 layers fused with the ops around them by ``torch.compile``, attention as plain ops with its
matmuls in bfloat16 by default, ``--attention``; closer to fp32 than the dynamic kernel); its verdict is recorded
with ``kernel: compiled`` and the attention, and a student loaded with ``quantize=True`` then compiles too.

With the default (``dynamic``) kernel, activations are quantized per call with one scale for the whole batch, so
int8 predictions depend a little on which texts share a batch: the verdict records the batch size it was measured
at (``--batch-size``, default 64, as ``predict``'s); on a compressed MiniLM student, smaller batches lost less.

Loading with ``quantize=True`` (``predict --quantize`` on the torch runtime, an ensemble's members, the spaCy
component) quantizes only a folder whose ``int8.json`` accepted these very weights, with the recorded options;
otherwise it is refused with the command that measures it. The ONNX runtime's int8 model has the same guard, run by
``ade-distill export-onnx --int8``.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ade_distill.errors import ConfigError
from ade_distill.records import Example, atomic_write_text
from ade_distill.student.int8_guard import (
    DEFAULT_MAX_F1_LOSS,
    AccuracyGuardError,
    check_guard_options,
    default_check_set,
    judge,
)

if TYPE_CHECKING:
    import torch

    from ade_distill.student.smoothing import Calibration, Smoothing, SmoothingPlan

log = logging.getLogger(__name__)

INT8_JSON = "int8.json"
INT8_SCALES = "int8_scales.safetensors"  # the smoothing scales the verdict measured
INT8_FORMAT = 1
COMPILED_ATTENTION = "bf16"  # the compiled kernel's default attention (Int8Options.attention)


class Int8Options(BaseModel):
    """How the encoder is quantized: ``per_channel`` weight scales (else one per matrix); ``float_ffn_output``
    keeps the feed-forward output projections (intermediate → hidden) in float: more accurate, slower;
    ``smooth_alpha`` migrates activation outliers into the weights first (:mod:`ade_distill.student.smoothing`;
    0: off). 0.9 was chosen on dev fold 9 (with one division per layer): over the compressed students of folds
    1-3, relation agreement with fp32 was 98.0 strict / 99.0 lenient, against 97.5 / 98.7 at 0.8 and 94.4 / 97.0
    unsmoothed (``benchmarks/int8_batch_loss.py``; reports/compression/bench/int8_alpha_fold9.txt). With the
    shared plan it was 97.7 / 98.8 (reports/compression/bench/int8_plan_fold9.txt).

    ``kernel``: ``"dynamic"`` (default) runs torch's eager dynamic quantization (fbgemm/onednn; one activation
    scale per batch); ``"compiled"`` writes the int8 layers as plain ops (:mod:`ade_distill.student.int8_compiled`:
    one activation scale per token, ``torch._int_mm``) and compiles the encoder pass with ``torch.compile``, which
    fuses the quantization steps with the ops around them (needs a C++ compiler; always per-channel weights).

    ``attention`` (the compiled kernel only; :func:`~ade_distill.student.int8_compiled.set_attention`): ``"model"``
    keeps the encoder's own attention (PyTorch's fused call), ``"eager"`` runs transformers' plain-op attention,
    which inductor fuses, ``"bf16"`` the same with its two matmuls in bfloat16. The dynamic kernel keeps
    ``"model"``. The compiled kernel's default, ``"bf16"``, was chosen on dev fold 9: over the compressed students of
    folds 1-3, relation agreement with fp32 was 99.43 strict / 99.68 lenient, against 99.29 / 99.58 (``model``) and
    99.29 / 99.53 (``eager``; reports/compression/bench/int8_attention_fold9.txt); in one interleaved speed run on
    fold 9's student, ``eager`` and ``bf16`` predicted 1.17x and 1.20x the sentences/s of ``model``
    (reports/compression/bench/int8_layouts_attention_fold9_run1.txt)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_channel: bool = True
    float_ffn_output: bool = False
    smooth_alpha: float = Field(default=0.9, ge=0.0, le=1.0)  # the compiled kernel's default: 0.5 (below)
    kernel: Literal["dynamic", "compiled"] = "dynamic"
    attention: Literal["model", "eager", "bf16"] = "model"  # the compiled kernel's default: below

    @model_validator(mode="before")
    @classmethod
    def _default_alpha_of_the_kernel(cls, data: Any) -> Any:
        """Without ``smooth_alpha``: 0.9 for the dynamic kernel, 0.5 for the compiled one (chosen on dev fold 9:
        over the compressed students of folds 1-3, the compiled kernel agreed with fp32 at 99.29 strict / 99.58
        lenient relation F1 with alpha 0.5, against 98.82 / 99.51 at 0 and 98.52 / 99.06 at 0.9;
        reports/compression/bench/int8_kernel_fold9.txt)."""
        if isinstance(data, dict) and data.get("smooth_alpha") is None:
            data = {**data, "smooth_alpha": 0.5 if data.get("kernel") == "compiled" else 0.9}
        if isinstance(data, dict) and data.get("attention") is None:
            data = {**data, "attention": COMPILED_ATTENTION if data.get("kernel") == "compiled" else "model"}
        return data

    @model_validator(mode="after")
    def _options_fit_the_kernel(self) -> Int8Options:
        if self.kernel == "compiled" and not self.per_channel:
            raise ValueError("the compiled int8 kernel scales weights per channel: drop per_channel=False")
        if self.kernel == "dynamic" and self.attention != "model":
            raise ValueError(f"attention {self.attention!r} goes with the compiled int8 kernel (the dynamic one is not "
                             "compiled, so the encoder keeps its own attention): drop it or use kernel='compiled'")
        return self


def quantize_encoder(encoder: torch.nn.Module, options: Int8Options,
                     smoothing: Smoothing | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The encoder with its Linear layers in int8 (a new module; the argument is left as it was), smoothed first
    (:func:`~ade_distill.student.smoothing.apply_smoothing`) when ``smoothing`` is given, and the layout: the kernel,
    how many Linear layers are int8, how many were smoothed, with how many element-wise divisions and folds, and
    which stayed float. With ``options.kernel == "compiled"`` the encoder is meant to run under ``torch.compile``
    (:meth:`~ade_distill.student.model.StudentExtractor.quantize` compiles it)."""
    import copy

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    from ade_distill.student.smoothing import apply_smoothing, smoothable_linears

    if bool(options.smooth_alpha) != bool(smoothing and smoothing.scales):
        raise ConfigError("smoothing scales go with smooth_alpha > 0 (and smooth_alpha > 0 needs them: ade-distill "
                          "quantize computes them); give both, or smooth_alpha=0 without scales")
    work = copy.deepcopy(encoder)
    before = smoothable_linears(work)
    targets = {id(before[name]) for name in int8_linear_names(work, options)}
    if smoothing:
        apply_smoothing(work, smoothing)  # wraps layers (new names), the Linear objects stay
    qconfig = per_channel_dynamic_qconfig if options.per_channel else default_dynamic_qconfig
    after = smoothable_linears(work)
    spec = {name: qconfig for name, layer in after.items() if id(layer) in targets}
    kept_float = len(after) - len(spec)
    if options.kernel == "compiled":
        from ade_distill.student.int8_compiled import set_attention, to_compiled_int8

        to_compiled_int8(work, {name: after[name] for name in spec})
        attention = set_attention(work, options.attention)
        quantized = work
    else:
        attention = "model"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
            quantized = quantize_dynamic(work, spec, dtype=torch.qint8, inplace=True)
    plan = smoothing.plan if smoothing else None
    return quantized, {"kernel": options.kernel, "attention": attention, "int8_linears": len(spec),
                       "smoothed": len(plan.layers()) if plan else 0,
                       "divisions": len(plan.groups) if plan else 0, "folded": len(plan.folds) if plan else 0,
                       "divided_outputs": len(plan.outputs) if plan else 0,
                       "float": {"ffn_output": kept_float}}


def int8_linear_names(encoder: torch.nn.Module, options: Int8Options) -> list[str]:
    """The encoder's Linear layers that int8 quantizes: all but the pooler's, less the feed-forward output
    projections (intermediate → hidden) under ``float_ffn_output``."""
    from ade_distill.student.smoothing import smoothable_linears

    cfg = getattr(encoder, "config", None)
    ffn_shape = (getattr(cfg, "intermediate_size", None), getattr(cfg, "hidden_size", None))
    return [name for name, layer in smoothable_linears(encoder).items()
            if not (options.float_ffn_output and (layer.in_features, layer.out_features) == ffn_shape)]


def int8_smoothing(encoder: torch.nn.Module, calibration: Calibration, options: Int8Options,
                   plan: SmoothingPlan | None = None) -> Smoothing:
    """The smoothing ``ade-distill quantize`` applies under ``options``: only the layers int8 quantizes, with the
    default plan (:func:`~ade_distill.student.smoothing.smoothing_plan`; weights folded only with per-channel
    scales) unless ``plan`` is given."""
    from ade_distill.student.smoothing import smoothing_plan, smoothing_scales

    calibration = calibration.restricted(int8_linear_names(encoder, options))
    plan = plan or smoothing_plan(encoder, calibration, fold_weights=options.per_channel)
    return smoothing_scales(encoder, calibration, options.smooth_alpha, plan)


def _measured_sha256(folder: Path) -> str:
    """One sha256 over what the verdict measured: the weights, the student's settings (thresholds, max_length)
    and its task."""
    import hashlib

    from ade_distill.hashing import path_sha256
    from ade_distill.student.folder import STUDENT_JSON, TASK_YAML, WEIGHTS

    parts = [path_sha256(folder / name) for name in (WEIGHTS, STUDENT_JSON, TASK_YAML)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


MAX_FLOAT_DRIFT = 1e-3


def _check_float_drift(student: Any, smoothing: Smoothing, texts: list[str]) -> None:
    """Smoothing must leave the float encoder's function as it was (up to rounding); a plan that does not (a fold
    rule that does not hold for this architecture) is a bug, refused before anything is measured."""
    from ade_distill.student.smoothing import float_drift

    enc = student.tokenizer(texts, padding=True, truncation=True, max_length=student.config.max_length,
                            return_tensors="pt")
    drift = float_drift(student.module.encoder, smoothing, enc["input_ids"], enc["attention_mask"])
    if drift > MAX_FLOAT_DRIFT:
        raise ConfigError(f"activation smoothing changed this encoder's float outputs by {drift:.2e} (relative; at "
                          f"most {MAX_FLOAT_DRIFT:g} allowed): its smoothing plan does not fit the architecture "
                          f"({type(student.module.encoder).__name__}); quantize with --smooth-alpha 0")


def guard_hint(folder: str | Path) -> str:
    return (f"run `ade-distill quantize --model {folder} [--check-gold HELDOUT.jsonl]` to measure its int8 loss "
            f"first, or predict without --quantize")


def accepted_int8(folder: str | Path) -> tuple[Int8Options, Smoothing | None]:
    """The int8 options (and smoothing scales) the folder's guard accepted for its current weights.

    Raises:
        ConfigError: no guard record, a refusal, or weights or scales changed since they were measured (names the
            command).
    """
    from ade_distill.hashing import path_sha256

    p = Path(folder)
    record = p / INT8_JSON
    if not record.exists():
        raise ConfigError(f"{p}: torch int8 is used only after its accuracy guard accepted it, and {INT8_JSON} is "
                          f"missing: {guard_hint(p)}")
    try:
        report = json.loads(record.read_text(encoding="utf-8"))
        options = Int8Options(per_channel=report["per_channel"], float_ffn_output=report["float_ffn_output"],
                              smooth_alpha=report.get("smooth_alpha", 0.0), kernel=report.get("kernel", "dynamic"),
                              attention=report.get("attention", "model"))  # records before attention: the model's
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{record}: not an int8 guard record ({exc}): {guard_hint(p)}") from exc
    if not report.get("accepted"):
        raise ConfigError(f"{p}: its int8 model was refused by the accuracy guard ({report.get('message', '?')}, "
                          f"more than {report.get('max_f1_loss')} points): predict without --quantize")
    if report.get("weights_sha256") != _measured_sha256(p):
        raise ConfigError(f"{p}: the weights or settings changed since {INT8_JSON} measured them: {guard_hint(p)}")
    if not options.smooth_alpha:
        return options, None
    scales_file = p / INT8_SCALES
    if not scales_file.exists() or path_sha256(scales_file) != report.get("scales_sha256"):
        raise ConfigError(f"{p}: {INT8_SCALES} is missing or changed since {INT8_JSON} measured it: {guard_hint(p)}")
    from ade_distill.student.smoothing import Smoothing

    return options, Smoothing.load(scales_file)


def guard_torch_int8(
    path: str | Path, check: Sequence[Example] | None = None, *, check_source: str = "given",
    labelled: bool = True, max_f1_loss: float = DEFAULT_MAX_F1_LOSS, reference: str | None = None,
    options: Int8Options | None = None, calibration: Sequence[str] | None = None,
    calibration_source: str = "the check set's texts", batch_size: int = 64, quantizer: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Measure the int8 loss of the student folder ``path`` on ``check`` (default: its dev file) and record the
    verdict in ``path/int8.json`` (see the module docstring), with the smoothing scales in ``path/int8_scales.
    safetensors``. The scales come from the activations on ``calibration`` texts (default: the check set's texts).
    Returns the report. ``quantizer`` replaces :func:`quantize_encoder` (tests use it to break a model on purpose).

    Raises:
        AccuracyGuardError: the loss exceeds ``max_f1_loss`` (recorded as refused).
        ConfigError: not a student folder, no check set, bad options.
    """
    import torch

    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.hashing import path_sha256
    from ade_distill.records import Example as Record
    from ade_distill.student.folder import check_student_folder
    from ade_distill.student.model import StudentExtractor
    from ade_distill.student.smoothing import calibrate

    folder = Path(path)
    check_student_folder(folder)
    if max_f1_loss < 0:
        raise ConfigError(f"max_f1_loss must be >= 0 (F1 points), got {max_f1_loss}")
    if check is None:
        check, check_source = default_check_set(folder)
        labelled = True
    ref = check_guard_options(check, check_source=check_source, labelled=labelled, reference=reference,
                              max_f1_loss=max_f1_loss)
    options = options or Int8Options()
    if calibration is not None and not calibration:
        raise ConfigError(f"the int8 calibration texts ({calibration_source}) are empty")
    for name in (INT8_JSON, INT8_SCALES):  # an earlier verdict no longer holds while this one is measured
        (folder / name).unlink(missing_ok=True)
    texts = strip_labels(check)
    fp32_student = StudentExtractor.from_pretrained(folder)
    t0 = time.perf_counter()
    fp32 = fp32_student.predict(texts, batch_size=batch_size)
    t_fp32 = time.perf_counter() - t0
    smoothing = None
    extra: dict[str, Any] = {}
    if options.smooth_alpha:
        calib = texts if calibration is None else [Record(id=f"calibration-{i}", text=t) for i, t in enumerate(calibration)]
        encoder = fp32_student.module.encoder
        smoothing = int8_smoothing(encoder, calibrate(encoder, lambda: fp32_student.predict(calib, batch_size=batch_size)),
                                   options)
        _check_float_drift(fp32_student, smoothing, [e.text for e in calib[:32]])
        smoothing.save(folder / INT8_SCALES)
        extra = {"calibration": calibration_source, "calibration_texts": len(calib),
                 "scales_sha256": path_sha256(folder / INT8_SCALES)}
    int8_student = StudentExtractor.from_pretrained(folder)
    layout = int8_student.quantize(options, smoothing=smoothing, quantizer=quantizer).int8_layout
    if options.kernel == "compiled":  # compile on a first batch, so the speed recorded is prediction's
        int8_student.predict(texts[:batch_size], batch_size=batch_size)
    t0 = time.perf_counter()
    int8 = int8_student.predict(texts, batch_size=batch_size)
    t_int8 = time.perf_counter() - t0
    verdict = judge(check, fp32, int8, labelled=labelled, reference=ref, max_f1_loss=max_f1_loss,
                    check_source=check_source)
    report = {
        "format": INT8_FORMAT, "runtime": "torch", "method": "dynamic", "weights": "int8",
        **options.model_dump(), **extra, "layout": layout, "weights_sha256": _measured_sha256(folder),
        "batch_size": batch_size, **verdict,
        "sentences_per_second": {"fp32": round(len(check) / t_fp32, 1), "int8": round(len(check) / t_int8, 1)},
        "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
    }
    atomic_write_text(folder / INT8_JSON, json.dumps(report, indent=2) + "\n")
    if not report["accepted"]:
        raise AccuracyGuardError(
            f"int8 refused: {report['message']} exceeds --max-f1-loss {max_f1_loss}. Keep predicting in fp32 "
            f"(without --quantize), or allow a larger loss", report)
    log.info("torch int8 accepted: %s", report["message"])
    return report
