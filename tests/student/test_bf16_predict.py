"""Faster torch prediction. bf16 (``--precision bf16``: bfloat16 autocast of the forward passes) really runs in
bf16, agrees with fp32 within a stated tolerance on 200 real ADE sentences, reaches every entry point (CLI,
ensemble, spaCy, the Ray manifest) and is refused where it does not apply; ``--compile`` (``torch.compile`` of the
stage-1 pass) predicts what the eager student predicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.evaluation import micro_prf
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.student.model import StudentExtractor, check_precision
from ade_distill.student.shards import Manifest, run_settings

# bf16 keeps 8 bits of mantissa: class probabilities move by up to a few hundredths, so a word whose probability
# sits near a decoding threshold can flip. Measured on the tiny fixture student (2026-12-01): max |Δp| 0.012 on the
# 200 sentences, relation agreement with fp32 99.5 strict / 99.5 lenient F1; compiled bf16 against eager bf16
# 100.0 / 100.0.
MAX_PROB_DIFF = 0.05
MIN_AGREEMENT = 95.0


@pytest.fixture(scope="module")
def sentences(ade_gold: list[Example]) -> list[Example]:
    return ade_gold[:150] + ade_gold[-50:]


def _decisions(p: Example) -> tuple:
    by = p.span_by_id()
    return ([(s.label, s.start, s.end) for s in p.spans],
            [(by[r.head].start, by[r.tail].start, r.label) for r in p.relations])


def _stage1_probs(student: StudentExtractor, texts: list[str]) -> torch.Tensor:
    encodings = student.encode(texts)
    ids, mask = student.pad(encodings)
    with torch.inference_mode():
        _, logits = student.stage1(ids, mask)
    return torch.softmax(logits, dim=-1)[mask.bool()]


@pytest.mark.slow
def test_bf16_runs_in_bf16_and_agrees_with_fp32(trained_dir: Path, sentences: list[Example]) -> None:
    fp32 = StudentExtractor.from_pretrained(trained_dir)
    bf16 = StudentExtractor.from_pretrained(trained_dir, precision="bf16")
    texts = [e.text for e in sentences]
    p32, p16 = _stage1_probs(fp32, texts), _stage1_probs(bf16, texts)
    assert p16.dtype == torch.float32  # decoding always reads fp32
    diff = (p32 - p16).abs().max().item()
    print(f"max |p_bf16 - p_fp32| {diff:.4f}")
    assert 0 < diff <= MAX_PROB_DIFF, diff  # > 0: the forward pass really ran in bf16

    ref = fp32.predict(sentences, batch_size=32)
    got = bf16.predict(sentences, batch_size=32)
    assert sum(len(p.relations) for p in ref) > 20
    for mode in ("strict", "lenient"):
        agreement = 100 * micro_prf(ref, got, mode, "relation")[2]
        print(f"{mode} relation agreement with fp32 {agreement:.1f}")
        assert agreement >= MIN_AGREEMENT
    assert got[0].meta["predicted_by"]["precision"] == "bf16"
    assert "precision" not in ref[0].meta["predicted_by"]  # fp32 records keep the keys they always had


def test_bf16_keeps_encoder_weights_in_bf16_equal_to_autocast_and_saves_fp32(
    trained_dir: Path, sentences: list[Example], tmp_path: Path
) -> None:
    fp32_state = {k: v.clone() for k, v in StudentExtractor.from_pretrained(trained_dir).module.state_dict().items()}
    bf16 = StudentExtractor.from_pretrained(trained_dir, precision="bf16")
    linears = [m for m in bf16.module.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert bf16.module.head_classifier.weight.dtype == torch.float32  # task layers stay fp32
    # What autocast computes from fp32 weights (the cast it would repeat on every pass), bit for bit.
    autocast = StudentExtractor.from_pretrained(trained_dir)
    autocast.precision = "bf16"
    texts = sentences[:60]
    assert [p.model_dump() for p in bf16.predict(texts)] == [p.model_dump() for p in autocast.predict(texts)]

    bf16.save_pretrained(tmp_path / "saved")  # the fp32 weights, not their bf16 copies
    saved = StudentExtractor.from_pretrained(tmp_path / "saved").module.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in fp32_state.items())
    assert all(m.weight.dtype == torch.bfloat16 for m in linears)  # still predicting in bf16 after saving
    bf16.set_precision("fp32")
    assert all(torch.equal(bf16.module.state_dict()[k], v) for k, v in fp32_state.items())


def test_bf16_and_compile_are_refused_where_they_do_not_apply(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precision must be one of"):
        check_precision("fp16")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        StudentExtractor.from_pretrained(tmp_path, runtime="onx", precision="bf16")
    with pytest.raises(ConfigError, match="not to an int8 .* drop quantize, or use precision fp32"):
        StudentExtractor.from_pretrained(tmp_path, quantize=True, precision="bf16")
    with pytest.raises(ConfigError, match="not to the onnx runtime: use runtime torch, or use precision fp32"):
        StudentExtractor.from_pretrained(tmp_path, runtime="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="compile applies to the torch student, not to the onnx runtime"):
        StudentExtractor.from_pretrained(tmp_path, runtime="onnx", compile=True)


@pytest.mark.slow
def test_cli_predict_precision_and_ensemble(trained_dir: Path, sentences: list[Example], tmp_path: Path) -> None:
    from ade_distill.cli import app

    inp = tmp_path / "in.jsonl"
    write_examples(inp, sentences[:20])
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["predict", "--model", str(trained_dir), "--model", str(trained_dir),
                                   "--input", str(inp), "--out", str(out), "--precision", "bf16"])
    assert res.exit_code == 0, res.output
    preds = list(read_examples(out))
    assert [m["precision"] for m in preds[0].meta["predicted_by"]["ensemble"]] == ["bf16", "bf16"]
    res = CliRunner().invoke(app, ["predict", "--model", str(trained_dir), "--input", str(inp), "--out",
                                   str(tmp_path / "x.jsonl"), "--precision", "fp8"])
    assert isinstance(res.exception, ConfigError) and "precision must be one of" in str(res.exception)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_spacy_component_bf16(trained_dir: Path, sentences: list[Example]) -> None:
    spacy = pytest.importorskip("spacy")
    import ade_distill.student.spacy_component  # noqa: F401 - registers the factory

    nlp = spacy.blank("en")
    nlp.add_pipe("ade_distill", config={"model": str(trained_dir), "precision": "bf16"})
    assert nlp.get_pipe("ade_distill").student.precision == "bf16"
    doc = nlp(sentences[0].text)
    assert doc.spans["ade_distill"]


def test_ray_manifest_binds_precision_and_compile_and_reads_old_manifests(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def settings(**kw: object) -> dict:  # as predict_ray builds them
        return run_settings([], **{"precision": "fp32", "compile": False, "out_format": "jsonl", **kw})

    Manifest.open(out, settings()).save()
    data = json.loads((out / "manifest.json").read_text())
    del data["settings"]["precision"], data["settings"]["compile"]  # written before the settings existed
    (out / "manifest.json").write_text(json.dumps(data))
    Manifest.open(out, settings())  # read as fp32, not compiled
    with pytest.raises(ConfigError, match="other settings.*precision: 'fp32' then, 'bf16' now"):
        Manifest.open(out, settings(precision="bf16"))
    with pytest.raises(ConfigError, match="other settings.*compile: False then, True now"):
        Manifest.open(out, settings(compile=True))


@pytest.mark.slow
def test_compiled_student_predicts_like_the_eager_one(trained_dir: Path, sentences: list[Example]) -> None:
    eager = StudentExtractor.from_pretrained(trained_dir).predict(sentences[:60], batch_size=16)
    compiled = StudentExtractor.from_pretrained(trained_dir, compile=True)
    calls = []
    inner = compiled._compiled_stage1
    compiled._compiled_stage1 = lambda *a: calls.append(1) or inner(*a)
    torch._dynamo.utils.counters.clear()
    preds = compiled.predict(sentences[:60], batch_size=16)  # batches of several shapes: one dynamic graph
    assert len(calls) == 4 and torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it really compiled
    assert compiled.describe()["compiled"] is True and preds[0].meta["predicted_by"]["compiled"] is True
    # fp32: the same spans and relations, scores within 1e-4
    assert [_decisions(p) for p in preds] == [_decisions(p) for p in eager]
    scores = [(x.score, y.score) for p, q in zip(preds, eager, strict=True)
              for x, y in zip((*p.spans, *p.relations), (*q.spans, *q.relations), strict=True)]
    assert len(scores) > 50 and max(abs(x - y) for x, y in scores) <= 1e-4


@pytest.mark.slow
def test_compiled_bf16_agrees_with_eager_bf16(trained_dir: Path, sentences: list[Example]) -> None:
    """The fastest torch setting (bf16 + compile): inductor's bf16 kernels round differently from eager bf16."""
    eager = StudentExtractor.from_pretrained(trained_dir, precision="bf16").predict(sentences, batch_size=32)
    fast = StudentExtractor.from_pretrained(trained_dir, precision="bf16", compile=True)
    preds = fast.predict(sentences, batch_size=32)
    assert fast.describe()["precision"] == "bf16" and fast.describe()["compiled"] is True
    for mode in ("strict", "lenient"):
        agreement = 100 * micro_prf(eager, preds, mode, "relation")[2]
        print(f"{mode} relation agreement of compiled bf16 with eager bf16 {agreement:.1f}")
        assert agreement >= MIN_AGREEMENT
