"""The drug-conditioned extractor of Gu et al. 2023 (generalized to any head → tail task) and shared layers.

Stage 1 tags head-entity mentions (BIO over words, labels on first sub-word pieces). Stage 2, for each head
mention, mean-pools the mention's token states into ``v`` and tags that mention's tails with a linear softmax
layer over ``[h_t; v]`` for every token ``t``. One pass of the stage-2 layer per head mention, never per pair.

The stage-2 linear layer ``W [h_t; v] + b`` is computed as ``W_h h_t + (W_v v + b)``: the token part is computed
once per sentence and shared by all its mentions — the same function, with less arithmetic. That split also shows
its limit: the mention can only shift the three class scores by the same amount at every token, so which tokens
are tails cannot depend on which drug is asked about. ``tail_head="interaction"`` (an option, not the paper's
layer) replaces it with a two-layer network over ``[h_t; v; h_t * v]``, where the product lets each token's
decision depend on the mention.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

N_BIO = 3


def mean_pool(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``rows`` (M, T, H) over the tokens selected by ``mask`` (M, T) → (M, H)."""
    denom = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    return torch.bmm(mask.unsqueeze(1).to(rows.dtype), rows).squeeze(1) / denom


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy averaged over labelled positions (label != -100), each scaled by its weight."""
    c = logits.size(-1)
    flat = labels.reshape(-1)
    ce = F.cross_entropy(logits.reshape(-1, c).float(), flat, ignore_index=-100, reduction="none")
    valid = (flat != -100).float()
    w = valid if weights is None else weights.reshape(-1).float() * valid
    return (ce * w).sum() / valid.sum().clamp(min=1.0)


def soft_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, confidences: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Cross-entropy against soft targets made from confidences (the teachers' vote fractions): a position tagged
    B or I with confidence ``c`` has the target distribution ``c`` on its tag and ``1 - c`` on O; O positions and
    confidence 1 are one-hot. Averaged over labelled positions (label != -100).

    This is KL(q || softmax(z / T)) plus the constant entropy of q, times T² (Hinton et al.'s scaling), so a
    relation one teacher of three proposed is learned as "a third likely" — below the 0.5 decision line —
    instead of as a down-weighted certainty.
    """
    c = logits.size(-1)
    flat = labels.reshape(-1)
    valid = flat != -100
    logp = F.log_softmax(logits.reshape(-1, c).float() / temperature, dim=-1)
    tag_lp = logp.gather(1, flat.clamp(min=0).unsqueeze(1)).squeeze(1)
    conf = confidences.reshape(-1).float().clamp(0.0, 1.0)
    soft = -(conf * tag_lp + (1.0 - conf) * logp[:, 0])  # class 0 is O
    loss = torch.where(flat > 0, soft, -tag_lp) * (temperature ** 2)
    return (loss * valid.float()).sum() / valid.float().sum().clamp(min=1.0)


class DrugConditionedTagger(nn.Module):
    """Shared encoder, head-entity BIO layer, head-conditioned tail BIO layer."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1, tail_head: str = "linear") -> None:
        super().__init__()
        h = encoder.config.hidden_size
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head_classifier = nn.Linear(h, N_BIO)
        self.tail_head = tail_head
        # Soft targets (set by training; not part of the saved model): the weights passed to forward are then the
        # confidences of soft_cross_entropy instead of loss weights.
        self.soft_targets = False
        self.temperature = 1.0
        if tail_head == "linear":
            self.tail_classifier = nn.Linear(2 * h, N_BIO)
        elif tail_head == "interaction":
            self.tail_interaction = nn.Sequential(
                nn.Linear(3 * h, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, N_BIO))
        else:
            raise ValueError(f"tail_head must be 'linear' or 'interaction', got {tail_head!r}")

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)

    def tail_logits(self, states: torch.Tensor, index: torch.Tensor, mention_mask: torch.Tensor) -> torch.Tensor:
        """Stage-2 logits (M, T, 3) for mentions ``index`` (M,) of the batch with token masks (M, T)."""
        if self.tail_head == "interaction":
            rows = states[index]  # (M, T, H)
            v = mean_pool(rows, mention_mask).unsqueeze(1).expand_as(rows)
            return self.tail_interaction(torch.cat([rows, v, rows * v], dim=-1))
        h = states.size(-1)
        w = self.tail_classifier.weight
        token_part = F.linear(states, w[:, :h])  # (B, T, 3), once per sentence
        pooled = mean_pool(states[index], mention_mask)  # (M, H)
        mention_part = F.linear(pooled, w[:, h:], self.tail_classifier.bias)  # (M, 3)
        return token_part[index] + mention_part.unsqueeze(1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        if self.soft_targets and weights is not None:
            return soft_cross_entropy(logits, labels, weights, self.temperature)
        return weighted_cross_entropy(logits, labels, weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_labels: torch.Tensor | None = None,
        head_weights: torch.Tensor | None = None,
        mention_batch_index: torch.Tensor | None = None,
        mention_token_mask: torch.Tensor | None = None,
        tail_labels: torch.Tensor | None = None,
        tail_weights: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        states = self.encode(input_ids, attention_mask)
        head_logits = self.head_classifier(states)
        out: dict[str, Any] = {"head_logits": head_logits, "loss": None}
        if head_labels is not None:
            out["loss"] = self.loss(head_logits, head_labels, head_weights)
        if mention_batch_index is not None and mention_batch_index.numel():
            tl = self.tail_logits(states, mention_batch_index, mention_token_mask)
            out["tail_logits"] = tl
            if tail_labels is not None:
                tail_loss = self.loss(tl, tail_labels, tail_weights)
                out["loss"] = tail_loss if out["loss"] is None else out["loss"] + tail_loss
        return out
