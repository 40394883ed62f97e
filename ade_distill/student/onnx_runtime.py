"""Run a student's ONNX export with ONNX Runtime (CPU): the forward passes only — tokenization, batching and
decoding are :class:`~ade_distill.student.model.StudentExtractor`'s own code, the same as in torch.

An export folder (``ade-distill export-onnx``, by default ``<student>/onnx``) is self-contained::

    onnx.json          manifest: format, architecture, the source weights' SHA-256, library versions, the export
                       check (max |ONNX - torch| on probe sentences) and the int8 guard's measurement
    stage1.onnx        encoder + stage-1 layer: input_ids, attention_mask (B, T) → states (B, T, H), logits (B, T, C)
    stage2.onnx        drug_conditioned: states, index (M,), mention_mask (M, T) → tail logits (M, T, 3);
                       pairwise: states, index (P,), head_mask, tail_mask (P, T) → pair logits (P, 2)
    stage1.int8.onnx   stage 1 with int8 weights (dynamic quantization); present only when it passed the guard
    student.json, task.yaml, config.json, tokenizer files   copied from the student folder

Stage 2 stays in float: it is small, and stage 1 (the encoder) is where the time goes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ade_distill.errors import ConfigError

if TYPE_CHECKING:
    from ade_distill.student.model import StudentExtractor

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
MANIFEST = "onnx.json"
ONNX_FORMAT = 1
STAGE1, STAGE2, STAGE1_INT8 = "stage1.onnx", "stage2.onnx", "stage1.int8.onnx"
STAGE1_INPUTS = ("input_ids", "attention_mask")
STAGE1_OUTPUTS = ("states", "logits")
STAGE2_INPUTS = {"drug_conditioned": ("states", "index", "mention_mask"),
                 "pairwise": ("states", "index", "head_mask", "tail_mask")}
STAGE2_OUTPUT = "logits"

INSTALL_HINT = "install the ONNX extra: pip install 'ade-distill[onnx]'"


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX Runtime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


def _session(ort: Any, path: Path, opts: Any) -> Any:
    """An ONNX Runtime session of one graph file on the CPU provider.

    Raises:
        DataError: the file is missing, truncated or not a valid ONNX graph (ONNX Runtime's protobuf / graph
            errors — ``onnxruntime`` raises its own exception classes, not ``OSError`` — named with the file).
    """
    from ade_distill.errors import DataError

    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's Fail / InvalidProtobuf / ... share no public base
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot load the ONNX graph ({type(err).__name__}: {first}); the export is corrupt or "
                        "incomplete: export again with ade-distill export-onnx", path=path) from None


class OnnxForward:
    """The two forward passes of a student (see :func:`~ade_distill.student.model.stage1_forward` and
    ``stage2_forward``) as ONNX Runtime sessions on the CPU execution provider. Takes and returns torch CPU
    tensors (shared memory with numpy, no copy), so the decoding code cannot tell the runtimes apart.

    ``threads`` (default: ``torch.get_num_threads()``, so ``--threads`` applies to both runtimes) sets ONNX
    Runtime's intra-op threads.
    """

    def __init__(self, folder: str | Path, architecture: str, *, int8: bool = False, threads: int | None = None,
                 stage1_file: str | Path | None = None) -> None:
        """``stage1_file`` overrides the stage-1 graph (the int8 guard measures a candidate before it is kept)."""
        ort = import_onnxruntime()
        folder = Path(folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        self.architecture = architecture
        self.int8 = int8
        self.stage1_path = Path(stage1_file) if stage1_file else folder / (STAGE1_INT8 if int8 else STAGE1)
        self.stage2_path = folder / STAGE2
        self._s1 = _session(ort, self.stage1_path, opts)
        self._s2 = _session(ort, self.stage2_path, opts)
        self._s2_inputs = STAGE2_INPUTS[architecture]

    def stage1(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, logits = self._s1.run(list(STAGE1_OUTPUTS), {"input_ids": ids.cpu().numpy(),
                                                            "attention_mask": mask.cpu().numpy()})
        return torch.from_numpy(states), torch.from_numpy(logits)

    def stage2(self, states: torch.Tensor, index: torch.Tensor, *masks: torch.Tensor) -> torch.Tensor:
        values = [states, index.long(), *(m.float() for m in masks)]
        feed = {name: v.cpu().numpy() for name, v in zip(self._s2_inputs, values, strict=True)}
        (logits,) = self._s2.run([STAGE2_OUTPUT], feed)
        return torch.from_numpy(logits)


def export_folder(path: str | Path) -> Path:
    """The ONNX export folder of ``path``: ``path/onnx`` for a student folder, else ``path`` itself.

    Raises:
        ConfigError: neither holds an export (names the command that writes one).
    """
    p = Path(path)
    for cand in (p / ONNX_DIR, p):
        if (cand / MANIFEST).is_file():
            return cand
    raise ConfigError(f"{p} has no ONNX export ({ONNX_DIR}/{MANIFEST} or {MANIFEST}); write one with "
                      f"ade-distill export-onnx --model {p}")


def read_manifest(folder: Path) -> dict[str, Any]:
    from ade_distill.errors import DataError

    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read the ONNX manifest ({err})", path=folder / MANIFEST) from None
    if manifest.get("format") != ONNX_FORMAT:
        raise ConfigError(f"{folder / MANIFEST}: ONNX export format {manifest.get('format')} is not supported "
                          f"({ONNX_FORMAT}); export again with ade-distill export-onnx")
    return manifest


def check_current(folder: Path, manifest: dict[str, Any]) -> None:
    """An export inside a student folder must come from that folder's weights (a retrained folder replaces
    ``onnx/`` too, but a hand-copied one might not)."""
    from ade_distill.hashing import file_sha256
    from ade_distill.student.folder import WEIGHTS

    weights = folder.parent / WEIGHTS
    if folder.name == ONNX_DIR and weights.is_file() and file_sha256(weights) != manifest.get("weights_sha256"):
        raise ConfigError(f"{folder} was exported from other weights than {weights}; export again with "
                          f"ade-distill export-onnx --model {folder.parent}")


def load_onnx_student(path: str | Path, *, int8: bool = False, threads: int | None = None) -> StudentExtractor:
    """A :class:`StudentExtractor` whose forward passes run in ONNX Runtime (``path``: a student folder with
    ``onnx/`` or an export folder). ``int8`` loads the int8 stage 1, which must have passed its accuracy guard.

    Raises:
        ConfigError: no export, an export of other weights, no accepted int8 model, or ONNX Runtime missing.
        DataError: a file of the export is corrupt (``student.json``, ``config.json``, a truncated or invalid
            ``.onnx`` graph), named in the message.
    """
    from pydantic import ValidationError
    from transformers import AutoConfig

    from ade_distill.errors import DataError
    from ade_distill.student.config import FORMAT_VERSION, StudentConfig
    from ade_distill.student.folder import TASK_YAML, load_tokenizer
    from ade_distill.student.model import STUDENT_JSON, StudentExtractor, _quiet_transformers
    from ade_distill.tasks.spec import load_task

    folder = export_folder(path)
    manifest = read_manifest(folder)
    missing = [n for n in (STUDENT_JSON, TASK_YAML, "config.json", STAGE1, STAGE2) if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder} is not a complete ONNX export: missing {', '.join(missing)}; export again "
                          "with ade-distill export-onnx")
    check_current(folder, manifest)
    if int8:
        guard = manifest.get("int8") or {}
        if not guard.get("accepted") or not (folder / STAGE1_INT8).is_file():
            why = (f"its accuracy guard refused it ({guard.get('message')})" if guard and not guard.get("accepted")
                   else "none was made")
            raise ConfigError(f"{folder} has no accepted int8 model: {why}. Make one with ade-distill export-onnx "
                              f"--model STUDENT --int8 --check-gold GOLD.jsonl, or predict in fp32")
    try:
        config = StudentConfig.model_validate_json((folder / STUDENT_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValidationError) as err:
        problems = ("; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in err.errors()[:3])
                    if isinstance(err, ValidationError) else str(err))
        raise DataError(f"not a valid student config ({problems}); export again with ade-distill export-onnx",
                        path=folder / STUDENT_JSON) from None
    if config.format_version != FORMAT_VERSION:
        raise ConfigError(f"{folder}: student format {config.format_version} is not supported ({FORMAT_VERSION})")
    _quiet_transformers()
    try:
        vocab_size = AutoConfig.from_pretrained(folder).vocab_size
    except (OSError, ValueError) as err:  # transformers: OSError for unreadable, ValueError for bad JSON
        raise DataError(f"not a valid encoder config ({str(err).strip().splitlines()[0]}); export again with "
                        "ade-distill export-onnx", path=folder / "config.json") from None
    tokenizer = load_tokenizer(folder, vocab_size)
    forward = OnnxForward(folder, config.architecture, int8=int8, threads=threads)
    out = StudentExtractor(None, tokenizer, load_task(folder / TASK_YAML), config, onnx=forward)
    out.source = str(Path(path))
    out.quantized = int8
    return out


__all__ = ["OnnxForward", "load_onnx_student", "export_folder", "read_manifest", "ONNX_DIR", "MANIFEST",
           "STAGE1", "STAGE2", "STAGE1_INT8"]
