"""Loading an encoder checkpoint (student.model.load_encoder): transformers' per-load report table is replaced by
one warning that names only the weights that matter to the student."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ade_distill.student.encoders import resolve_encoder
from ade_distill.student.model import load_encoder

LOST = "encoder.layer.0.output.dense.weight"


def _tiny_mlm_checkpoint(folder: Path, drop: str | None = None) -> Path:
    """A one-layer BERT saved with a masked-LM head and no pooler, as ``adapt-encoder`` writes it."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=37))
    state = {k: v for k, v in model.state_dict().items() if drop is None or not k.endswith(drop)}
    model.save_pretrained(folder, state_dict=state)
    AutoTokenizer.from_pretrained(resolve_encoder("minilm")).save_pretrained(folder)
    return folder


@pytest.fixture
def transformers_reports() -> Iterator[list[str]]:
    """Messages transformers' loader logs at WARNING and above while the test runs."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("transformers.modeling_utils")
    handler, level = Collect(logging.WARNING), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_an_adapted_checkpoint_loads_without_a_report(tmp_path: Path, transformers_reports: list[str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModel

    folder = _tiny_mlm_checkpoint(tmp_path / "enc")
    AutoModel.from_pretrained(folder)  # the control: transformers itself reports this folder
    assert any("LOAD REPORT" in m for m in transformers_reports)
    transformers_reports.clear()
    with caplog.at_level(logging.WARNING, logger="ade_distill"):
        encoder, tokenizer = load_encoder(str(folder))
    assert type(encoder).__name__ == "BertModel" and tokenizer.is_fast
    assert not any("LOAD REPORT" in m for m in transformers_reports)  # the head (cls.*) and pooler: not used
    assert not [r for r in caplog.records if r.name.startswith("ade_distill")]
    AutoModel.from_pretrained(folder)  # the report is dropped for that load only
    assert any("LOAD REPORT" in m for m in transformers_reports)


def test_a_missing_encoder_weight_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _tiny_mlm_checkpoint(tmp_path / "enc", drop=LOST)
    with caplog.at_level(logging.WARNING, logger="ade_distill"):
        load_encoder(str(folder))
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("ade_distill")]
    assert len(msgs) == 1 and LOST in msgs[0] and "1 weight(s) missing" in msgs[0] and str(folder) in msgs[0]


def test_the_absent_mlm_head_of_minilm_is_not_called_corrupted(transformers_reports: list[str]) -> None:
    """all-MiniLM-L6-v2 ships no masked-LM head: transformers calls the untied head bias "corrupted" (the
    control), the quiet loader drops that message (adapt-encoder counts the fresh head weights instead)."""
    from transformers import AutoModelForMaskedLM

    from ade_distill.student.model import from_pretrained_quietly

    path = resolve_encoder("minilm")
    AutoModelForMaskedLM.from_pretrained(path)
    assert any("seem corrupted" in m for m in transformers_reports)
    transformers_reports.clear()
    _, info = from_pretrained_quietly(AutoModelForMaskedLM, path)
    assert not any("seem corrupted" in m or "LOAD REPORT" in m for m in transformers_reports)
    assert "cls.predictions.decoder.bias" in info["missing_keys"]


def test_a_corrupted_tie_outside_the_mlm_head_is_still_reported() -> None:
    from ade_distill.student.model import _DropLoadReport

    def passes(msg: str) -> bool:
        return _DropLoadReport().filter(logging.LogRecord("transformers.modeling_utils", logging.WARNING, "", 0,
                                                          msg, None, None))

    head = ("This checkpoint seem corrupted. The tied weights mapping for this model specifies to tie "
            "cls.predictions.bias to cls.predictions.decoder.bias, but both are absent from the checkpoint")
    assert not passes(head)
    assert passes(head.replace("cls.predictions.bias", "bert.embeddings.word_embeddings.weight"))
    assert passes("some other warning")
