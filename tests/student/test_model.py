"""Forward shapes and losses of both architectures on a tiny random BERT (no weights loaded)."""

from __future__ import annotations

import pytest
import torch

from ade_distill.records import Example, Relation, Span
from ade_distill.student.data import FeatureStats, build_features, collate, length_grouped_batches
from ade_distill.student.encode import encode_texts
from ade_distill.student.modules import DrugConditionedTagger
from ade_distill.student.pairwise import PairwiseExtractor


def _tiny_encoder():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64))


@pytest.mark.parametrize("architecture", ["drug_conditioned", "pairwise"])
def test_forward_shapes_and_loss(architecture, tokenizer, ade_task, ade_gold) -> None:
    exs = ade_gold[:6] + ade_gold[-2:]  # positives and ADE-NEG
    encs = encode_texts(tokenizer, [e.text for e in exs], 64)
    feats = build_features(ade_task, exs, encs)
    batch = collate(feats, tokenizer.pad_token_id, architecture)
    enc = _tiny_encoder()
    module = DrugConditionedTagger(enc) if architecture == "drug_conditioned" else PairwiseExtractor(enc)
    out = module(**batch)
    b, t = batch["input_ids"].shape
    if architecture == "drug_conditioned":
        m = sum(len(f.mentions) for f in feats)
        assert out["head_logits"].shape == (b, t, 3)
        assert out["tail_logits"].shape == (m, t, 3)
    else:
        p = sum(len(f.pairs) for f in feats)
        assert out["entity_logits"].shape == (b, t, 5)
        assert out["pair_logits"].shape == (p, 2)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()


def test_stage2_equals_explicit_concatenation() -> None:
    module = DrugConditionedTagger(_tiny_encoder())
    states = torch.randn(2, 5, 32)
    index = torch.tensor([0, 1, 1])
    mask = torch.tensor([[0, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.float)
    fast = module.tail_logits(states, index, mask)
    pooled = (mask.unsqueeze(-1) * states[index]).sum(1) / mask.sum(1, keepdim=True)
    cat = torch.cat([states[index], pooled.unsqueeze(1).expand(-1, 5, -1)], dim=-1)
    assert torch.allclose(fast, module.tail_classifier(cat), atol=1e-5)


def test_silver_confidence_filters_and_weights(tokenizer, ade_task) -> None:
    text = "Cough and angioedema were attributed to enalapril."
    ex = Example(
        id="s1", text=text,
        spans=(
            Span(id="T1", label="ADE", start=0, end=5, text="Cough", score=0.9),
            Span(id="T2", label="ADE", start=10, end=20, text="angioedema", score=0.2),
            Span(id="T3", label="DRUG", start=40, end=49, text="enalapril", score=0.8),
            Span(id="T4", label="ADE", text="rash", alignment="unaligned"),
        ),
        relations=(Relation(head="T3", tail="T1", label="ADE", score=0.7),
                   Relation(head="T3", tail="T2", label="ADE", score=0.3),
                   Relation(head="T3", tail="T4", label="ADE")),
    )
    encs = encode_texts(tokenizer, [text], 64)
    stats = FeatureStats()
    (f,) = build_features(ade_task, [ex], encs, min_confidence=0.5, confidence_weighting=True, stats=stats)
    assert stats.unaligned_spans == 1 and stats.low_confidence_spans == 1
    assert stats.relations_used == 1 and stats.relations_dropped == 2
    (m,) = f.mentions
    assert m.tails == [(0, 1)] and m.tail_weights[0] == pytest.approx(0.7)
    assert f.head_weights[m.ws] == pytest.approx(0.8)


def test_length_grouped_batches_cover_everything_once() -> None:
    lengths = [5, 50, 7, 48, 9, 46, 11, 44]
    batches = length_grouped_batches(lengths, 2, seed=1, group_factor=50)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert abs(lengths[b[0]] - lengths[b[-1]]) <= 4  # similar lengths share a batch
    assert batches == length_grouped_batches(lengths, 2, seed=1, group_factor=50)  # seeded


def test_pairwise_joint_tags_leave_out_tails_overlapping_a_head(tokenizer, ade_task) -> None:
    """ADE has ~120 sentences like this one: the DRUG lies inside the ADE span. The joint tag sequence cannot hold
    both; the tail must be left out whole and counted, not merged into an I-TAIL without B-TAIL."""
    text = "Codeine intoxication in the neonate."
    ex = Example(
        id="o1", text=text,
        spans=(Span(id="T1", label="DRUG", start=0, end=7, text="Codeine"),
               Span(id="T2", label="ADE", start=0, end=20, text="Codeine intoxication")),
        relations=(Relation(head="T1", tail="T2", label="ADE"),),
    )
    encs = encode_texts(tokenizer, [text], 64)
    stats = FeatureStats()
    (f,) = build_features(ade_task, [ex], encs, stats=stats)
    assert stats.tail_overlapping_head == 1 and stats.as_dict()["tail_overlapping_head"] == 1
    batch = collate([f], tokenizer.pad_token_id, "pairwise")
    labels = [x for x in batch["entity_labels"][0].tolist() if x != -100]  # one per word
    assert labels[0] == 1  # B-HEAD on "Codeine"
    assert 4 not in labels and 3 not in labels  # no orphan I-TAIL on "intoxication"
    # the drug-conditioned stage 2 still learns the tail for its head
    (m,) = f.mentions
    assert m.tails == [(0, 2)]
