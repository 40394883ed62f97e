"""spaCy pipeline component ``ade_distill``: runs a student on each Doc, sets ``doc.ents`` and the extension
attributes ``doc._.relations`` and ``span._.score``.

    import spacy, ade_distill.student.spacy_component  # registers the factory (or via the entry point)
    nlp = spacy.blank("en")
    nlp.add_pipe("ade_distill", config={"model": "runs/student"})
    doc = nlp("Intravenous azithromycin-induced ototoxicity.")
    doc.ents                 # (azithromycin, ototoxicity) with labels DRUG / ADE
    doc._.relations          # [{"head": azithromycin, "tail": ototoxicity, "label": "ADE", "score": 0.97}]

Several student folders predict as an ensemble, by the relation vote ``reproduce`` uses
(:class:`~ade_distill.student.ensemble.EnsembleExtractor`), ``runtime: "onnx"`` runs each folder's ONNX export, and
``precision: "bf16"`` (bfloat16 autocast) and ``compile: true`` (``torch.compile``) speed up torch::

    nlp.add_pipe("ade_distill", config={"model": ["runs/a", "runs/b", "runs/c"], "min_votes": 2})
    nlp.add_pipe("ade_distill", config={"model": "runs/student", "runtime": "onnx"})
    nlp.add_pipe("ade_distill", config={"model": "runs/student", "precision": "bf16", "compile": True})

Entities are snapped outward to spaCy tokens (``alignment_mode="expand"``). ``doc.ents`` cannot hold overlapping
spans: when a head and a tail mention overlap, ``spacy.util.filter_spans`` keeps the longest, and every predicted
span (overlapping or not) is also in ``doc.spans["ade_distill"]``. Relations point to the spans of
``doc.spans["ade_distill"]``. Existing ``doc.ents`` are replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ade_distill.records import Example

SPAN_KEY = "ade_distill"

if not Doc.has_extension("relations"):
    Doc.set_extension("relations", default=None)
if not Span.has_extension("score"):
    Span.set_extension("score", default=None)


class AdeDistillComponent:
    """Wraps a :class:`~ade_distill.student.model.StudentExtractor` loaded from ``model``, or the ensemble of
    several folders (``model`` a list; ``min_votes`` and ``boundary`` as in ``ade-distill predict``)."""

    def __init__(self, nlp: Language, name: str, model: str | list[str], batch_size: int = 64,
                 quantize: bool = False, min_votes: int | None = None, boundary: str = "exact",
                 runtime: str = "torch", precision: str = "fp32", compile: bool = False) -> None:
        from ade_distill.student.ensemble import load_extractor

        self.name = name
        self.model_path = model
        self.batch_size = batch_size
        paths = [model] if isinstance(model, str) else list(model)
        self.student = load_extractor(paths, min_votes=min_votes, boundary=boundary, quantize=quantize,
                                      runtime=runtime, precision=precision, compile=compile)

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        size = batch_size or self.batch_size
        buf: list[Doc] = []
        for doc in stream:
            buf.append(doc)
            if len(buf) >= size:
                yield from self._process(buf)
                buf = []
        if buf:
            yield from self._process(buf)

    def _process(self, docs: list[Doc]) -> list[Doc]:
        exs = [Example(id=str(i), text=d.text) for i, d in enumerate(docs)]
        preds = self.student.predict(exs, batch_size=self.batch_size)
        for doc, pred in zip(docs, preds, strict=True):
            by_id: dict[str, Span] = {}
            for s in pred.spans:
                assert s.start is not None and s.end is not None  # predictions always have offsets
                span = doc.char_span(s.start, s.end, label=s.label, alignment_mode="expand")
                if span is None:  # only whitespace: cannot happen for tokenizer words, kept defensive
                    continue
                span._.score = s.score
                by_id[s.id] = span
            spans = list(by_id.values())
            doc.spans[SPAN_KEY] = spans
            doc.ents = filter_spans(spans)
            doc._.relations = [
                {"head": by_id[r.head], "tail": by_id[r.tail], "label": r.label, "score": r.score}
                for r in pred.relations
                if r.head in by_id and r.tail in by_id
            ]
        return docs


@Language.factory(
    "ade_distill",
    default_config={"model": None, "batch_size": 64, "quantize": False, "min_votes": None, "boundary": "exact",
                    "runtime": "torch", "precision": "fp32", "compile": False},
)
def make_ade_distill(nlp: Language, name: str, model: str | list[str], batch_size: int, quantize: bool,
                     min_votes: int | None, boundary: str, runtime: str, precision: str,
                     compile: bool) -> AdeDistillComponent:
    """spaCy factory: ``nlp.add_pipe("ade_distill", config={"model": DIR})``; ``"model": [DIR, ...]`` for an
    ensemble."""
    from ade_distill.errors import ConfigError

    if not model:
        raise ConfigError('the ade_distill component needs config={"model": "<student folder>"} (or a list of '
                          'folders for an ensemble)')
    model = str(model) if isinstance(model, str | Path) else [str(m) for m in model]
    return AdeDistillComponent(nlp, name, model, batch_size=batch_size, quantize=quantize, min_votes=min_votes,
                               boundary=boundary, runtime=runtime, precision=precision, compile=compile)
