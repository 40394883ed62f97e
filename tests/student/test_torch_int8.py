"""torch int8 behind the accuracy guard: `ade-distill quantize` measures and records the verdict, a deliberately
broken quantization is refused with its measured loss, and loading with quantize=True uses int8 only where an
accepted verdict covers the folder's current weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.records import Example, write_examples
from ade_distill.student.int8_guard import AccuracyGuardError
from ade_distill.student.model import StudentExtractor
from ade_distill.student.quantize import (
    INT8_JSON,
    INT8_SCALES,
    Int8Options,
    guard_torch_int8,
    quantize_encoder,
)


@pytest.fixture()
def student(trained_dir: Path, tmp_path: Path) -> Path:
    return shutil.copytree(trained_dir, tmp_path / "student")  # the guard writes into the folder


def _broken(encoder: torch.nn.Module, options: Int8Options, smoothing=None):
    """int8 as usual, then every output projection zeroed: the states lose their feed-forward and attention
    contributions."""
    quantized, layout = quantize_encoder(encoder, options, smoothing)
    for name, layer in quantized.named_modules():
        if "output.dense" in name and isinstance(layer, torch.ao.nn.quantized.dynamic.Linear):
            w, b = layer._packed_params._weight_bias()
            zero = torch.quantize_per_tensor(torch.zeros_like(w.dequantize()), 1.0, 0, torch.qint8)
            layer._packed_params.set_weight_bias(zero, None if b is None else torch.zeros_like(b))
    return quantized, layout


def test_guard_accepts_records_and_quantize_true_uses_the_recorded_options(
    student: Path, tiny_train: list[Example]
) -> None:
    report = guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0,
                              options=Int8Options(per_channel=True, float_ffn_output=True))
    assert report["accepted"] and report["runtime"] == "torch" and report["check_examples"] == len(tiny_train)
    # MiniLM: 6 layers x 6 Linear layers, of which the 6 feed-forward outputs stay float (and unsmoothed); per
    # layer query, key and value share one division, the attention output's is folded into value, the
    # feed-forward input has one
    assert report["layout"] == {"kernel": "dynamic", "attention": "model", "int8_linears": 30, "smoothed": 30, "divisions": 12, "folded": 6,
                                "divided_outputs": 0, "float": {"ffn_output": 6}}
    assert report["smooth_alpha"] == 0.9 and report["calibration_texts"] == len(tiny_train)
    assert (student / INT8_SCALES).is_file()
    assert set(report["loss_vs_gold"]) == {"strict", "lenient"}
    assert json.loads((student / INT8_JSON).read_text())["weights_sha256"] == report["weights_sha256"]

    int8 = StudentExtractor.from_pretrained(student, quantize=True)
    assert int8.int8_layout == report["layout"]
    assert sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.module.encoder.modules()) == 30
    preds = int8.predict(tiny_train)
    assert preds[0].meta["predicted_by"]["quantized"] is True
    assert sum(len(p.relations) for p in preds) > 0
    # the int8 predictions are what the guard judged
    from ade_distill.student.int8_guard import measure_loss

    fp32 = StudentExtractor.from_pretrained(student).predict(tiny_train)
    again = measure_loss(tiny_train, fp32, preds, labelled=True)
    assert again["loss_vs_gold"] == report["loss_vs_gold"]


def test_guard_refuses_a_broken_quantization_and_loading_is_refused(student: Path, tiny_train: list[Example]) -> None:
    with pytest.raises(AccuracyGuardError, match=r"int8 refused: relation F1 loss .* exceeds --max-f1-loss 0.5"
                       ) as err:
        guard_torch_int8(student, tiny_train, check_source="tiny_train", quantizer=_broken)
    report = err.value.report
    assert not report["accepted"] and report["loss"] > 0.5 and report["fp32_f1"]["strict"] > 50
    assert json.loads((student / INT8_JSON).read_text())["accepted"] is False
    with pytest.raises(ConfigError, match="refused by the accuracy guard"):
        StudentExtractor.from_pretrained(student, quantize=True)


def test_quantize_true_needs_a_verdict_on_the_current_weights(student: Path, tiny_train: list[Example]) -> None:
    with pytest.raises(ConfigError, match=r"int8\.json is missing: run `ade-distill quantize --model"):
        StudentExtractor.from_pretrained(student, quantize=True)
    guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0)
    StudentExtractor.from_pretrained(student, quantize=True)  # accepted
    scales = (student / INT8_SCALES).read_bytes()
    (student / INT8_SCALES).write_bytes(scales[:-4] + b"\0\0\0\0")
    with pytest.raises(ConfigError, match="int8_scales.safetensors is missing or changed"):
        StudentExtractor.from_pretrained(student, quantize=True)
    fp32 = StudentExtractor.from_pretrained(student)
    with torch.no_grad():
        fp32.module.head_classifier.bias.add_(0.1)
    fp32.save_pretrained(student)  # other weights: the verdict no longer covers them (and the folder is rewritten)
    assert not (student / INT8_JSON).exists()
    (student / INT8_JSON).write_text(json.dumps({"accepted": True, "per_channel": True, "float_ffn_output": False,
                                                 "weights_sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="weights or settings changed since int8.json measured them"):
        StudentExtractor.from_pretrained(student, quantize=True)
    guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0)
    cfg = json.loads((student / "student.json").read_text())
    (student / "student.json").write_text(json.dumps({**cfg, "head_threshold": 0.3}))  # other decoding settings
    with pytest.raises(ConfigError, match="weights or settings changed"):
        StudentExtractor.from_pretrained(student, quantize=True)
    (student / INT8_JSON).write_text("{")
    with pytest.raises(ConfigError, match="not an int8 guard record"):
        StudentExtractor.from_pretrained(student, quantize=True)
    with pytest.raises(ConfigError, match="needs a check set"):  # the fixture student was trained without --dev
        guard_torch_int8(student)
    with pytest.raises(ConfigError, match="max_f1_loss must be >= 0"):
        guard_torch_int8(student, tiny_train, max_f1_loss=-1)


def test_cli_quantize_then_predict_quantize(student: Path, tiny_train: list[Example], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ade_distill.cli import app
    from ade_distill.student import quantize as quantize_module

    gold = tmp_path / "check.jsonl"
    write_examples(gold, tiny_train)
    out = tmp_path / "int8.jsonl"
    predict = ["predict", "--model", str(student), "--input", str(gold), "--out", str(out), "--quantize"]
    res = CliRunner().invoke(app, predict)
    assert res.exit_code != 0 and "ade-distill quantize" in str(res.exception)
    res = CliRunner().invoke(app, ["quantize", "--model", str(student), "--check-gold", str(gold),
                                   "--max-f1-loss", "100", "--per-tensor"])
    assert res.exit_code == 0, res.output
    assert "int8 accepted" in res.output and json.loads((student / INT8_JSON).read_text())["per_channel"] is False
    res = CliRunner().invoke(app, predict)
    assert res.exit_code == 0, res.output
    assert '"quantized": true' in out.read_text()
    monkeypatch.setattr(quantize_module, "quantize_encoder", _broken)
    res = CliRunner().invoke(app, ["quantize", "--model", str(student), "--check-gold", str(gold)])
    assert res.exit_code != 0 and isinstance(res.exception, AccuracyGuardError)
    assert "exceeds --max-f1-loss 0.5" in str(res.exception)
    # the console script: a measured refusal exits with 3 (other errors with 2), one line, no traceback
    from ade_distill.cli import main

    for argv, code in ((["quantize", "--model", str(student), "--check-gold", str(gold)], 3),
                       (["quantize", "--model", str(tmp_path / "nope")], 2)):
        monkeypatch.setattr("sys.argv", ["ade-distill", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == code


class _Block(torch.nn.Module):
    """Two layers reading one input (like query and key), then a third reading their product."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(8, 16), torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.nn.functional.gelu(self.a(x) * self.b(x)))


def test_smoothing_keeps_the_float_function_shares_one_division_and_moves_outliers_into_the_weights() -> None:
    from ade_distill.student.smoothing import (
        SharedDivision,
        Smoothing,
        apply_smoothing,
        calibrate,
        smoothing_scales,
    )

    torch.manual_seed(0)
    net = _Block()
    x = torch.randn(32, 8)
    x[:, 3] *= 50  # an outlier input channel
    calibration = calibrate(net, lambda: net(x))
    assert calibration.groups == [("a", "b"), ("c",)]  # a and b read the same tensor
    assert calibration.maxima["a"][3] == x[:, 3].abs().max()
    smoothing = smoothing_scales(net, calibration, alpha=0.8)
    s = smoothing.scales["a"]
    assert torch.equal(s, smoothing.scales["b"]) and s[3] == s.max()  # one scale; the outlier divided the most
    w_max = torch.maximum(net.a.weight.abs().amax(0), net.b.weight.abs().amax(0))
    assert torch.allclose(s, x.abs().amax(0) ** 0.8 / w_max ** 0.2)
    before = net(x)
    apply_smoothing(net, smoothing)
    assert torch.allclose(net(x), before, atol=1e-4)
    assert net.a.division is net.b.division and isinstance(net.a.division, SharedDivision)
    assert not net.a.division._cache  # dropped once both layers took it
    with pytest.raises(KeyError, match="no Linear layer"):
        apply_smoothing(net, Smoothing(scales={"zz": torch.ones(8)}, plan=type(smoothing.plan)(groups=(("zz",),))))


def test_shared_division_multiplies_once_per_input_and_recomputes_for_a_new_one() -> None:
    from ade_distill.student.smoothing import SharedDivision

    div = SharedDivision(torch.tensor([0.5, 2.0]), members=3)
    x = torch.ones(4, 2)
    first = div(x)
    assert div(x) is first  # the second member takes the same tensor
    y = 3 * torch.ones(4, 2)  # a new input before the third member: recomputed
    assert torch.equal(div(y), torch.tensor([1.5, 6.0]).expand(4, 2))
    assert div(y) is div(y) and not div._cache  # the group of three took it: dropped
    assert div(x) is not first and torch.equal(div(x), first)


def test_shared_division_keeps_one_pass_per_thread() -> None:
    import threading

    from ade_distill.student.smoothing import SharedDivision

    div = SharedDivision(torch.tensor([0.5, 2.0]), members=2)
    x, y = torch.ones(3, 2), 3 * torch.ones(3, 2)
    first = div(x)  # this thread's first member
    other: list[torch.Tensor] = []
    t = threading.Thread(target=lambda: other.extend([div(y), div(y)]))  # another thread's whole pass between
    t.start()
    t.join()
    assert other[0] is other[1] and torch.equal(other[0], y * torch.tensor([0.5, 2.0]))
    assert div(x) is first  # this thread's second member still gets its own pass's result
    assert not div._cache


def test_divided_output_divides_in_place_unless_autograd_records_or_the_module_returns_its_input() -> None:
    from ade_distill.student.smoothing import DividedOutput

    inv = torch.tensor([0.5, 2.0])
    act = DividedOutput(torch.nn.ReLU(), inv)
    x = torch.tensor([[1.0, -1.0], [3.0, 4.0]])
    expected = torch.relu(x) * inv
    with torch.inference_mode():
        assert torch.equal(act(x), expected)
    w = x.clone().requires_grad_()
    out = act(w)
    out.sum().backward()  # ReLU's backward reads its output: an in-place multiply would raise here
    assert torch.equal(out, expected) and torch.equal(w.grad, (x > 0) * inv)
    y = x.clone()
    assert torch.equal(DividedOutput(torch.nn.Identity(), inv)(y), x * inv) and torch.equal(y, x)  # input kept


def test_smoothing_plan_of_a_bert_encoder_shares_qkv_folds_the_attention_output_and_keeps_the_function(
    trained_dir: Path, tiny_train: list[Example], tmp_path: Path
) -> None:
    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.quantize import int8_smoothing
    from ade_distill.student.smoothing import Smoothing, calibrate, float_drift, smoothing_scales

    student = StudentExtractor.from_pretrained(trained_dir)
    encoder = student.module.encoder
    calibration = calibrate(encoder, lambda: student.predict(strip_labels(tiny_train)))
    smoothing = smoothing_scales(encoder, calibration, alpha=0.9)
    plan = smoothing.plan
    qkv = tuple(f"encoder.layer.0.attention.self.{n}" for n in ("key", "query", "value"))
    assert qkv in plan.groups and len(plan.groups) == 12 and len(plan.layers()) == 36
    assert plan.folds["encoder.layer.0.attention.output.dense"] == "encoder.layer.0.attention.self.value"
    assert plan.outputs["encoder.layer.0.output.dense"] == "encoder.layer.0.intermediate.intermediate_act_fn"
    enc = student.tokenizer([e.text for e in tiny_train[:8]], padding=True, return_tensors="pt")
    assert float_drift(encoder, smoothing, enc["input_ids"], enc["attention_mask"]) < 1e-4
    # the plan travels with the scales; a file written before plans existed smooths each layer on its own
    smoothing.save(tmp_path / "s.safetensors")
    loaded = Smoothing.load(tmp_path / "s.safetensors")
    assert loaded.plan == plan and all(torch.equal(loaded.scales[k], v) for k, v in smoothing.scales.items())
    from safetensors.torch import save_file

    old = {"encoder.layer.0.output.dense": torch.rand(1536) + 0.5, "encoder.layer.1.attention.self.query": torch.rand(384)}
    save_file(old, str(tmp_path / "old.safetensors"))
    loaded = Smoothing.load(tmp_path / "old.safetensors")
    assert loaded.plan.groups == tuple((n,) for n in sorted(old)) and not loaded.plan.folds
    assert all(torch.equal(loaded.scales[k], v) for k, v in old.items())
    int8 = StudentExtractor.from_pretrained(trained_dir).quantize(Int8Options(), smoothing=loaded)
    assert int8.int8_layout["divisions"] == 2 and int8.predict(strip_labels(tiny_train[:2]))
    # without per-channel weight scales nothing is folded into the value projection's rows
    per_tensor = int8_smoothing(encoder, calibration, Int8Options(per_channel=False))
    assert not per_tensor.plan.folds and len(per_tensor.plan.outputs) == 6


def test_apply_smoothing_checks_the_whole_plan_before_touching_the_encoder(trained_dir: Path) -> None:
    from ade_distill.student.smoothing import Smoothing, SmoothingPlan, apply_smoothing

    encoder = StudentExtractor.from_pretrained(trained_dir).module.encoder
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    q, k = "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key"
    bad = [Smoothing(scales={q: torch.ones(384), k: 2 * torch.ones(384)}, plan=SmoothingPlan(groups=((q, k),))),
           Smoothing(scales={q: torch.ones(384)}, plan=SmoothingPlan(groups=((q,), (q,)))),
           Smoothing(scales={q: torch.ones(384)}, plan=SmoothingPlan(groups=(), folds={q: "encoder.layer.0.intermediate.dense"}))]
    for smoothing, message in zip(bad, ("different scales", "more than once", "widths differ"), strict=True):
        with pytest.raises(KeyError, match=message):
            apply_smoothing(encoder, smoothing)
        assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())


def test_guard_refuses_a_smoothing_plan_that_changes_the_float_function(
    student: Path, tiny_train: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a wrong fold rule: the feed-forward input does not read the value projection's outputs
    monkeypatch.setattr("ade_distill.student.smoothing.FOLD_RULES", (("attention.self.value", "intermediate.dense"),))
    with pytest.raises(ConfigError, match="changed this encoder's float outputs"):
        guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0)
    assert not (student / INT8_JSON).exists()


def test_quantize_refuses_smoothing_without_scales_and_a_second_quantization(trained_dir: Path) -> None:
    student = StudentExtractor.from_pretrained(trained_dir)
    with pytest.raises(ConfigError, match="smoothing scales go with smooth_alpha > 0"):
        student.quantize(Int8Options())  # smooth_alpha 0.9 by default, and no scales
    student.quantize(Int8Options(smooth_alpha=0.0))
    with pytest.raises(ConfigError, match="already quantized"):
        student.quantize(Int8Options(smooth_alpha=0.0))


def test_compiled_int8_linear_is_close_to_float_and_scales_each_token_alone() -> None:
    from ade_distill.student.int8_compiled import CompiledInt8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(3, 7, 64)
    x[0, 0] *= 50  # one token with a large range: per-token scales keep it from coarsening the others
    q = CompiledInt8Linear(linear)
    assert q.weight_t.dtype == torch.int8 and q.weight_t.shape == (64, 48)
    assert torch.allclose(q.dequantized_weight(), linear.weight, atol=linear.weight.abs().max().item() / 127)
    with torch.no_grad():
        ref, out = linear(x), q(x)
    assert out.shape == ref.shape
    rel = ((out - ref).norm(dim=-1) / ref.norm(dim=-1)).max().item()
    assert rel < 0.02, rel
    # each token's result is the same whether it is quantized in this batch or alone
    assert torch.equal(q(x[1:2, 3:4]), out[1:2, 3:4])
    assert torch.equal(q(x[2]), out[2])


def test_guard_measures_the_compiled_kernel_and_loading_compiles_it(student: Path, tiny_train: list[Example]) -> None:
    """``kernel="compiled"``: the verdict records it, a student loaded with quantize=True runs the int8 layers in
    a torch.compile graph, and its predictions are the ones the guard measured."""
    from ade_distill.experiments.protocol import strip_labels
    from ade_distill.student.int8_compiled import CompiledInt8Linear

    report = guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0,
                              options=Int8Options(kernel="compiled"))
    assert report["kernel"] == "compiled" and report["layout"]["kernel"] == "compiled"
    assert report["attention"] == report["layout"]["attention"] == "bf16"  # the kernel's default, on this BERT
    assert report["layout"]["int8_linears"] == 36 and report["layout"]["smoothed"] == 36
    loaded = StudentExtractor.from_pretrained(student, quantize=True, compile=True)  # compile: already so
    assert loaded._compiled_stage1 is not None and loaded.describe()["compiled"] is True
    assert sum(isinstance(m, CompiledInt8Linear) for m in loaded.module.encoder.modules()) == 36
    calls: list[int] = []
    inner = loaded._compiled_stage1
    loaded._compiled_stage1 = lambda *a: calls.append(1) or inner(*a)
    texts = strip_labels(tiny_train)
    int8 = loaded.predict(texts, batch_size=64)
    assert calls  # the compiled graph predicted
    fp32 = StudentExtractor.from_pretrained(student).predict(texts, batch_size=64)
    from ade_distill.student.int8_guard import measure_loss

    agreement = measure_loss(texts, fp32, int8, labelled=False)["agreement_f1"]
    assert agreement == report["agreement_f1"], (agreement, report["agreement_f1"])


def test_compile_is_refused_for_the_dynamic_kernel_and_per_tensor(student: Path, tiny_train: list[Example],
                                                                  tmp_path: Path) -> None:
    from ade_distill.cli import app

    guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0)
    with pytest.raises(ConfigError, match="dynamic kernel.*quantize --model FOLDER --compile"):
        StudentExtractor.from_pretrained(student, quantize=True, compile=True)
    assert StudentExtractor.from_pretrained(student, quantize=True)._compiled_stage1 is None
    with pytest.raises(ValueError, match="per channel"):
        Int8Options(kernel="compiled", per_channel=False)
    # each kernel's smoothing default (chosen on dev fold 9), unless given
    assert (Int8Options().smooth_alpha, Int8Options(kernel="compiled").smooth_alpha) == (0.9, 0.5)
    assert (Int8Options().attention, Int8Options(kernel="compiled").attention) == ("model", "bf16")
    with pytest.raises(ValueError, match="goes with the compiled int8 kernel"):
        Int8Options(attention="bf16")
    assert Int8Options(kernel="compiled", smooth_alpha=0.0).smooth_alpha == 0.0
    gold = tmp_path / "check.jsonl"
    write_examples(gold, tiny_train)
    res = CliRunner().invoke(app, ["quantize", "--model", str(student), "--check-gold", str(gold), "--compile",
                                   "--per-tensor"])
    assert isinstance(res.exception, ConfigError) and "drop --per-tensor" in str(res.exception)
    res = CliRunner().invoke(app, ["quantize", "--model", str(student), "--check-gold", str(gold), "--attention",
                                   "bf16"])
    assert isinstance(res.exception, ConfigError) and "add --compile" in str(res.exception)
    assert (student / INT8_JSON).exists()  # the earlier verdict is left as it was


def test_bf16_attention_masks_padding_and_stays_close_to_the_models_own(trained_dir: Path) -> None:
    """The compiled kernel's attention choices compute the encoder's function: on a padded batch, each choice's
    last hidden states are close to the model's own attention (sdpa) on the real tokens, and a sentence's states do
    not depend on how much padding its batch adds (the mask is applied)."""
    import copy

    from ade_distill.student.int8_compiled import set_attention

    base = StudentExtractor.from_pretrained(trained_dir)
    texts = ["Rash after amoxicillin.", "Severe hepatotoxicity was attributed to long-term methotrexate therapy in "
             "a patient with psoriasis."]
    enc = base.tokenizer(texts, padding=True, return_tensors="pt")
    real = enc["attention_mask"].bool()
    with torch.no_grad():
        ref = base.module.encoder(**enc).last_hidden_state
    for attention in ("eager", "bf16"):
        encoder = copy.deepcopy(base.module.encoder)
        assert set_attention(encoder, attention) == attention
        with torch.no_grad():
            out = encoder(**enc).last_hidden_state
            alone = encoder(**base.tokenizer(texts[:1], return_tensors="pt")).last_hidden_state
        drift = ((out - ref)[real].norm() / ref[real].norm()).item()
        assert drift < (1e-5 if attention == "eager" else 2e-2), (attention, drift)
        n = alone.shape[1]
        assert torch.allclose(out[0, :n], alone[0], atol=5e-2), attention  # padding masked out
    assert base.module.encoder.config._attn_implementation == "sdpa"  # the copies were changed, not the model


def test_set_attention_keeps_the_models_own_where_it_has_no_attention_interface() -> None:
    from transformers import MPNetConfig, MPNetModel

    from ade_distill.student.int8_compiled import set_attention

    encoder = MPNetModel(MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32))
    assert set_attention(encoder, "bf16") == "model"
    with pytest.raises(ValueError, match="attention must be one of"):
        set_attention(encoder, "flash")


def test_a_verdict_recorded_before_the_attention_option_loads_with_the_models_attention(
    student: Path, tiny_train: list[Example]
) -> None:
    from ade_distill.student.quantize import accepted_int8

    guard_torch_int8(student, tiny_train, check_source="tiny_train", max_f1_loss=100.0,
                     options=Int8Options(kernel="compiled", smooth_alpha=0.0))
    record = json.loads((student / INT8_JSON).read_text())
    assert accepted_int8(student)[0].attention == "bf16"
    del record["attention"]
    (student / INT8_JSON).write_text(json.dumps(record))
    assert accepted_int8(student)[0] == Int8Options(kernel="compiled", smooth_alpha=0.0, attention="model")
