"""Activation smoothing for int8 (SmoothQuant, Xiao et al. 2023): move the range of a Linear layer's outlier input
channels into its weights before quantization.

Dynamic int8 quantizes a call's activations with one scale for the whole matrix, so a few input channels with large
values (transformer encoders have some) leave little resolution to all the others. For a Linear layer with input
``x`` and weight ``W``, per input channel ``j``: ``s_j = max|x_j| ** alpha / max|W[:, j]| ** (1 - alpha)``, and
``x @ W.T == (x / s) @ (W * s).T``. The division runs before the layer (:class:`SmoothedLinear`), the weights are
scaled once, and both factors are then easier to quantize. ``max|x_j|`` comes from a calibration pass over texts
(:func:`activation_maxima`). In float the smoothed layer computes the same function up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MIN_SCALE = 1e-5


class SmoothedLinear(torch.nn.Module):
    """``linear(x * inv_scale)``: a Linear layer whose weight columns were multiplied by ``1 / inv_scale``."""

    def __init__(self, linear: torch.nn.Module, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale.to(x.dtype))


def smoothable_linears(encoder: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The encoder's Linear layers by name, the pooler's left out (the student reads token states only)."""
    return {name: layer for name, layer in encoder.named_modules()
            if isinstance(layer, torch.nn.Linear) and name.split(".")[0] != "pooler"}


def activation_maxima(encoder: torch.nn.Module, run: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Per input channel, the largest ``|x|`` each of :func:`smoothable_linears` saw while ``run()`` ran (a
    prediction over calibration texts)."""
    maxima: dict[str, torch.Tensor] = {}
    hooks = []

    def hook(name: str) -> Callable[..., None]:
        def record(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0).float()
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return record

    for name, layer in smoothable_linears(encoder).items():
        hooks.append(layer.register_forward_pre_hook(hook(name)))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return maxima


def smoothing_scales(encoder: torch.nn.Module, maxima: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``s`` per smoothable Linear layer (see the module docstring); a layer the calibration never reached keeps
    none."""
    out = {}
    for name, layer in smoothable_linears(encoder).items():
        if name not in maxima:
            continue
        w_max = layer.weight.detach().abs().amax(dim=0).float().clamp(min=MIN_SCALE)
        x_max = maxima[name].clamp(min=MIN_SCALE)
        out[name] = (x_max.pow(alpha) / w_max.pow(1 - alpha)).clamp(min=MIN_SCALE)
    return out


def apply_smoothing(encoder: torch.nn.Module, scales: dict[str, torch.Tensor]) -> None:
    """In place: each named Linear layer's weight columns multiplied by ``s`` and the layer wrapped in
    :class:`SmoothedLinear` dividing its input by ``s``.

    Raises:
        KeyError: a scale names no Linear layer of the encoder, or has the wrong size.
    """
    layers = smoothable_linears(encoder)
    for name, s in scales.items():
        layer = layers.get(name)
        if layer is None or s.shape != (layer.in_features,):
            raise KeyError(f"smoothing scale {name!r} fits no Linear layer of this encoder")
        layer.weight.data = layer.weight.data * s.to(layer.weight.dtype)
        parent_name, _, attr = name.rpartition(".")
        parent = encoder.get_submodule(parent_name) if parent_name else encoder
        setattr(parent, attr, SmoothedLinear(layer, (1.0 / s).to(layer.weight.dtype)))
