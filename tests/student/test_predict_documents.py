"""predict_documents: the chunked loop behind `ade-distill predict` and the Ray engine."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ade_distill.records import Example
from ade_distill.student import predict


class _Echo:
    """A stand-in model that returns its input and records each call's size."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, examples: Sequence[Example], batch_size: int = 64, *, split: str = "auto") -> list[Example]:
        self.calls.append(len(examples))
        return list(examples)


def test_chunks_in_order_and_the_heap_is_frozen_once(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(predict, "_heap_frozen", False)
    monkeypatch.setattr(predict.gc, "collect", lambda: events.append("collect"))
    monkeypatch.setattr(predict.gc, "freeze", lambda: events.append("freeze"))
    docs = [Example(id=f"d{i}", text=f"text {i}") for i in range(7)]
    model = _Echo()
    out = []
    for ex in predict.predict_documents(model, docs, chunk=3):
        out.append(ex.id)
        events.append(ex.id)
    assert out == [d.id for d in docs] and model.calls == [3, 3, 1]
    # collected then frozen after the first chunk (model loaded and warm), and never again in this process
    assert events[:5] == ["d0", "d1", "d2", "collect", "freeze"] and events.count("freeze") == 1
    list(predict.predict_documents(model, docs, chunk=3))
    assert events.count("freeze") == 1
