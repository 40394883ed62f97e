"""The ``hf:`` backend on a tiny randomly initialised causal LM built here (no download): the real path —
chat template, greedy generation, token counts, finish reasons — and the job records its nonsense output as a
parse failure or an empty answer, never as a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from ade_distill.errors import BackendError
from ade_distill.records import Example, read_examples
from ade_distill.tasks import load_task
from ade_distill.teacher.label import label_examples

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def _tiny_lm(folder: Path, *, chat_template: bool = True) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from ade_distill.student.encoders import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())  # a real WordPiece vocabulary, shipped offline
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                     eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def test_hf_backend_labels_through_chat_template(tiny_lm: Path, tmp_path: Path) -> None:
    texts = ["Aspirin caused a rash.", "Nausea followed cisplatin."]
    summary = label_examples(load_task("ade"), f"hf:{tiny_lm}", [Example(id=f"e{i}", text=t) for i, t in
                                                                   enumerate(texts)],
                             tmp_path / "out.jsonl", progress=False, max_tokens=8)
    out = list(read_examples(tmp_path / "out.jsonl"))
    assert [e.id for e in out] == ["e0", "e1"] and summary.records == 2
    for e in out:  # random weights: whatever came out is accounted for with a status, tokens are real counts
        assert e.meta["status"] in ("ok", "parse_error", "truncated")
        assert e.meta["usage"]["prompt_tokens"] > 20 and 0 < e.meta["usage"]["completion_tokens"] <= 8
    # greedy decoding is deterministic: a second job with a fresh cache gives the same file
    label_examples(load_task("ade"), f"hf:{tiny_lm}", [Example(id=f"e{i}", text=t) for i, t in enumerate(texts)],
                   tmp_path / "out2.jsonl", cache_path=tmp_path / "c2.sqlite", progress=False, max_tokens=8)
    strip = [{**e.model_dump(), "meta": {k: v for k, v in e.meta.items() if k != "cache"}} for e in out]
    again = [{**e.model_dump(), "meta": {k: v for k, v in e.meta.items() if k != "cache"}}
             for e in read_examples(tmp_path / "out2.jsonl")]
    assert strip == again


def test_hf_model_without_chat_template_is_a_clear_error(tmp_path: Path) -> None:
    folder = _tiny_lm(tmp_path / "plain", chat_template=False)
    with pytest.raises(BackendError, match="no chat template"):
        label_examples(load_task("ade"), f"hf:{folder}", [Example(id="a", text="Aspirin caused a rash.")],
                       tmp_path / "out.jsonl", progress=False, max_tokens=4)
