"""Ablation architecture of Gu et al. 2023: a joint BIO tagger for both entity types plus a pairwise relation
classifier over candidate (head, tail) pairs.

Joint tag set: ``O, B-HEAD, I-HEAD, B-TAIL, I-TAIL`` (one softmax). A tail span overlapping a head span cannot be
represented in one tag sequence; such tails are left out of the joint tags in training (the head wins) and counted
as ``tail_overlapping_head`` (:class:`~ade_distill.student.data.FeatureStats`). At inference
every predicted head × every predicted tail of a sentence is a candidate; the classifier sees
``[pool(head); pool(tail); pool(head) * pool(tail)]`` (mean-pooled token states) and outputs P(related).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ade_distill.student.modules import mean_pool, weighted_cross_entropy

N_JOINT = 5  # O, B-HEAD, I-HEAD, B-TAIL, I-TAIL


class PairwiseExtractor(nn.Module):
    def __init__(self, encoder: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        h = encoder.config.hidden_size
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.entity_classifier = nn.Linear(h, N_JOINT)
        self.pair_classifier = nn.Sequential(nn.Linear(3 * h, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, 2))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)

    def pair_logits(
        self, states: torch.Tensor, index: torch.Tensor, head_mask: torch.Tensor, tail_mask: torch.Tensor
    ) -> torch.Tensor:
        rows = states[index]
        h = mean_pool(rows, head_mask)
        t = mean_pool(rows, tail_mask)
        return self.pair_classifier(torch.cat([h, t, h * t], dim=-1))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        entity_labels: torch.Tensor | None = None,
        entity_weights: torch.Tensor | None = None,
        pair_batch_index: torch.Tensor | None = None,
        pair_head_mask: torch.Tensor | None = None,
        pair_tail_mask: torch.Tensor | None = None,
        pair_labels: torch.Tensor | None = None,
        pair_weights: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        states = self.encode(input_ids, attention_mask)
        logits = self.entity_classifier(states)
        out: dict[str, Any] = {"entity_logits": logits, "loss": None}
        if entity_labels is not None:
            out["loss"] = weighted_cross_entropy(logits, entity_labels, entity_weights)
        if pair_batch_index is not None and pair_batch_index.numel():
            pl = self.pair_logits(states, pair_batch_index, pair_head_mask, pair_tail_mask)
            out["pair_logits"] = pl
            if pair_labels is not None:
                pair_loss = weighted_cross_entropy(pl, pair_labels, pair_weights)
                out["loss"] = pair_loss if out["loss"] is None else out["loss"] + pair_loss
        return out
