"""Student stage: the small, fast, white-box extractor distilled from silver (or trained on gold) labels.

Architectures (``TrainConfig.architecture``):

* ``drug_conditioned`` (default; Gu et al. 2023, generalized through the TaskSpec head → tail): a shared
  Hugging Face encoder; stage 1 tags head mentions (BIO); stage 2 mean-pools each head mention, concatenates it to
  every token state and tags that mention's tails (BIO) — one pass per head mention. Trained jointly with gold
  head mentions in stage 2. :mod:`ade_distill.student.modules`.
* ``pairwise`` (the paper's ablation): joint BIO tagger for both entity types + a classifier over every candidate
  (head, tail) pair. :mod:`ade_distill.student.pairwise`.

Library::

    from ade_distill.student import StudentExtractor, TrainConfig, train_student
    path = train_student(load_task("ade"), train, dev, TrainConfig(epochs=3), Path("runs/student"))
    model = StudentExtractor.from_pretrained(path)          # quantize=True for dynamic int8 on CPU
    preds = model.predict(examples, batch_size=64)           # list[Example], with Span/Relation scores
    ens = EnsembleExtractor.from_pretrained([a, b, c])       # the vote of reproduce; same predict interface
    model = StudentExtractor.from_pretrained(path, runtime="onnx")   # after `ade-distill export-onnx`

CLI::

    ade-distill train --task ade --train silver.jsonl --dev dev.jsonl --out runs/student
    ade-distill predict --model runs/student --input pubmed_abstracts.jsonl --out preds.jsonl
    ade-distill predict --model runs/a --model runs/b --model runs/c [--min-votes 2] --input ... --out ...
    ade-distill export-onnx --model runs/student [--int8 --check-gold dev.jsonl]   # then predict --runtime onnx

Several GPUs (or CPU processes) through Hugging Face Accelerate — the same command under ``accelerate launch``::

    accelerate launch --multi_gpu --num_processes 4 -m ade_distill train --task ade --train silver.jsonl \\
        --dev dev.jsonl --out runs/student
    # without CUDA the same --multi_gpu launch runs 2 CPU processes (torchrun + gloo); tested:
    accelerate launch --multi_gpu --num_processes 2 -m ade_distill train ... --threads 1

spaCy::

    nlp.add_pipe("ade_distill", config={"model": "runs/student"})   # doc.ents, doc._.relations

Modules: ``encoders`` (encoder aliases), ``encode`` (char spans ↔ word BIO ↔ first-sub-word labels), ``data``
(features, collation, length-grouped batches), ``modules``/``pairwise`` (torch modules), ``config``
(``StudentConfig``, saved as ``student.json``), ``model`` (``StudentExtractor``: predict/save/load), ``train``,
``predict`` (documents, files), ``ensemble`` (``EnsembleExtractor``: several folders by vote), ``onnx_export``
(export, export check, int8 behind an accuracy guard), ``onnx_runtime`` (ONNX Runtime forward passes), ``card``
(model card), ``spacy_component``, ``cli``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StudentExtractor", "EnsembleExtractor", "StudentConfig", "TrainConfig", "train_student",
           "resolve_encoder"]


def __getattr__(name: str) -> Any:  # lazy: `import ade_distill.student` must not import torch
    if name == "StudentExtractor":
        from ade_distill.student.model import StudentExtractor

        return StudentExtractor
    if name == "EnsembleExtractor":
        from ade_distill.student.ensemble import EnsembleExtractor

        return EnsembleExtractor
    if name == "StudentConfig":
        from ade_distill.student.config import StudentConfig

        return StudentConfig
    if name in ("TrainConfig", "train_student"):
        from ade_distill.student import train

        return getattr(train, name)
    if name == "resolve_encoder":
        from ade_distill.student.encoders import resolve_encoder

        return resolve_encoder
    raise AttributeError(name)
