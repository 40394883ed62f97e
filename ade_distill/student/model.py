"""`StudentExtractor`: a trained student as one object — encoder + heads, tokenizer, TaskSpec, decoding settings —
with ``predict``, ``save_pretrained`` and ``from_pretrained``.

Folder layout written by :meth:`StudentExtractor.save_pretrained` (atomically: a temporary sibling folder is
renamed into place, so a half-written folder never looks finished)::

    student.json        StudentConfig (architecture, max_length, thresholds, provenance, metrics)
    config.json         the encoder's transformers config (weights are rebuilt from it, never downloaded)
    model.safetensors   all weights (encoder + heads)
    tokenizer files     tokenizer.json, tokenizer_config.json, ...
    task.yaml           the TaskSpec
    README.md           model card (ade_distill.student.card)

Prediction output (``predict``): every predicted head mention, every tail mention tagged for at least one head
(drug-conditioned) or every predicted tail entity (pairwise), and the relations head → tail with the task's
primary relation label. ``Span.score`` is the mean per-word probability of being inside the entity (stage 2 for
tails: the highest over the heads it was tagged for); ``Relation.score`` is ``P(head) × P(tail | head)`` for the
drug-conditioned model and ``P(related)`` of the pair classifier for the pairwise model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ade_distill.errors import ConfigError
from ade_distill.records import Example, Relation, Span, replace_dir
from ade_distill.student.config import FORMAT_VERSION, Architecture, StudentConfig  # noqa: F401  (re-exported)
from ade_distill.student.encode import Encoding, decode_bio, encode_texts
from ade_distill.tasks.spec import TaskSpec, load_task

if TYPE_CHECKING:
    from ade_distill.student.quantize import Int8Options
    from ade_distill.student.smoothing import Smoothing

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
STUDENT_JSON = "student.json"
TASK_YAML = "task.yaml"


def build_module(config: StudentConfig, encoder: torch.nn.Module) -> torch.nn.Module:
    """The student's network around ``encoder``, as ``config`` describes it."""
    from ade_distill.student.modules import DrugConditionedTagger
    from ade_distill.student.pairwise import PairwiseExtractor

    if config.architecture == "drug_conditioned":
        return DrugConditionedTagger(encoder, config.dropout, config.tail_head)
    if config.architecture == "pairwise":
        return PairwiseExtractor(encoder, config.dropout)
    if config.architecture == "pair_classifier":
        from ade_distill.student.pair_classifier import PairClassifier

        return PairClassifier(encoder, config.dropout, structure=config.pair_structure)
    raise ConfigError(f"unknown architecture {config.architecture!r}; expected 'drug_conditioned', 'pairwise' or "
                      "'pair_classifier'")


# The two forward passes prediction needs, shared by StudentExtractor (torch runtime) and the ONNX export
# (ade_distill.student.onnx_export), so that an exported graph computes exactly what predict runs in torch.
def stage1_forward(
    module: torch.nn.Module, architecture: str, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states (B, T, H) and stage-1 logits (B, T, C): head BIO tags (drug_conditioned) or the joint tag
    set (pairwise)."""
    states = module.encode(input_ids, attention_mask)
    layer = module.entity_classifier if architecture == "pairwise" else module.head_classifier
    return states, layer(states)


class Stage1Module(torch.nn.Module):
    """:func:`stage1_forward` as a module: what the ONNX export traces and ``torch.compile`` compiles."""

    def __init__(self, module: torch.nn.Module, architecture: str) -> None:
        super().__init__()
        self.module = module
        self.architecture = architecture

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return stage1_forward(self.module, self.architecture, input_ids, attention_mask)


def stage2_forward(
    module: torch.nn.Module, architecture: str, states: torch.Tensor, index: torch.Tensor, *masks: torch.Tensor
) -> torch.Tensor:
    """Stage-2 logits: tail BIO logits (M, T, 3) per head mention (``masks``: the mention's token mask), or
    P(related) logits (P, 2) per candidate pair (``masks``: head and tail token masks). ``index`` gives each
    mention's or pair's row of the batch."""
    if architecture == "pairwise":
        return module.pair_logits(states, index, *masks)
    return module.tail_logits(states, index, *masks)


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass


# Weights an encoder checkpoint may lack or carry without harm here: the student reads token states only, so a
# missing pooler is never used, and a masked-LM head (an adapted encoder, ``adapt.py``) is simply not loaded.
MLM_HEAD_PREFIXES = ("cls.", "lm_head.")
_UNUSED_MISSING = ("pooler.",)
_UNUSED_EXTRA = (*MLM_HEAD_PREFIXES, "pooler.")


class _DropLoadReport(logging.Filter):
    """Drops the load-report table and, for a checkpoint without a masked-LM head (all-MiniLM-L6-v2), the
    "This checkpoint seem corrupted ... tied weights" message about that head's bias: the head is newly
    initialised and the caller counts its weights among the missing ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" in msg:
            return False
        tied = re.search(r"specifies to tie (\S+) to (\S+?),? but both are absent", msg)
        return not (tied and all(k.startswith(MLM_HEAD_PREFIXES) for k in tied.groups()))


def from_pretrained_quietly(auto_class: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """``auto_class.from_pretrained(path)`` without transformers' load-report table (the callers summarise the
    returned loading info instead). The report is dropped by a filter, not a level: that logger's level also
    switches other checks of the loader."""
    reporter = logging.getLogger("transformers.modeling_utils")
    no_report = _DropLoadReport()
    reporter.addFilter(no_report)
    try:
        model, info = auto_class.from_pretrained(path, output_loading_info=True)
    finally:
        reporter.removeFilter(no_report)
    return model, info


def load_encoder(name_or_path: str) -> tuple[torch.nn.Module, Any]:
    """Pretrained encoder and fast tokenizer for a (resolved) name or folder.

    transformers' load report (a table per load) is replaced by one warning naming the weights that matter:
    encoder weights missing from the checkpoint (newly initialised) or checkpoint weights left unused, other than
    the pooler and a masked-LM head, which the student never uses.
    """
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        encoder, info = from_pretrained_quietly(AutoModel, name_or_path)
    except OSError as err:
        raise ConfigError(f"cannot load encoder {name_or_path!r}: {err}") from None
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(_UNUSED_MISSING))
    extra = sorted(k for k in info.get("unexpected_keys", ()) if not k.startswith(_UNUSED_EXTRA))
    if missing or extra:
        log.warning("encoder %s: %d weight(s) missing from the checkpoint, newly initialised (%s); %d checkpoint "
                    "weight(s) unused (%s)", name_or_path, len(missing), ", ".join(missing[:5]) or "-",
                    len(extra), ", ".join(extra[:5]) or "-")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"encoder {name_or_path!r} has no fast tokenizer; the student needs offsets")
    return encoder, tokenizer


class StudentExtractor:
    """A student model ready to predict, save and load. Build one with :func:`StudentExtractor.from_pretrained`
    or :meth:`StudentExtractor.from_encoder` (fresh heads, for training)."""

    def __init__(
        self, module: torch.nn.Module | None, tokenizer: Any, task: TaskSpec, config: StudentConfig, *,
        onnx: Any | None = None,
    ) -> None:
        """``module`` runs the forward passes in torch; a student loaded for ONNX Runtime has none and an
        ``onnx`` forward instead (:class:`~ade_distill.student.onnx_runtime.OnnxForward`). Decoding is the same
        code either way."""
        if module is None and onnx is None:
            raise ConfigError("a student needs a torch module or an ONNX forward")
        self.module = module
        self.tokenizer = tokenizer
        self.task = task
        self.config = config
        self.source: str = "in-memory"
        self.quantized = False
        self.onnx = onnx
        self.precision = "fp32"
        self._compiled_stage1: Any = None
        self._fp32_linears: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.int8_layout: dict[str, Any] = {}

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_encoder(cls, task: TaskSpec, config: StudentConfig, *, seed: int | None = None) -> StudentExtractor:
        """A new student: pretrained encoder, freshly initialised heads (seeded when ``seed`` is given)."""
        from ade_distill.student.encoders import resolve_encoder

        if seed is not None:
            torch.manual_seed(seed)
        encoder, tokenizer = load_encoder(resolve_encoder(config.encoder))
        module = build_module(config, encoder)
        return cls(module, tokenizer, task, config)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, quantize: bool = False, runtime: str = "torch",
                        precision: str = "fp32", compile: bool = False) -> StudentExtractor:
        """Load a folder written by :meth:`save_pretrained`; ``quantize`` applies dynamic int8 quantization
        behind its accuracy guard (:meth:`quantize`: the folder's ``int8.json``, written by ``ade-distill quantize``);
        ``precision="bf16"`` predicts under bfloat16 autocast (:meth:`set_precision`); ``compile`` compiles the
        stage-1 pass with ``torch.compile`` (:meth:`set_compile`).

        ``runtime="onnx"`` loads the folder's ONNX export instead of the torch weights (``path/onnx``, written by
        ``ade-distill export-onnx``, or an export folder itself) and runs it with ONNX Runtime on CPU;
        ``quantize`` then selects the int8 export, which exists only when it passed its accuracy guard (see
        :mod:`ade_distill.student.onnx_runtime`).

        Raises:
            ConfigError: a file of the folder is missing (:func:`~ade_distill.student.folder.check_student_folder`),
                an unknown runtime or precision, bf16 or compile with ONNX or int8, or no (current) ONNX export.
            DataError: a file is corrupt or does not fit the others (named in the message).
        """
        check_precision(precision, runtime=runtime, quantize=quantize, compile=compile)
        if runtime == "onnx":
            from ade_distill.student.onnx_runtime import load_onnx_student

            return load_onnx_student(path, int8=quantize)
        from transformers import AutoConfig, AutoModel

        from ade_distill.student.folder import check_student_folder, load_tokenizer, load_weights

        p = Path(path)
        check_student_folder(p)
        config = StudentConfig.model_validate_json((p / STUDENT_JSON).read_text(encoding="utf-8"))
        if config.format_version != FORMAT_VERSION:
            raise ConfigError(f"{p}: student format {config.format_version} is not supported ({FORMAT_VERSION})")
        task = load_task(p / TASK_YAML)
        _quiet_transformers()
        enc_config = AutoConfig.from_pretrained(p)
        encoder = AutoModel.from_config(enc_config)
        module = build_module(config, encoder)
        load_weights(module, p)
        module.eval()  # a loaded student predicts (training sets train mode itself)
        tokenizer = load_tokenizer(p, enc_config.vocab_size)
        out = cls(module, tokenizer, task, config)
        out.source = str(p)
        if quantize:
            out.quantize()
        return out.set_precision(precision).set_compile(compile)

    def save_pretrained(
        self, path: str | Path, *, card_extra: dict[str, Any] | None = None, extra_files: dict[str, str] | None = None
    ) -> Path:
        """Write the student folder atomically (see the module docstring). ``extra_files`` (name → text) are
        written into the folder before it is renamed into place. Returns the folder."""
        from safetensors.torch import save_model

        from ade_distill.student.card import write_model_card

        if self.quantized:
            raise ConfigError("a quantized student cannot be saved; save the float model and quantize on load")
        if self.module is None:
            raise ConfigError("a student loaded for ONNX Runtime cannot be saved; save the torch student instead")
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
        try:
            with self._fp32_weights():
                save_model(self.module, str(tmp / WEIGHTS))
            self.module.encoder.config.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / TASK_YAML).write_text(self.task.to_yaml(), encoding="utf-8")
            if "software" not in self.config.provenance:  # the code that made it (kept when a model is re-saved)
                from ade_distill.provenance import software_provenance

                self.config = self.config.model_copy(
                    update={"provenance": {**self.config.provenance, "software": software_provenance()}})
            (tmp / STUDENT_JSON).write_text(self.config.model_dump_json(indent=2) + "\n", encoding="utf-8")
            write_model_card(tmp, self.task, self.config, extra=card_extra)
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
            replace_dir(tmp, p)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.source = str(p)
        return p

    def quantize(self, options: Int8Options | None = None, *, smoothing: Smoothing | None = None,
                 quantizer: Any = None) -> StudentExtractor:
        """Dynamic int8 quantization of the encoder's Linear layers (CPU inference only; in place); the small task
        layers stay in float (stage 2 reads the tail layer's weight matrix directly). The layout is kept in
        :attr:`int8_layout`. Options with the ``compiled`` kernel also compile the stage-1 pass (as
        :meth:`set_compile`).

        Without ``options``, only behind the accuracy guard: the student's folder must hold an ``int8.json`` that
        accepted its current weights (``ade-distill quantize``), whose options and smoothing scales are used.
        ``options`` (and ``smoothing``: :mod:`~ade_distill.student.smoothing`) quantize unguarded (what the guard
        itself measures); ``quantizer`` replaces :func:`~ade_distill.student.quantize.quantize_encoder`.

        Raises:
            ConfigError: an ONNX, bf16 or compiled student, or no accepted guard record (names the command).
        """
        from ade_distill.student.quantize import accepted_int8, quantize_encoder

        if self.module is None:
            raise ConfigError("an ONNX student is quantized at export (ade-distill export-onnx --int8), not on load")
        if self.precision != "fp32" or self._compiled_stage1 is not None:
            raise ConfigError("an int8 student predicts in its own precision: quantize a student loaded without "
                              "precision bf16 and compile")
        if self.quantized:
            raise ConfigError("this student is already quantized: quantize a freshly loaded one")
        if options is None:
            if self.source == "in-memory":
                raise ConfigError("torch int8 is used behind its accuracy guard, which measures a saved student: "
                                  "save it (save_pretrained) and run `ade-distill quantize --model FOLDER`")
            options, smoothing = accepted_int8(self.source)
        if options.kernel == "compiled":
            self._check_compiler()
        self.module.eval()
        self.module.encoder, self.int8_layout = (quantizer or quantize_encoder)(self.module.encoder, options, smoothing)
        self.quantized = True
        if options.kernel == "compiled":
            self._compiled_stage1 = self._compile_stage1()
        return self

    def set_precision(self, precision: str) -> StudentExtractor:
        """``"bf16"``: the torch forward passes run under bfloat16 autocast, with the encoder's Linear weights
        kept as bf16 copies so the cast is not repeated on each pass (the fp32 weights are kept aside for fp32 and
        :meth:`save_pretrained`; decoding reads fp32 probabilities). Faster than fp32 on CPUs with bf16
        instructions (AVX512-BF16, AMX) and on GPUs, at a small cost in agreement with fp32
        (``benchmarks/bench_deploy.py`` measures both). Students trained with ``precision: bf16`` ran under the
        same autocast. ``"fp32"`` (default): full precision."""
        check_precision(precision, runtime="torch" if self.module is not None else "onnx", quantize=self.quantized)
        if self.module is not None and precision != self.precision:
            if self._compiled_stage1 is not None:
                raise ConfigError("set the precision before compile: a compiled student froze its weights")
            self._cast_encoder_linears(to_bf16=precision == "bf16")
        self.precision = precision
        return self

    def _cast_encoder_linears(self, *, to_bf16: bool) -> None:
        """Keep the encoder's Linear weights in bfloat16 while the student predicts in bf16, and its fp32 weights
        aside (restored for fp32 and for :meth:`save_pretrained`). Autocast would cast each fp32 weight to bf16 on
        every forward pass anyway: the results are the same, bit for bit, without that cost. The task layers stay
        fp32 (stage 2 slices their weights)."""
        assert self.module is not None
        if to_bf16:
            self._fp32_linears = {}
            for name, layer in self.module.encoder.named_modules():
                if isinstance(layer, torch.nn.Linear) and layer.weight.dtype == torch.float32:
                    self._fp32_linears[name] = (layer.weight.data, None if layer.bias is None else layer.bias.data)
                    layer.weight.data = layer.weight.data.to(torch.bfloat16)
                    if layer.bias is not None:
                        layer.bias.data = layer.bias.data.to(torch.bfloat16)
            return
        layers = dict(self.module.encoder.named_modules())
        for name, (weight, bias) in self._fp32_linears.items():
            device = layers[name].weight.device  # the module may have moved since (Ray workers, GPUs)
            layers[name].weight.data = weight.to(device)
            if bias is not None:
                layers[name].bias.data = bias.to(device)
        self._fp32_linears = {}

    @contextlib.contextmanager
    def _fp32_weights(self) -> Iterator[None]:
        """The fp32 weights in place for the duration (a bf16 student's encoder Linear weights are bf16 copies)."""
        if self.module is None or not self._fp32_linears:
            yield
            return
        self._cast_encoder_linears(to_bf16=False)
        try:
            yield
        finally:
            self._cast_encoder_linears(to_bf16=True)

    def set_compile(self, enabled: bool = True) -> StudentExtractor:
        """``torch.compile`` (inductor, dynamic shapes, weights frozen into the compiled code) of the stage-1 pass,
        where prediction spends most of its time. The first batch compiles (about half a minute on 2 CPU
        cores; later processes reuse inductor's on-disk cache); predictions then agree with the eager pass up to
        float rounding. Combine with ``precision="bf16"`` for the fastest torch CPU prediction. Weights are frozen
        at the first call: compile a student to predict with it, not to train it. Each student (each member of an
        ensemble) compiles its own graph and keeps its eager weights beside the frozen ones.

        An int8 student is compiled when its guard measured the ``compiled`` kernel (``ade-distill quantize
        --compile``; then this is a no-op), and not otherwise: the ``dynamic`` kernel's layers are opaque to
        ``torch.compile``.

        Raises:
            ConfigError: an ONNX or pair_classifier student (whose pass is not stage 1), an int8 student measured
                with the dynamic kernel, or no C++ compiler for inductor on the CPU.
        """
        check_precision(self.precision, runtime="torch" if self.module is not None else "onnx", compile=enabled)
        if self.quantized:
            if enabled and self.int8_layout.get("kernel") != "compiled":
                raise ConfigError("this int8 student uses the dynamic kernel, which torch.compile cannot speed up: "
                                  "measure the compiled one with `ade-distill quantize --model FOLDER --compile` "
                                  "(then --quantize compiles by itself), or drop compile")
            return self  # the compiled kernel was compiled by quantize()
        if enabled and self.config.architecture == "pair_classifier":
            raise ConfigError("compile speeds up the tagging students' stage-1 pass; a pair_classifier student has "
                              "none: predict without compile")
        if enabled:
            self._check_compiler()
        self._compiled_stage1 = self._compile_stage1() if enabled else None
        return self

    def _check_compiler(self) -> None:
        if self.device.type == "cpu" and not any(map(shutil.which, ("g++", "c++", "clang++"))):
            raise ConfigError("compile on the CPU needs a C++ compiler for torch inductor (none of g++, c++, "
                              "clang++ is on PATH): install one (apt install g++) or predict without compile")

    def _compile_stage1(self) -> Any:
        return torch.compile(Stage1Module(self.module, self.config.architecture), dynamic=True,
                             options={"freezing": True})

    def _autocast(self) -> Any:
        """The autocast context of :attr:`precision` for the torch forward passes (none for fp32, so a caller's
        own autocast still applies)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @property
    def device(self) -> torch.device:
        if self.module is None:  # ONNX Runtime on CPU
            return torch.device("cpu")
        try:
            return next(self.module.parameters()).device
        except StopIteration:  # pragma: no cover - a quantized module may expose no float parameters
            return torch.device("cpu")

    # -- prediction ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        return encode_texts(self.tokenizer, texts, self.config.max_length)

    def predict(self, examples: Sequence[Example], batch_size: int = 64, *, split: str = "auto") -> list[Example]:
        """Predict spans and relations for examples (same ids, texts and order; gold spans are not read).

        Long texts (more sub-word tokens than ``max_length``) are split into sentences and their predictions
        mapped back to document offsets (``split="auto"``; ``"always"`` splits every text, ``"never"``
        truncates). See :mod:`ade_distill.student.predict`.
        """
        if self.config.architecture == "pair_classifier":  # relations between the input's entity mentions
            from ade_distill.student.pair_classifier import predict_pairs

            return predict_pairs(self, examples, batch_size=max(1, min(batch_size, 8)))
        from ade_distill.student.predict import predict_examples

        return predict_examples(self, examples, batch_size=batch_size, split=split)

    @torch.inference_mode()
    def extract_encoded(
        self, encodings: Sequence[Encoding], batch_size: int = 64
    ) -> list[tuple[list[tuple[int, int, str, float]], list[tuple[int, int, float]]]]:
        """Raw predictions per encoding: spans ``(start, end, label, score)`` in character offsets and
        relations ``(head_index, tail_index, score)`` into that span list. Batches are sorted by length and
        padded per batch."""
        if self.config.architecture == "pair_classifier":
            raise ConfigError("a pair_classifier student classifies given entity mentions: use predict() on records "
                              "that carry them")
        if self.module is not None:
            self.module.eval()
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        results: list[Any] = [None] * len(encodings)
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            batch = [encodings[i] for i in idx]
            ids, mask = self.pad(batch)
            ids, mask = ids.to(self.device), mask.to(self.device)
            if self.config.architecture == "pairwise":
                outs = self._extract_pairwise(batch, ids, mask)
            else:
                outs = self._extract_conditioned(batch, ids, mask)
            for i, o in zip(idx, outs, strict=True):
                results[i] = o
        return results

    def pad(self, batch: Sequence[Encoding]) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask of a batch, padded to its longest encoding (CPU tensors)."""
        pad = self.tokenizer.pad_token_id or 0
        width = max(len(e) for e in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, e in enumerate(batch):
            ids[b, : len(e)] = torch.tensor(e.input_ids)
            mask[b, : len(e)] = 1
        return ids, mask

    def stage1(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states and stage-1 logits for a padded batch (:func:`stage1_forward`), in torch or ONNX Runtime."""
        if self.onnx is not None:
            return self.onnx.stage1(ids, mask)
        assert self.module is not None
        with self._autocast():
            if self._compiled_stage1 is not None:
                states, logits = self._compiled_stage1(ids, mask)
            else:
                states, logits = stage1_forward(self.module, self.config.architecture, ids, mask)
        return states, logits.float()

    def stage2(self, states: torch.Tensor, index: torch.Tensor, *masks: torch.Tensor) -> torch.Tensor:
        """Stage-2 logits (:func:`stage2_forward`), in torch or ONNX Runtime."""
        if self.onnx is not None:
            return self.onnx.stage2(states, index, *masks)
        assert self.module is not None
        with self._autocast():
            return stage2_forward(self.module, self.config.architecture, states, index, *masks).float()

    def _extract_conditioned(self, batch: Sequence[Encoding], ids: torch.Tensor, mask: torch.Tensor) -> list[Any]:
        cfg = self.config
        states, head_logits = self.stage1(ids, mask)
        hp = torch.softmax(head_logits.float(), dim=-1)
        mentions: list[tuple[int, int, int, float]] = []
        for b, e in enumerate(batch):
            p = hp[b, list(e.first_token)].tolist()
            for ws, we, sc in _decode_words(p, cfg.head_threshold):
                mentions.append((b, ws, we, sc))
        tails_of: list[list[tuple[int, int, float]]] = [[] for _ in mentions]
        if mentions:
            width = ids.size(1)
            tw = torch.full((len(batch), width), -1, dtype=torch.long)
            for b, e in enumerate(batch):
                tw[b, : len(e)] = torch.tensor(e.token_word)
            index = torch.tensor([x[0] for x in mentions], dtype=torch.long)
            ws_t = torch.tensor([x[1] for x in mentions]).unsqueeze(1)
            we_t = torch.tensor([x[2] for x in mentions]).unsqueeze(1)
            rows = tw[index]
            mmask = ((rows >= ws_t) & (rows < we_t)).float().to(ids.device)
            index = index.to(ids.device)
            tp = torch.softmax(self.stage2(states, index, mmask).float(), dim=-1)
            for j, (b, _, _, _) in enumerate(mentions):
                p = tp[j, list(batch[b].first_token)].tolist()
                tails_of[j] = _decode_words(p, cfg.tail_threshold)
        head_label, tail_label = self.task.head_label, self.task.tail_label
        outs: list[Any] = []
        for b, e in enumerate(batch):
            spans: list[tuple[int, int, str, float]] = []
            where: dict[tuple[int, int, str], int] = {}
            rels: list[tuple[int, int, float]] = []
            for j, (mb, ws, we, hs) in enumerate(mentions):
                if mb != b:
                    continue
                key = (e.words[ws][0], e.words[we - 1][1], head_label)
                where[key] = len(spans)
                spans.append((*key, hs))
                for tws, twe, ts in tails_of[j]:
                    tkey = (e.words[tws][0], e.words[twe - 1][1], tail_label)
                    if tkey not in where:
                        where[tkey] = len(spans)
                        spans.append((*tkey, ts))
                    else:
                        s = spans[where[tkey]]
                        spans[where[tkey]] = (s[0], s[1], s[2], max(s[3], ts))
                    rels.append((where[key], where[tkey], hs * ts))
            outs.append((spans, rels))
        return outs

    def _extract_pairwise(self, batch: Sequence[Encoding], ids: torch.Tensor, mask: torch.Tensor) -> list[Any]:
        cfg = self.config
        states, entity_logits = self.stage1(ids, mask)
        ep = torch.softmax(entity_logits.float(), dim=-1)
        head_label, tail_label = self.task.head_label, self.task.tail_label
        per: list[tuple[list[Any], list[Any]]] = []
        for b, e in enumerate(batch):
            p = ep[b, list(e.first_token)].tolist()
            heads = _decode_words(p, cfg.head_threshold)
            tails = _decode_words(p, cfg.tail_threshold, b=3)  # the joint tag set: O, B/I-head, B/I-tail
            per.append((heads, tails))
        pb, hm, tm, refs = [], [], [], []
        width = ids.size(1)
        for b, (heads, tails) in enumerate(per):
            tw = batch[b].token_word
            for hi, (hws, hwe, _) in enumerate(heads):
                for ti, (tws, twe, _) in enumerate(tails):
                    pb.append(b)
                    hm.append([1.0 if hws <= w < hwe else 0.0 for w in tw] + [0.0] * (width - len(tw)))
                    tm.append([1.0 if tws <= w < twe else 0.0 for w in tw] + [0.0] * (width - len(tw)))
                    refs.append((b, hi, ti))
        probs: list[float] = []
        if pb:
            d = ids.device
            pl = self.stage2(states, torch.tensor(pb, device=d), torch.tensor(hm, device=d), torch.tensor(tm, device=d))
            probs = torch.softmax(pl.float(), dim=-1)[:, 1].tolist()
        outs: list[Any] = []
        for b, (heads, tails) in enumerate(per):
            e = batch[b]
            spans = [(e.words[ws][0], e.words[we - 1][1], head_label, s) for ws, we, s in heads]
            spans += [(e.words[ws][0], e.words[we - 1][1], tail_label, s) for ws, we, s in tails]
            rels = [
                (hi, len(heads) + ti, p)
                for (rb, hi, ti), p in zip(refs, probs, strict=True)
                if rb == b and p >= cfg.relation_threshold
            ]
            outs.append((spans, rels))
        return outs

    def to_example(
        self, ex: Example, spans: Sequence[tuple[int, int, str, float]], rels: Sequence[tuple[int, int, float]],
        meta: dict[str, Any] | None = None,
    ) -> Example:
        """Build the output record (span ids ``T1..`` in text order) from raw predictions."""
        order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1], spans[i][2]))
        new_id = {old: f"T{k + 1}" for k, old in enumerate(order)}
        out_spans = [
            Span(id=new_id[i], label=spans[i][2], start=spans[i][0], end=spans[i][1],
                 text=ex.text[spans[i][0] : spans[i][1]], score=_clip(spans[i][3]))
            for i in order
        ]
        label = self.task.primary.label
        seen: dict[tuple[str, str], float] = {}
        for h, t, s in rels:
            key = (new_id[h], new_id[t])
            seen[key] = max(seen.get(key, 0.0), s)
        out_rels = [
            Relation(head=h, tail=t, label=label, score=_clip(s))
            for (h, t), s in sorted(seen.items(), key=lambda kv: (int(kv[0][0][1:]), int(kv[0][1][1:])))
        ]
        m = dict(ex.meta)
        m["predicted_by"] = self.describe()
        if meta:
            m.update(meta)
        return Example(id=ex.id, text=ex.text, spans=tuple(out_spans), relations=tuple(out_rels), meta=m)

    def describe(self) -> dict[str, Any]:
        out = {
            "model": self.source,
            "architecture": self.config.architecture,
            "encoder": self.config.encoder,
            "task": self.task.name,
            "quantized": self.quantized,
        }
        if self.onnx is not None:  # (torch fp32 predictions keep the keys they always had)
            out["runtime"] = "onnx"
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self._compiled_stage1 is not None:
            out["compiled"] = True
        return out


PRECISIONS = ("fp32", "bf16")
RUNTIMES = ("torch", "onnx")


def check_precision(precision: str, *, runtime: str = "torch", quantize: bool = False, compile: bool = False) -> None:
    """Raises ConfigError for an unknown runtime or precision, bf16 where it does not apply (the ONNX runtime, an
    int8 student) or compile with the ONNX runtime. (Whether an int8 student compiles depends on the kernel its guard
    measured: :meth:`StudentExtractor.set_compile`.)"""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "bf16" and (runtime != "torch" or quantize):
        what, fix = (("the onnx runtime", "use runtime torch") if runtime != "torch"
                     else ("an int8 (quantized) student", "drop quantize"))
        raise ConfigError(f"precision bf16 applies to the float torch student, not to {what}: {fix}, or use "
                          f"precision fp32")
    if compile and runtime != "torch":
        raise ConfigError("compile applies to the torch student, not to the onnx runtime: use runtime torch, or drop "
                          "compile")


def _decode_words(probs: Sequence[Sequence[float]], threshold: float, b: int = 1) -> list[tuple[int, int, float]]:
    """Word spans ``(ws, we, score)`` of one entity type from per-word class probabilities whose columns ``b``
    and ``b + 1`` are that type's P(B) and P(I) (see :func:`~ade_distill.student.encode.decode_bio`)."""
    return decode_bio([x[b] + x[b + 1] for x in probs], [x[b] - x[b + 1] for x in probs], threshold)


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def config_summary(config: StudentConfig) -> str:
    return json.dumps(config.model_dump(exclude={"provenance", "metrics"}), sort_keys=True)
