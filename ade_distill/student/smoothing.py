"""Activation smoothing for int8 (SmoothQuant, Xiao et al. 2023): move the range of a Linear layer's outlier input
channels into its weights before quantization.

Dynamic int8 quantizes a call's activations with one scale for the whole matrix, so a few input channels with large
values (transformer encoders have some) leave little resolution to all the others. For a Linear layer with input
``x`` and weight ``W``, per input channel ``j``: ``s_j = max|x_j| ** alpha / max|W[:, j]| ** (1 - alpha)``, and
``x @ W.T == (x / s) @ (W * s).T``. The weights are scaled once, and both factors are then easier to quantize.
``max|x_j|`` comes from a calibration pass over texts (:func:`calibrate`). In float the smoothed encoder computes
the same function up to rounding.

The division by ``s`` costs an element-wise pass over the input at each call, so a :class:`SmoothingPlan` spends
as few of them as it can:

* **Shared inputs.** Layers that read the very same tensor (an attention block's query, key and value projections)
  form a group with one ``s`` (the group's largest weight column in the denominator) and divide their input once
  (:class:`SharedDivision`). The calibration finds the groups by tensor identity, whatever the architecture.
* **Folds.** Where a layer's input is, channel by channel, a weighted sum of another layer's outputs (the attention
  output projection reads ``softmax(QK^T) V``), the division goes into that producer's output rows and bias: no
  element-wise pass at all. Folds come from :data:`FOLD_RULES` (BERT-style and MPNet attention) and are used only
  where the shapes fit.
* **Divided outputs.** The feed-forward output projection reads the activation (GELU) of the feed-forward input
  projection, which cannot absorb the division; the activation's fresh output is divided in place instead
  (:class:`DividedOutput`, :data:`OUTPUT_RULES`), which saves allocating and filling the widest tensor of the layer.

A plan that would change the float function (a rule that does not hold for some architecture) is caught by
:func:`float_drift`, which ``ade-distill quantize`` checks before measuring anything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

MIN_SCALE = 1e-5

# (producer suffix, consumer suffix) within one attention block: the consumer's input channel j is a weighted sum
# of the producer's output channel j over tokens, so dividing the producer's output row j (and bias) by s_j divides
# the consumer's input channel j by s_j exactly.
FOLD_RULES: tuple[tuple[str, str], ...] = (
    ("attention.self.value", "attention.output.dense"),  # BERT, RoBERTa, ELECTRA, MiniLM
    ("attention.attn.v", "attention.attn.o"),  # MPNet
)
# (module suffix, consumer suffix): the consumer reads the module's output and nothing else does, so that output can
# be divided in place.
OUTPUT_RULES: tuple[tuple[str, str], ...] = (
    ("intermediate.intermediate_act_fn", "output.dense"),  # the feed-forward activation: BERT family, MPNet
)


class SharedDivision(torch.nn.Module):
    """``x * inv_scale``, computed once for the layers of a group that read the same tensor (the same object: the
    calibration saw them read it in turn, and ``ade-distill quantize`` checks with :func:`float_drift` that the
    smoothed function is unchanged before it measures a plan). The result is kept, per thread, until each of the
    ``members`` layers has taken it, then dropped, so no batch outlives its pass."""

    def __init__(self, inv_scale: torch.Tensor, members: int) -> None:
        super().__init__()
        self.register_buffer("inv_scale", inv_scale)
        self.members = members
        self._cache: dict[int, list[Any]] = {}  # thread id -> [input, result, members that took it]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # inductor computes the product once and fuses it into its consumers
            return x * self.inv_scale.to(x.dtype)
        thread = threading.get_ident()
        entry = self._cache.get(thread)
        if entry is None or entry[0] is not x:
            entry = [x, x * self.inv_scale.to(x.dtype), 0]
            self._cache[thread] = entry
        entry[2] += 1
        if entry[2] >= self.members:
            del self._cache[thread]
        return entry[1]


class DividedOutput(torch.nn.Module):
    """``module(x) * inv_scale``, multiplied in place into the module's fresh output (out of place where autograd
    records, or where the module returned its input)."""

    def __init__(self, module: torch.nn.Module, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("inv_scale", inv_scale)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.module(*args, **kwargs)
        inv = self.inv_scale.to(out.dtype)
        if torch.compiler.is_compiling():  # fused by inductor: no pass to save
            return out * inv
        fresh = not out.requires_grad and not any(out is a for a in (*args, *kwargs.values()))
        return out.mul_(inv) if fresh else out * inv


class SmoothedLinear(torch.nn.Module):
    """``linear(division(x))``: a Linear layer whose weight columns were multiplied by ``s``, behind the
    (possibly shared) division of its input by ``s``."""

    def __init__(self, linear: torch.nn.Module, division: SharedDivision) -> None:
        super().__init__()
        self.linear = linear
        self.division = division

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.division(x))


@dataclass(frozen=True)
class SmoothingPlan:
    """How each smoothed layer's input is divided: by one shared element-wise pass per group (``groups``), in a
    producer Linear layer's output rows (``folds``: consumer → producer) or in place in a module's output
    (``outputs``: consumer → module). Every smoothed layer is in exactly one of them."""

    groups: tuple[tuple[str, ...], ...]
    folds: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def separate(cls, names: list[str]) -> SmoothingPlan:
        """One division per layer (the plan of scale files written before plans existed)."""
        return cls(groups=tuple((n,) for n in names))

    def layers(self) -> list[str]:
        return [n for g in self.groups for n in g] + list(self.folds) + list(self.outputs)

    def singles(self) -> list[str]:
        """The layers whose division is not shared: folded or in an output."""
        return list(self.folds) + list(self.outputs)

    def to_json(self) -> str:
        return json.dumps({"groups": [list(g) for g in self.groups], "folds": self.folds, "outputs": self.outputs},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SmoothingPlan:
        data = json.loads(text)
        return cls(groups=tuple(tuple(g) for g in data["groups"]), folds=dict(data.get("folds", {})),
                   outputs=dict(data.get("outputs", {})))


@dataclass
class Calibration:
    """Per smoothable layer, the largest ``|x|`` per input channel seen while calibrating, and the groups of layers
    that read the same input tensor at every call."""

    maxima: dict[str, torch.Tensor]
    groups: list[tuple[str, ...]]

    def restricted(self, names: list[str]) -> Calibration:
        """Only the layers ``names`` (e.g. those int8 quantizes: smoothing a layer kept in float buys nothing)."""
        keep = set(names)
        groups = [tuple(n for n in g if n in keep) for g in self.groups]
        return Calibration(maxima={n: m for n, m in self.maxima.items() if n in keep}, groups=[g for g in groups if g])


@dataclass(frozen=True)
class Smoothing:
    """What :func:`apply_smoothing` needs: ``s`` per layer (equal within a group) and the plan."""

    scales: dict[str, torch.Tensor]
    plan: SmoothingPlan

    def save(self, path: str | Path) -> None:
        """Scales (one per group, named after its first layer) and the plan, in one safetensors file."""
        from safetensors.torch import save_file

        leaders = [g[0] for g in self.plan.groups] + self.plan.singles()
        save_file({n: self.scales[n].contiguous() for n in leaders}, str(path), metadata={"plan": self.plan.to_json()})

    @classmethod
    def load(cls, path: str | Path) -> Smoothing:
        """What :meth:`save` wrote; a file written before plans existed (a scale per layer, no metadata) smooths
        each layer on its own, as it was measured."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            meta = f.metadata() or {}
        if "plan" not in meta:
            return cls(scales=stored, plan=SmoothingPlan.separate(sorted(stored)))
        plan = SmoothingPlan.from_json(meta["plan"])
        scales = {n: stored[g[0]] for g in plan.groups for n in g} | {c: stored[c] for c in plan.singles()}
        return cls(scales=scales, plan=plan)


def smoothable_linears(encoder: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The encoder's Linear layers by name, the pooler's left out (the student reads token states only)."""
    return {name: layer for name, layer in encoder.named_modules()
            if isinstance(layer, torch.nn.Linear) and name.split(".")[0] != "pooler"}


def calibrate(encoder: torch.nn.Module, run: Callable[[], object]) -> Calibration:
    """Run ``run()`` (a prediction over calibration texts) and record, for each of :func:`smoothable_linears`, the
    largest ``|x|`` per input channel, and which layers read one and the same input tensor."""
    maxima: dict[str, torch.Tensor] = {}
    seen_with: dict[str, set[str]] = {}  # layer -> the layers that shared its input at every call
    current: dict[str, object] = {"x": None, "names": []}
    hooks = []

    def close() -> None:
        names = set(current["names"])  # type: ignore[arg-type]
        for n in names:
            seen_with[n] = seen_with[n] & names if n in seen_with else names

    def hook(name: str) -> Callable[..., None]:
        def record(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            if x is not current["x"]:
                close()
                current["x"], current["names"] = x, []
            current["names"].append(name)  # type: ignore[union-attr]
            m = x.detach().abs().reshape(-1, x.shape[-1]).amax(dim=0).float()
            maxima[name] = torch.maximum(maxima[name], m) if name in maxima else m
        return record

    for name, layer in smoothable_linears(encoder).items():
        hooks.append(layer.register_forward_pre_hook(hook(name)))
    try:
        run()
        close()
    finally:
        current["x"] = None
        for h in hooks:
            h.remove()
    groups = set()
    for name in maxima:  # a group only where every member saw the same company at every call
        group = seen_with[name]
        groups.add(tuple(sorted(group)) if all(seen_with[m] == group for m in group) else (name,))
    return Calibration(maxima=maxima, groups=sorted(groups))


def smoothing_plan(encoder: torch.nn.Module, calibration: Calibration, *, fold_weights: bool = True) -> SmoothingPlan:
    """Groups from the calibration; a layer that reads its input alone and matches a :data:`FOLD_RULES` consumer
    (with a producer of the right width) is folded instead when ``fold_weights``, or matches an
    :data:`OUTPUT_RULES` consumer and has that module's output divided.

    A fold rescales the producer's output rows by factors orders of magnitude apart, harmless with a weight scale
    per output channel but not with one per matrix: pass ``fold_weights=False`` for per-tensor int8."""
    layers = smoothable_linears(encoder)
    modules = dict(encoder.named_modules())
    folds: dict[str, str] = {}
    outputs: dict[str, str] = {}
    groups = []
    for group in calibration.groups:
        name = group[0]
        producer = _by_rule(name, FOLD_RULES) if fold_weights and len(group) == 1 else None
        module = _by_rule(name, OUTPUT_RULES) if len(group) == 1 else None
        if producer in layers and layers[producer].out_features == layers[name].in_features:
            folds[name] = producer
        elif module in modules:
            outputs[name] = module
        else:
            groups.append(group)
    return SmoothingPlan(groups=tuple(groups), folds=folds, outputs=outputs)


def _by_rule(name: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    """The module a rule pairs with the layer ``name`` (whether it exists is the caller's check)."""
    for module_suffix, consumer_suffix in rules:
        if name == consumer_suffix or name.endswith("." + consumer_suffix):
            return name[: len(name) - len(consumer_suffix)] + module_suffix
    return None


def smoothing_scales(encoder: torch.nn.Module, calibration: Calibration, alpha: float,
                     plan: SmoothingPlan | None = None) -> Smoothing:
    """``s`` for each layer of the plan (default: :func:`smoothing_plan`), from the encoder's unsmoothed weights;
    a layer the calibration never reached keeps none."""
    plan = plan or smoothing_plan(encoder, calibration)
    layers = smoothable_linears(encoder)

    def scale(names: tuple[str, ...]) -> torch.Tensor:
        w_max = torch.stack([layers[n].weight.detach().abs().amax(dim=0).float() for n in names]).amax(dim=0)
        x_max = calibration.maxima[names[0]].clamp(min=MIN_SCALE)
        return (x_max.pow(alpha) / w_max.clamp(min=MIN_SCALE).pow(1 - alpha)).clamp(min=MIN_SCALE)

    scales: dict[str, torch.Tensor] = {}
    for group in [*plan.groups, *((c,) for c in plan.singles())]:
        if all(n in calibration.maxima for n in group):
            s = scale(group)
            scales.update({n: s for n in group})
    kept = SmoothingPlan(groups=tuple(g for g in plan.groups if g[0] in scales),
                         folds={c: p for c, p in plan.folds.items() if c in scales},
                         outputs={c: m for c, m in plan.outputs.items() if c in scales})
    return Smoothing(scales=scales, plan=kept)


def apply_smoothing(encoder: torch.nn.Module, smoothing: Smoothing) -> None:
    """In place: each planned layer's weight columns multiplied by ``s``; the division of its input by ``s`` goes
    into one :class:`SharedDivision` per group before the layers, into its producer's output rows (a fold) or into
    a :class:`DividedOutput` around the module whose output it reads. The plan is checked whole before the encoder
    is touched.

    Raises:
        KeyError: the plan names no Linear layer (or module) of the encoder or a layer twice, a scale or a fold
            producer has the wrong size, or a group's scales differ.
    """
    plan = smoothing.plan
    layers = smoothable_linears(encoder)
    modules = dict(encoder.named_modules())
    _check_plan(smoothing, layers, modules)
    for name in plan.layers():
        layer = layers[name]
        layer.weight.data = layer.weight.data * smoothing.scales[name].to(layer.weight.dtype)
    for group in plan.groups:
        division = SharedDivision((1.0 / smoothing.scales[group[0]]).to(layers[group[0]].weight.dtype),
                                  members=len(group))
        for name in group:
            _replace(encoder, name, SmoothedLinear(layers[name], division))
    for consumer, producer in plan.folds.items():
        s, p = smoothing.scales[consumer], layers[producer]
        p.weight.data = p.weight.data / s.to(p.weight.dtype)[:, None]
        if p.bias is not None:
            p.bias.data = p.bias.data / s.to(p.bias.dtype)
    for consumer, module in plan.outputs.items():
        inv = (1.0 / smoothing.scales[consumer]).to(layers[consumer].weight.dtype)
        _replace(encoder, module, DividedOutput(modules[module], inv))


def _check_plan(smoothing: Smoothing, layers: dict[str, torch.nn.Linear], modules: dict[str, torch.nn.Module]) -> None:
    plan = smoothing.plan
    names = plan.layers()
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise KeyError(f"smoothing plan lists {twice} more than once")
    for name in names + list(plan.folds.values()):
        if name not in layers:
            raise KeyError(f"smoothing plan names {name!r}, which is no Linear layer of this encoder")
    for name in plan.outputs.values():
        if name not in modules:
            raise KeyError(f"smoothing plan names {name!r}, which is no module of this encoder")
    for name in names:
        s = smoothing.scales.get(name)
        if s is None or s.shape != (layers[name].in_features,):
            raise KeyError(f"smoothing scale {name!r} fits no Linear layer of this encoder")
    for consumer, producer in plan.folds.items():
        if layers[producer].out_features != layers[consumer].in_features:
            raise KeyError(f"smoothing fold {producer!r} → {consumer!r}: the widths differ")
    for group in plan.groups:
        if any(not torch.equal(smoothing.scales[n], smoothing.scales[group[0]]) for n in group):
            raise KeyError(f"smoothing group {group} has different scales")


def _replace(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, module)


def float_drift(encoder: torch.nn.Module, smoothing: Smoothing, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """How far smoothing moves the float encoder (it should not): the largest absolute difference of the last
    hidden states of ``encoder`` and of a smoothed copy, relative to their largest absolute value."""
    import copy

    work = copy.deepcopy(encoder)
    apply_smoothing(work, smoothing)
    with torch.inference_mode():
        before = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        after = work(input_ids=ids, attention_mask=mask).last_hidden_state
    return float((after - before).abs().max() / before.abs().max().clamp(min=MIN_SCALE))
