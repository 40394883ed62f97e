"""Export a student folder to ONNX, check the export against torch, and make an int8 model behind an accuracy guard.

    ade-distill export-onnx --model runs/student                       # → runs/student/onnx/ (fp32)
    ade-distill export-onnx --model runs/student --int8 --check-gold dev.jsonl [--max-f1-loss 0.5]
    ade-distill predict --model runs/student --runtime onnx [--quantize] --input ... --out ...

**What is exported.** Prediction runs two forward passes (``model.stage1_forward`` / ``stage2_forward``); each
becomes one graph, exported from those same functions with ``torch.onnx.export(dynamo=True)`` and dynamic batch,
length and mention axes. Decoding between and after them stays in Python and is shared with the torch runtime
(:class:`~ade_distill.student.onnx_runtime.OnnxForward` only replaces the forward passes). The TorchScript exporter
(``dynamo=False``) is not used: it traced the attention mask's shape checks of transformers 5 into constants, and
its graph disagreed with torch by up to 0.5 in the logits on other shapes.

**Export check.** After export both runtimes run probe sentences (built in, plus the check set's first texts when
given) in batches of different shapes (:func:`compare_forwards`): each graph's logits against its torch function
on the same inputs, and the class probabilities of both stages end to end, must differ by at most ``tolerance``
(absolute, default 1e-4), else the export is refused. The measured differences go into ``onnx.json`` (typically
~1e-5 for the logits, ~1e-6 for the probabilities; end to end, stage-2 logits differ by up to ~1e-4 because the
states' ~1e-6 differences pass through the stage-2 weights).

**int8 and its guard.** ``quantize_int8`` applies ONNX Runtime's dynamic quantization to stage 1 (int8 weights,
per output channel; activations quantized on the fly; the tag layer and, by default, the feed-forward output
projections stay in float: :func:`float_nodes`) and predicts a check set with fp32 and int8. Two losses are
measured, in relation F1 points, strict and lenient: against the fp32 model's predictions as reference
(``100 × (1 − F1(int8 | fp32))``: how much of fp32's output changed) and, for a labelled check set, against its
labels (``F1(fp32) − F1(int8)``). The guard's reference is the labels when the check set has them (what users
lose), else the fp32 predictions (``reference=`` overrides); when the larger of its strict and lenient losses
exceeds ``max_f1_loss`` (default 0.5) the int8 model is refused: it is deleted, the refusal and the measurement
are recorded in ``onnx.json``, and :class:`AccuracyGuardError` (a :class:`ConfigError`) says the measured loss.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ade_distill.errors import ConfigError
from ade_distill.records import Example, atomic_write_text, replace_dir
from ade_distill.student.int8_guard import (  # noqa: F401  (AccuracyGuardError, measure_loss: re-exported)
    DEFAULT_MAX_F1_LOSS,
    AccuracyGuardError,
    check_guard_options,
    default_check_set,
    judge,
    measure_loss,
)
from ade_distill.student.onnx_runtime import (
    INSTALL_HINT,
    MANIFEST,
    ONNX_DIR,
    ONNX_FORMAT,
    STAGE1,
    STAGE1_INPUTS,
    STAGE1_INT8,
    STAGE1_OUTPUTS,
    STAGE2,
    STAGE2_INPUTS,
    STAGE2_OUTPUT,
    OnnxForward,
    export_folder,
    read_manifest,
)

if TYPE_CHECKING:
    import torch

    from ade_distill.student.encode import Encoding
    from ade_distill.student.model import StudentExtractor

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4

# Probe sentences of the export check (varied lengths; the last is longer than any max_length, so truncated).
PROBES = (
    "Intravenous azithromycin-induced ototoxicity.",
    "We report a case of severe hyponatremia after carbamazepine therapy in an elderly woman.",
    "Lithium toxicity.",
    "Methotrexate pneumonitis and hepatotoxicity developed in two patients treated for rheumatoid arthritis, "
    "and one of them also had pancytopenia while on trimethoprim-sulfamethoxazole.",
    " ".join(["Neuroleptic malignant syndrome associated with haloperidol and lithium was suspected."] * 8),
)


def _require_exporter() -> None:
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"exporting to ONNX needs {', '.join(missing)}; {INSTALL_HINT}")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "onnx", "onnxscript", "onnxruntime"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - checked by _require_exporter
            pass
    return out


# -- export -------------------------------------------------------------------------------------------------
def _graphs(student: StudentExtractor) -> tuple[Any, Any]:
    """The two forward passes as modules whose ``forward`` is exactly the torch runtime's."""
    import torch

    from ade_distill.student.model import Stage1Module, stage2_forward

    arch = student.config.architecture

    class Stage2Conditioned(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, states: torch.Tensor, index: torch.Tensor, mention_mask: torch.Tensor) -> torch.Tensor:
            return stage2_forward(self.module, arch, states, index, mention_mask)

    class Stage2Pairwise(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, states: torch.Tensor, index: torch.Tensor, head_mask: torch.Tensor,
                    tail_mask: torch.Tensor) -> torch.Tensor:
            return stage2_forward(self.module, arch, states, index, head_mask, tail_mask)

    stage2 = Stage2Pairwise if arch == "pairwise" else Stage2Conditioned
    return Stage1Module(student.module, arch).eval(), stage2(student.module).eval()


def _export_graphs(student: StudentExtractor, folder: Path, opset: int | None) -> None:
    import warnings

    import torch
    from torch.export import Dim

    stage1, stage2 = _graphs(student)
    arch = student.config.architecture
    hidden = student.module.encoder.config.hidden_size  # type: ignore[union-attr]
    # Example inputs with every dynamic axis > 1 (torch.export specialises axes of size 0 and 1) and padding.
    b, t, m = 2, 12, 3
    ids = torch.randint(1000, 2000, (b, t))
    mask = torch.ones((b, t), dtype=torch.long)
    mask[1, t // 2 :] = 0
    batch, seq, rows = Dim("batch"), Dim("seq", min=2, max=student.config.max_length), Dim("rows")
    states = torch.randn(b, t, hidden)
    index = torch.tensor([0, 1, 1][:m])
    masks = [torch.zeros(m, t) for _ in range(len(STAGE2_INPUTS[arch]) - 2)]
    for mk in masks:
        mk[:, 1:3] = 1.0
    dyn2: dict[str, Any] = {"states": {0: batch, 1: seq}, "index": {0: rows}}
    dyn2.update({name: {0: rows, 1: seq} for name in STAGE2_INPUTS[arch][2:]})
    jobs = [
        (stage1, (ids, mask), STAGE1, list(STAGE1_INPUTS), list(STAGE1_OUTPUTS),
         {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}),
        (stage2, (states, index, *masks), STAGE2, list(STAGE2_INPUTS[arch]), [STAGE2_OUTPUT], dyn2),
    ]
    for module, args, name, inputs, outputs, dynamic in jobs:
        t0 = time.perf_counter()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation and renaming notices
            program = torch.onnx.export(
                module, args, dynamo=True, input_names=inputs, output_names=outputs, dynamic_shapes=dynamic,
                opset_version=opset, external_data=False, verbose=False, report=False,
            )
        program.save(str(folder / name), external_data=False)
        log.info("exported %s in %.1fs", name, time.perf_counter() - t0)


def _probe_masks(batch: Sequence[Encoding], width: int, n_masks: int) -> tuple[Any, list[Any]]:
    """One stage-2 row per encoding: a mention over its first two words (drug_conditioned), or a pair of its
    first and last word (pairwise). The graphs compute the same whatever the words are."""
    import torch

    index, masks = [], [[] for _ in range(n_masks)]
    for b, e in enumerate(batch):
        n = len(e.words)
        if not n:
            continue
        ranges = [(0, min(2, n))] if n_masks == 1 else [(0, 1), (n - 1, n)]
        index.append(b)
        for k, (ws, we) in enumerate(ranges):
            row = [1.0 if ws <= w < we else 0.0 for w in e.token_word] + [0.0] * (width - len(e))
            masks[k].append(row)
    return torch.tensor(index, dtype=torch.long), [torch.tensor(m) for m in masks]


def compare_forwards(a: StudentExtractor, b: StudentExtractor, texts: Sequence[str],
                     batch_sizes: Sequence[int] = (1, 3, 64)) -> dict[str, float]:
    """Largest absolute differences between two students' forward passes (e.g. torch and ONNX) on ``texts``, in
    batches of each size of ``batch_sizes`` (different shapes and padding), over real tokens:

    * ``states``, ``stage1_logits``: stage 1 on the same input ids;
    * ``stage2_logits``: stage 2 of probe mentions (:func:`_probe_masks`) on the same input, ``a``'s states — each
      graph against its torch function;
    * ``stage2_logits_end_to_end``: each student's stage 2 on its own states (the states' float differences,
      ~1e-6, are multiplied by the stage-2 weights: larger, and what prediction sees);
    * ``probabilities``: the softmax of both stages end to end, which decoding thresholds.
    """
    import torch

    for student in (a, b):
        if student.module is not None:
            student.module.eval()
    encs = a.encode(texts)
    n_masks = len(STAGE2_INPUTS[a.config.architecture]) - 2
    worst = dict.fromkeys(("states", "stage1_logits", "stage2_logits", "stage2_logits_end_to_end",
                           "probabilities"), 0.0)

    def upd(key: str, x: torch.Tensor, y: torch.Tensor) -> None:
        worst[key] = max(worst[key], (x - y).abs().max().item() if x.numel() else 0.0)

    with torch.inference_mode():
        for size in batch_sizes:
            for k in range(0, len(encs), size):
                batch = encs[k : k + size]
                ids, mask = a.pad(batch)
                real = mask.bool()
                (sa, la), (sb, lb) = a.stage1(ids, mask), b.stage1(ids, mask)
                upd("states", sa[real], sb[real])
                upd("stage1_logits", la[real], lb[real])
                upd("probabilities", la[real].softmax(-1), lb[real].softmax(-1))
                index, masks = _probe_masks(batch, ids.size(1), n_masks)
                if index.numel():
                    ta, tb = a.stage2(sa, index, *masks), b.stage2(sb, index, *masks)
                    upd("stage2_logits", ta, b.stage2(sa, index, *masks))
                    upd("stage2_logits_end_to_end", ta, tb)
                    upd("probabilities", ta.softmax(-1), tb.softmax(-1))
    return worst


CHECKED = ("stage1_logits", "stage2_logits", "probabilities")  # what export_onnx's tolerance applies to


def export_onnx(
    model_dir: str | Path, out: str | Path | None = None, *, tolerance: float = DEFAULT_TOLERANCE,
    probe_texts: Sequence[str] = (), opset: int | None = None,
) -> Path:
    """Export the student folder ``model_dir`` to ``out`` (default ``model_dir/onnx``), check it against torch
    and write ``onnx.json``; an existing export at ``out`` (with its int8 model) is replaced atomically.
    Returns the export folder.

    Raises:
        ConfigError: ONNX packages missing, a bad tolerance, or the export differs from torch by more than
            ``tolerance`` (the folder is then not written).
    """
    _require_exporter()
    from ade_distill.hashing import file_sha256
    from ade_distill.student.folder import ENCODER_CONFIG, STUDENT_JSON, TASK_YAML, WEIGHTS
    from ade_distill.student.model import StudentExtractor

    if not tolerance > 0:
        raise ConfigError(f"tolerance must be > 0, got {tolerance}")
    src = Path(model_dir)
    student = StudentExtractor.from_pretrained(src)
    if student.config.architecture == "pair_classifier":
        raise ConfigError("ONNX export covers the tagging architectures; a pair_classifier student runs in torch")
    student.module.eval()  # type: ignore[union-attr]
    dest = Path(out) if out is not None else src / ONNX_DIR
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        t0 = time.perf_counter()
        _export_graphs(student, tmp, opset)
        seconds = round(time.perf_counter() - t0, 1)
        for name in (STUDENT_JSON, TASK_YAML, ENCODER_CONFIG):
            shutil.copyfile(src / name, tmp / name)
        student.tokenizer.save_pretrained(tmp)
        onnx_student = _onnx_student(student, OnnxForward(tmp, student.config.architecture))
        texts = list(PROBES) + list(probe_texts)
        diffs = compare_forwards(student, onnx_student, texts)
        worst = max(CHECKED, key=lambda k: diffs[k])
        if diffs[worst] > tolerance:
            raise ConfigError(f"the ONNX export of {src} differs from the torch model by {diffs[worst]:.2e} in "
                              f"{worst.replace('_', ' ')} (tolerance {tolerance:.0e}); not written. Versions: "
                              f"{_versions()}")
        manifest = {
            "format": ONNX_FORMAT,
            "architecture": student.config.architecture,
            "source": str(src),
            "weights_sha256": file_sha256(src / WEIGHTS),
            "graphs": {"stage1": STAGE1, "stage2": STAGE2},
            "opset": opset,
            "versions": _versions(),
            "export_seconds": seconds,
            "check": {"texts": len(texts), "tolerance": tolerance,
                      "max_abs_diff": {k: float(f"{v:.3g}") for k, v in diffs.items()}},
            "int8": None,
        }
        _write_manifest(tmp, manifest)
        _replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("ONNX export %s: max |onnx - torch| %s", dest, manifest["check"]["max_abs_diff"])
    return dest


def _onnx_student(like: StudentExtractor, forward: OnnxForward) -> StudentExtractor:
    from ade_distill.student.model import StudentExtractor

    out = StudentExtractor(None, like.tokenizer, like.task, like.config, onnx=forward)
    out.source = like.source
    out.quantized = forward.int8
    return out


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n", sync_dir=True)


def _replace(tmp: Path, dest: Path) -> None:
    replace_dir(tmp, dest)


# -- int8 -----------------------------------------------------------------------------------------------------
def float_nodes(graph_path: Path, *, ffn_output: bool = True) -> dict[str, list[str]]:
    """MatMul nodes of a stage-1 graph that stay in float under int8: the stage-1 tag layer (the MatMul feeding
    the ``logits`` output: a few columns, read directly by decoding, as in the torch quantization) and, when
    ``ffn_output``, every feed-forward output projection (weights of shape intermediate × hidden, whose input is
    the GELU output with its wide, outlier-heavy range). Keeping those in float raised the agreement of int8 with
    fp32 on 600 held-out ADE sentences from 85.5 to 89.5 strict relation F1 (MiniLM student), at ~15% of the int8
    speed-up."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    head: list[str] = []
    todo = [o.name for o in graph.output if o.name == STAGE1_OUTPUTS[1]]
    while todo:  # back from the logits output through Add/Identity/Cast to the first MatMul
        node = producer.get(todo.pop())
        if node is None:
            continue
        if node.op_type in ("MatMul", "Gemm"):
            head.append(node.name)
        elif node.op_type in ("Add", "Identity", "Cast"):
            todo.extend(i for i in node.input if i not in shapes)
    ffn: list[str] = []
    if ffn_output:
        hidden = None
        for n in graph.node:
            if n.op_type == "MatMul":
                dims = [shapes[i] for i in n.input if i in shapes and len(shapes[i]) == 2]
                if dims and hidden is None:
                    hidden = dims[0][0]  # the first projection reads the embeddings: hidden × something
                if dims and hidden is not None and dims[0][1] == hidden and dims[0][0] > hidden:
                    ffn.append(n.name)
    return {"tag_layer": head, "ffn_output": ffn}


def quantize_graph(src: Path, dst: Path, *, per_channel: bool = True, float_ffn_output: bool = True) -> dict[str, Any]:
    """ONNX Runtime dynamic quantization of a stage-1 graph: int8 weights of every MatMul with constant weights
    (scales per output channel when ``per_channel``), activations quantized per call; the nodes of
    :func:`float_nodes` stay in float. Returns the counts of quantized and float MatMuls."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = float_nodes(src, ffn_output=float_ffn_output)
    exclude = [n for names in keep.values() for n in names]
    quantize_dynamic(str(src), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude)
    ops = [n.op_type for n in onnx.load(str(dst), load_external_data=False).graph.node]
    return {"int8_matmuls": ops.count("MatMulInteger"), "float": {k: len(v) for k, v in keep.items()}}


def quantize_int8(
    path: str | Path, check: Sequence[Example] | None = None, *, check_source: str = "given",
    labelled: bool = True, max_f1_loss: float = DEFAULT_MAX_F1_LOSS, reference: str | None = None,
    per_channel: bool = True, float_ffn_output: bool = True, batch_size: int = 64,
    quantizer: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Quantize the export of ``path`` (student folder or export folder) to int8 and keep it only if it passes the
    accuracy guard on ``check`` (default: the student's dev file); see the module docstring. Returns the guard's
    report (also written to ``onnx.json``). ``per_channel`` and ``float_ffn_output``: see :func:`quantize_graph`;
    ``quantizer(src, dst, **options)`` replaces it (tests use it to break a model on purpose).

    Raises:
        AccuracyGuardError: the loss exceeds ``max_f1_loss`` (the int8 model is not kept).
        ConfigError: no export, no check set, bad options.
    """
    _require_exporter()
    from ade_distill.experiments.protocol import strip_labels

    if max_f1_loss < 0:
        raise ConfigError(f"max_f1_loss must be >= 0 (F1 points), got {max_f1_loss}")
    folder = export_folder(path)
    manifest = read_manifest(folder)
    if check is None:
        check, check_source = default_check_set(folder)
        labelled = True
    ref = check_guard_options(check, check_source=check_source, labelled=labelled, reference=reference,
                              max_f1_loss=max_f1_loss)
    manifest["int8"] = None  # an earlier int8 model is no longer vouched for while this one is measured
    _write_manifest(folder, manifest)
    (folder / STAGE1_INT8).unlink(missing_ok=True)
    tmp = folder / f".{STAGE1_INT8}.tmp"
    try:
        t0 = time.perf_counter()
        layout = (quantizer or quantize_graph)(folder / STAGE1, tmp, per_channel=per_channel,
                                               float_ffn_output=float_ffn_output)
        seconds = round(time.perf_counter() - t0, 1)
        from ade_distill.student.onnx_runtime import load_onnx_student

        fp32_student = load_onnx_student(folder)
        int8_forward = OnnxForward(folder, fp32_student.config.architecture, int8=True, stage1_file=tmp)
        int8_student = _onnx_student(fp32_student, int8_forward)
        texts = strip_labels(check)
        t1 = time.perf_counter()
        fp32 = fp32_student.predict(texts, batch_size=batch_size)
        t_fp32 = time.perf_counter() - t1
        t1 = time.perf_counter()
        int8 = int8_student.predict(texts, batch_size=batch_size)
        t_int8 = time.perf_counter() - t1
        verdict = judge(check, fp32, int8, labelled=labelled, reference=ref, max_f1_loss=max_f1_loss,
                        check_source=check_source)
        accepted, detail = verdict["accepted"], verdict["message"]
        report = {
            "method": "dynamic", "per_channel": per_channel, "weights": "int8",
            "float_ffn_output": float_ffn_output, "layout": layout, **verdict,
            "sentences_per_second": {"fp32": round(len(check) / t_fp32, 1), "int8": round(len(check) / t_int8, 1)},
            "quantize_seconds": seconds,
            "size_mb": {"fp32": round((folder / STAGE1).stat().st_size / 2**20, 1),
                        "int8": round(tmp.stat().st_size / 2**20, 1)},
        }
        if accepted:
            del int8_student, int8_forward
            os.replace(tmp, folder / STAGE1_INT8)
        manifest["int8"] = report
        _write_manifest(folder, manifest)
    finally:
        tmp.unlink(missing_ok=True)
    if not accepted:
        raise AccuracyGuardError(
            f"int8 model refused: {detail} exceeds --max-f1-loss {max_f1_loss}. Keep predicting in fp32 "
            f"(--runtime onnx), or allow a larger loss", report)
    log.info("int8 model accepted: %s", detail)
    return report
