"""The optional interaction stage-2 layer (``tail_head="interaction"``) on a tiny random BERT: shapes, what it
can express that the linear layer cannot, validation, and save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import Example
from ade_distill.student.data import build_features, collate
from ade_distill.student.encode import encode_texts
from ade_distill.student.model import STUDENT_JSON, StudentConfig, StudentExtractor, build_module
from ade_distill.student.modules import DrugConditionedTagger
from ade_distill.student.train import TrainConfig


def _tiny_encoder():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64))


@pytest.mark.parametrize("tail_head", ["linear", "interaction"])
def test_forward_shapes_and_loss(tail_head: str, tokenizer, ade_task, ade_gold: list[Example]) -> None:
    exs = ade_gold[:6] + ade_gold[-2:]  # positives and ADE-NEG
    feats = build_features(ade_task, exs, encode_texts(tokenizer, [e.text for e in exs], 64))
    batch = collate(feats, tokenizer.pad_token_id, "drug_conditioned")
    module = DrugConditionedTagger(_tiny_encoder(), 0.1, tail_head=tail_head)
    out = module(**batch)
    b, t = batch["input_ids"].shape
    m = sum(len(f.mentions) for f in feats)
    assert m > 0
    assert out["head_logits"].shape == (b, t, 3)
    assert out["tail_logits"].shape == (m, t, 3)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    if tail_head == "interaction":
        assert not hasattr(module, "tail_classifier")
        grads = [p.grad for p in module.tail_interaction.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def _two_mentions(tail_head: str) -> torch.Tensor:
    """Tail logits (2, T, 3) of two different mentions of the same sentence."""
    torch.manual_seed(1)
    module = DrugConditionedTagger(_tiny_encoder(), 0.0, tail_head=tail_head).eval()
    states = torch.randn(1, 7, 32)
    index = torch.tensor([0, 0])
    mask = torch.tensor([[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 0]], dtype=torch.float)
    with torch.no_grad():
        return module.tail_logits(states, index, mask)


def test_linear_head_shifts_every_token_by_the_same_amount() -> None:
    logits = _two_mentions("linear")
    assert logits.shape == (2, 7, 3)
    diff = logits[0] - logits[1]  # (T, 3)
    assert diff.abs().max() > 1e-4  # the mention matters...
    assert torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-5)  # ...but only as one shift for all tokens


def test_interaction_head_lets_each_token_depend_on_the_mention() -> None:
    logits = _two_mentions("interaction")
    assert logits.shape == (2, 7, 3)
    diff = logits[0] - logits[1]
    assert not torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-3)
    assert (diff - diff.mean(0, keepdim=True)).abs().max() > 1e-3


def test_interaction_head_matches_its_definition() -> None:
    """MLP over [h_t; v; h_t * v] with v the mean of the mention's token states."""
    torch.manual_seed(2)
    module = DrugConditionedTagger(_tiny_encoder(), 0.0, tail_head="interaction").eval()
    states = torch.randn(2, 5, 32)
    index = torch.tensor([0, 1, 1])
    mask = torch.tensor([[0, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.float)
    with torch.no_grad():
        got = module.tail_logits(states, index, mask)
        rows = states[index]
        v = ((mask.unsqueeze(-1) * rows).sum(1) / mask.sum(1, keepdim=True)).unsqueeze(1).expand_as(rows)
        want = module.tail_interaction(torch.cat([rows, v, rows * v], dim=-1))
    assert torch.allclose(got, want, atol=1e-5)


def test_invalid_tail_head() -> None:
    with pytest.raises(ValueError, match="tail_head"):
        DrugConditionedTagger(_tiny_encoder(), 0.1, tail_head="bilinear")
    with pytest.raises(ValidationError):
        TrainConfig(tail_head="bilinear")
    with pytest.raises(ValidationError):
        StudentConfig(encoder="minilm", tail_head="bilinear")


def test_tail_head_is_for_the_drug_conditioned_architecture_only() -> None:
    with pytest.raises(ValidationError, match="drug_conditioned"):
        TrainConfig(architecture="pairwise", tail_head="interaction")
    with pytest.raises(ConfigError, match="tail_head"):
        TrainConfig.build(architecture="pairwise", tail_head="interaction")
    assert TrainConfig(architecture="pairwise").tail_head == "linear"
    assert TrainConfig(tail_head="interaction").tail_head == "interaction"


def test_build_module_passes_tail_head() -> None:
    m = build_module(StudentConfig(encoder="minilm", tail_head="interaction"), _tiny_encoder())
    assert isinstance(m, DrugConditionedTagger) and m.tail_head == "interaction"
    assert build_module(StudentConfig(encoder="minilm"), _tiny_encoder()).tail_head == "linear"


def _tiny_student(tokenizer, task, tail_head: str) -> StudentExtractor:
    module = DrugConditionedTagger(_tiny_encoder(), 0.1, tail_head=tail_head)
    with torch.no_grad():  # every word a head mention, so stage 2 runs and decides the relations
        module.head_classifier.bias.copy_(torch.tensor([-5.0, 5.0, 0.0]))
    cfg = StudentConfig(encoder="minilm", max_length=64, tail_head=tail_head, head_threshold=0.5,
                        tail_threshold=0.4)
    return StudentExtractor(module, tokenizer, task, cfg)


def _outputs(preds: list[Example]) -> list[tuple]:
    """What a prediction says (its meta names the model folder, which differs after saving)."""
    return [(e.id, e.text, e.spans, e.relations) for e in preds]


def test_save_and_load_round_trip_interaction(tmp_path: Path, tokenizer, ade_task,
                                              tiny_train: list[Example]) -> None:
    sents = tiny_train[:4]
    model = _tiny_student(tokenizer, ade_task, "interaction")
    before = model.predict(sents)
    assert sum(len(e.relations) for e in before) > 0  # the comparison below is not about empty outputs
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / STUDENT_JSON).read_text())
    assert saved["tail_head"] == "interaction"
    loaded = StudentExtractor.from_pretrained(tmp_path / "m")
    assert loaded.config.tail_head == "interaction" and loaded.module.tail_head == "interaction"
    sd, sd2 = model.module.state_dict(), loaded.module.state_dict()
    assert sd.keys() == sd2.keys() and any(k.startswith("tail_interaction.") for k in sd)
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    after = loaded.predict(sents)
    assert _outputs(after) == _outputs(before)


def test_student_json_without_tail_head_loads_as_linear(tmp_path: Path, tokenizer, ade_task,
                                                        tiny_train: list[Example]) -> None:
    """Students saved before the option existed have no tail_head in student.json."""
    sents = tiny_train[:3]
    model = _tiny_student(tokenizer, ade_task, "linear")
    before = model.predict(sents)
    model.save_pretrained(tmp_path / "old")
    path = tmp_path / "old" / STUDENT_JSON
    raw = json.loads(path.read_text())
    del raw["tail_head"]
    path.write_text(json.dumps(raw, indent=2) + "\n")
    loaded = StudentExtractor.from_pretrained(tmp_path / "old")
    assert loaded.config.tail_head == "linear" and loaded.module.tail_head == "linear"
    assert _outputs(loaded.predict(sents)) == _outputs(before)


def test_student_json_of_interaction_weights_must_say_so(tmp_path: Path, tokenizer, ade_task) -> None:
    """Interaction weights under a student.json that says linear do not load silently (strict loading)."""
    model = _tiny_student(tokenizer, ade_task, "interaction")
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / STUDENT_JSON
    raw = json.loads(path.read_text())
    raw["tail_head"] = "linear"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match="weights do not fit"):
        StudentExtractor.from_pretrained(tmp_path / "m")


@pytest.mark.slow
def test_train_student_with_interaction_head(tmp_path: Path, ade_task, tiny_train: list[Example]) -> None:
    """TrainConfig.tail_head reaches the saved student (a few MiniLM steps)."""
    from ade_distill.student.train import train_student

    cfg = TrainConfig.build(tail_head="interaction", epochs=1, batch_size=4, max_steps=2, max_length=64,
                            patience=0, threads=2, seed=3)
    out = train_student(ade_task, tiny_train[:8], tiny_train[:4], cfg, tmp_path / "model")
    assert json.loads((out / STUDENT_JSON).read_text())["tail_head"] == "interaction"
    loaded = StudentExtractor.from_pretrained(out)
    assert loaded.module.tail_head == "interaction"
    preds = loaded.predict(tiny_train[:4])
    assert [e.id for e in preds] == [e.id for e in tiny_train[:4]]
