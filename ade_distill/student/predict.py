"""Prediction over examples, documents and files, with long texts split into sentences.

``split="auto"`` (default): a text that fits in the student's ``max_length`` sub-word tokens is predicted as is
(gold sentences are never re-split); a longer text is split into sentences
(:func:`ade_distill.data.sentences.split_sentences`), each sentence is predicted, and spans are shifted back by
the sentence's start so offsets point into the original text. Relations never cross sentences in that case. A
sentence that is itself longer than ``max_length`` is truncated: words past the limit get no predictions and
the output record says so in ``meta.truncated``. A student trained with ``window_long_texts`` packs consecutive
sentences into windows of up to ``max_length`` tokens instead (as in its training; see
:mod:`ade_distill.student.windows`), so relations can cross sentences inside a window.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ade_distill.data.sentences import split_sentences
from ade_distill.errors import ConfigError
from ade_distill.records import Example
from ade_distill.student.windows import sentence_windows

if TYPE_CHECKING:
    from ade_distill.data.standoff import FormatOptions
    from ade_distill.student.model import StudentExtractor

log = logging.getLogger(__name__)
SPLIT_MODES = ("auto", "always", "never")


def predict_examples(
    model: StudentExtractor, examples: Sequence[Example], *, batch_size: int = 64, split: str = "auto"
) -> list[Example]:
    """Predict every example (see the module docstring for ``split``). Returns examples in input order."""
    if split not in SPLIT_MODES:
        raise ConfigError(f"split must be one of {SPLIT_MODES}, not {split!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    texts = [ex.text for ex in examples]
    whole = model.encode(texts) if split != "always" else [None] * len(texts)
    # units: (example index, offset into the example text, encoding)
    units: list[tuple[int, int, Any]] = []
    pieces: list[tuple[int, int, str]] = []
    for i, enc in enumerate(whole):
        if enc is not None and (not enc.truncated or split == "never"):
            units.append((i, 0, enc))
        else:
            if model.config.window_long_texts:  # sentences packed into windows, as in training
                ranges = sentence_windows(model.tokenizer, texts[i], model.config.max_length)
            else:
                ranges = split_sentences(texts[i]) or [(0, len(texts[i]))]
            pieces.extend((i, s, texts[i][s:e]) for s, e in ranges)
    if pieces:
        for (i, s, _), enc in zip(pieces, model.encode([p[2] for p in pieces]), strict=True):
            units.append((i, s, enc))
    raw = model.extract_encoded([u[2] for u in units], batch_size=batch_size)
    spans: list[list[tuple[int, int, str, float]]] = [[] for _ in examples]
    rels: list[list[tuple[int, int, float]]] = [[] for _ in examples]
    n_units = [0] * len(examples)
    truncated = [False] * len(examples)
    for (i, off, enc), (sp, rl) in zip(units, raw, strict=True):
        base = len(spans[i])
        spans[i].extend((s + off, e + off, lab, sc) for s, e, lab, sc in sp)
        rels[i].extend((h + base, t + base, sc) for h, t, sc in rl)
        n_units[i] += 1
        truncated[i] = truncated[i] or enc.truncated
    out = []
    for i, ex in enumerate(examples):
        meta: dict[str, Any] = {}
        if n_units[i] > 1:
            meta["windows" if model.config.window_long_texts else "sentences"] = n_units[i]
        if truncated[i]:
            meta["truncated"] = True
        out.append(model.to_example(ex, spans[i], rels[i], meta))
    n_trunc = sum(truncated)
    if n_trunc:
        log.warning("%d of %d texts were longer than max_length=%d even after sentence splitting; truncated",
                    n_trunc, len(examples), model.config.max_length)
    return out


def _chunks(it: Iterable[Example], size: int) -> Iterable[list[Example]]:
    buf: list[Example] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def predict_documents(
    model: Any, documents: Iterable[Example], *, batch_size: int = 64, split: str = "auto", chunk: int = 2048
) -> Iterator[Example]:
    """Predictions for a stream of documents, in input order, ``chunk`` documents per ``model.predict`` call
    (a :class:`StudentExtractor` or an ensemble). The one loop from documents to records: :func:`predict_file`
    runs it over a file, and the Ray engine (:mod:`ade_distill.student.ray_engine`) over each shard, so both
    give the same records (batches are formed within a chunk, so the same chunks give the same numbers). After the
    first chunk the process's heap is frozen (:func:`freeze_heap_once`)."""
    for docs in _chunks(documents, chunk):
        yield from model.predict(docs, batch_size=batch_size, split=split)
        freeze_heap_once()


_heap_frozen = False


def freeze_heap_once() -> None:
    """Once per process, after the first chunk is predicted (the model loaded, a compiled pass built): collect
    garbage, then move every object still alive out of the cyclic garbage collector's reach (:func:`gc.freeze`).

    A loaded student is several hundred thousand Python objects (torch, transformers, a compiled graph's
    machinery), and each full collection that a long prediction triggers walks them all: up to 0.6 s per pass of
    2,000 sentences on 2 CPU cores (``benchmarks/predict_overheads.py``). Frozen objects are still freed when their
    last reference goes; only a reference cycle among them is never collected, which a process that loads one model
    and predicts does not build.
    """
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def predict_file(
    model_dir: str | Path | Sequence[str | Path],
    input_path: str | Path,
    out_path: str | Path,
    *,
    batch_size: int = 64,
    split: str = "auto",
    input_format: str | None = None,
    label_map: FormatOptions | str | Path | None = None,
    quantize: bool = False,
    chunk: int = 2048,
    min_votes: int | None = None,
    boundary: str = "exact",
    runtime: str = "torch",
    precision: str = "fp32",
    compile: bool = False,
) -> dict[str, Any]:
    """Predict every document of ``input_path`` (records / abstracts JSONL / MEDLINE XML / text, sniffed) and
    write records in the common schema to ``out_path`` (atomically). Returns counts and timing. ``label_map``:
    the label map of BRAT/BioC input.

    Several model folders predict as an ensemble (:class:`~ade_distill.student.ensemble.EnsembleExtractor`: a
    relation needs ``min_votes`` members, by default a majority); ``runtime="onnx"`` runs each folder's ONNX
    export (``quantize``: its guarded int8 model); ``precision="bf16"`` runs torch under bfloat16 autocast and
    ``compile`` compiles its stage-1 pass."""
    from ade_distill.data.unlabeled import iter_documents
    from ade_distill.records import write_examples
    from ade_distill.student.ensemble import load_extractor

    dirs = [model_dir] if isinstance(model_dir, str | Path) else list(model_dir)
    model = load_extractor(dirs, min_votes=min_votes, boundary=boundary, quantize=quantize, runtime=runtime,
                           precision=precision, compile=compile)
    stats = {"documents": 0, "spans": 0, "relations": 0, "seconds": 0.0}
    t0 = time.perf_counter()

    def gen() -> Iterable[Example]:
        docs = iter_documents(input_path, input_format, options=label_map)
        for ex in predict_documents(model, docs, batch_size=batch_size, split=split, chunk=chunk):
            stats["documents"] += 1
            stats["spans"] += len(ex.spans)
            stats["relations"] += len(ex.relations)
            yield ex

    write_examples(out_path, gen())
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    return stats
