"""The compiled int8 kernel: int8 Linear layers written as plain torch ops for ``torch.compile``.

torch's dynamic quantization (:func:`torch.ao.quantization.quantize_dynamic`, the ``dynamic`` kernel) runs each
Linear layer as one opaque eager call: ``torch.compile`` cannot look inside it, so the work around the matmuls
(the quantization of each input, layer norms, GELU, attention's element-wise steps) stays a chain of separate passes.
:class:`CompiledInt8Linear` writes the same idea as ops inductor can fuse: the input is quantized to int8 with one
symmetric scale per token (row), multiplied by the int8 weight (one symmetric scale per output channel) with
``torch._int_mm`` (int32 accumulation), and rescaled into float. Under ``torch.compile`` the scale, rounding and
rescale fuse with the ops before and after each matmul.

Per-token scales also make a sentence's int8 prediction independent of which sentences share its batch (the
``dynamic`` kernel uses one scale per batch). In eager mode the layer is correct but slow (each step is a separate
pass): the ``compiled`` kernel is meant to run compiled, and :meth:`~ade_distill.student.model.StudentExtractor.
quantize` compiles it.

Attention (:func:`set_attention`): the encoder's own implementation (``model``: PyTorch's fused
``scaled_dot_product_attention`` in transformers' default) is one opaque call that ``torch.compile`` leaves as it is,
and on short sentences it is slow on CPU. ``eager`` (transformers' plain-op attention, the same float math) lets
inductor fuse the scaling, mask and softmax; ``bf16`` (:func:`bf16_attention`) also runs its two batched matmuls in
bfloat16, with the softmax in float32. Both need an encoder that dispatches attention through transformers'
``AttentionInterface`` (BERT-style encoders such as MiniLM do; MPNet does not and keeps its own).
"""

from __future__ import annotations

import torch

QMAX = 127
BF16_ATTENTION = "ade_distill_bf16"  # the name bf16_attention is registered under in transformers
ATTENTION_CHOICES = ("model", "eager", "bf16")


class CompiledInt8Linear(torch.nn.Module):
    """A frozen int8 copy of ``linear``: weight rounded to int8 per output channel, input per token at call time."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / QMAX
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # (in, out): torch._int_mm multiplies (tokens, in) @ (in, out)
        self.register_buffer("weight_t", (w / scale[:, None]).round().clamp(-QMAX, QMAX).to(torch.int8).t())
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / QMAX
        q = (rows / scale).round().clamp(-QMAX, QMAX).to(torch.int8)
        y = torch._int_mm(q, self.weight_t).float() * (scale * self.weight_scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def dequantized_weight(self) -> torch.Tensor:
        """The float weight this layer multiplies by, (out, in) as :class:`torch.nn.Linear`'s."""
        return self.weight_t.t().float() * self.weight_scale[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def to_compiled_int8(root: torch.nn.Module, layers: dict[str, torch.nn.Linear]) -> None:
    """In place: each named Linear layer of ``root`` (names as in ``root.named_modules()``) replaced by its
    :class:`CompiledInt8Linear`."""
    from ade_distill.student.smoothing import _replace

    for name, layer in layers.items():
        _replace(root, name, CompiledInt8Linear(layer))


def bf16_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                   **kwargs: object) -> tuple[torch.Tensor, None]:
    """transformers' eager attention (an ``AttentionInterface`` function: query, key, value as (batch, heads,
    tokens, head size); an additive float mask) with the two matmuls in bfloat16 and the scores, mask and softmax in
    float32. Prediction only (no dropout; no attention weights returned)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query.bfloat16(), key.bfloat16().transpose(2, 3)).float() * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs.bfloat16(), value.bfloat16()).to(query.dtype)
    return out.transpose(1, 2).contiguous(), None


def set_attention(encoder: torch.nn.Module, attention: str) -> str:
    """In place: the encoder's attention as ``attention`` (one of :data:`ATTENTION_CHOICES`; see the module
    docstring). Returns what it runs: ``attention``, or ``"model"`` when the encoder does not dispatch attention
    through transformers' ``AttentionInterface`` (then it is left as it was)."""
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}, got {attention!r}")
    if attention == "model" or not getattr(encoder, "_supports_attention_backend", False):
        return "model"
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    name = attention
    if attention == "bf16":
        name = BF16_ATTENTION
        AttentionInterface.register(name, bf16_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, eager_mask)  # an additive float mask, as eager attention's
    encoder.set_attn_implementation(name)
    return attention
