"""ONNX export and runtime: the same predictions as torch on 200 real ADE sentences (relations identical, logits
within 1e-4), every architecture, the int8 accuracy guard (accepted and refused), and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.records import Example, read_examples, write_examples
from ade_distill.student.model import StudentConfig, StudentExtractor

for _name in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_name, reason=f"{_name} is not installed (pip install 'ade-distill[onnx]')")

from ade_distill.student.onnx_export import (  # noqa: E402 - after the import checks
    AccuracyGuardError,
    compare_forwards,
    export_onnx,
    quantize_graph,
    quantize_int8,
)
from ade_distill.student.onnx_runtime import MANIFEST, STAGE1_INT8  # noqa: E402

pytestmark = pytest.mark.slow

# Absolute, on each graph's logits against its torch function on the same inputs (measured ~1e-5), on the class
# probabilities end to end (~5e-6) and on span and relation scores (~1e-7).
TOLERANCE = 1e-4


def _decisions(preds: list[Example]) -> list[tuple]:
    """Everything of a prediction but the scores and meta."""
    out = []
    for p in preds:
        by = p.span_by_id()
        out.append((p.id, p.text, [(s.id, s.label, s.start, s.end) for s in p.spans],
                    [(by[r.head].start, by[r.tail].start, r.label) for r in p.relations]))
    return out


def _scores(preds: list[Example]) -> list[float]:
    return [x.score for p in preds for x in (*p.spans, *p.relations)]


def _assert_same(a: list[Example], b: list[Example]) -> None:
    assert _decisions(a) == _decisions(b)
    assert max((abs(x - y) for x, y in zip(_scores(a), _scores(b), strict=True)), default=0.0) <= TOLERANCE


@pytest.fixture(scope="module")
def exported(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny trained student with its ONNX export in the default place (``<student>/onnx``)."""
    student = shutil.copytree(trained_dir, tmp_path_factory.mktemp("onnx") / "student")
    export_onnx(student)
    return student


@pytest.fixture(scope="module")
def sentences(ade_gold: list[Example]) -> list[Example]:
    return ade_gold[:150] + ade_gold[-50:]


def test_onnx_predictions_equal_torch_on_200_sentences(exported: Path, sentences: list[Example]) -> None:
    manifest = json.loads((exported / "onnx" / MANIFEST).read_text())
    assert manifest["architecture"] == "drug_conditioned" and manifest["int8"] is None
    assert max(manifest["check"]["max_abs_diff"].values()) <= TOLERANCE
    torch_model = StudentExtractor.from_pretrained(exported)
    onnx_model = StudentExtractor.from_pretrained(exported, runtime="onnx")
    assert onnx_model.module is None and onnx_model.describe()["runtime"] == "onnx"
    torch_preds = torch_model.predict(sentences, batch_size=32)
    onnx_preds = onnx_model.predict(sentences, batch_size=32)
    assert sum(len(p.relations) for p in torch_preds) > 20
    _assert_same(torch_preds, onnx_preds)
    diffs = compare_forwards(torch_model, onnx_model, [e.text for e in sentences], batch_sizes=(1, 32))
    assert max(diffs["stage1_logits"], diffs["stage2_logits"], diffs["probabilities"]) <= TOLERANCE
    assert diffs["stage2_logits_end_to_end"] <= 10 * TOLERANCE  # state differences times the stage-2 weights
    # the export folder alone is enough to predict (it carries the tokenizer, task and settings)
    alone = StudentExtractor.from_pretrained(exported / "onnx", runtime="onnx")
    _assert_same(torch_preds[:20], alone.predict(sentences[:20]))


@pytest.mark.parametrize("settings", [{"architecture": "pairwise"}, {"tail_head": "interaction"}],
                         ids=["pairwise", "interaction"])
def test_every_architecture_exports(settings: dict, ade_task, tmp_path: Path, sentences: list[Example]) -> None:
    # Untrained heads with low thresholds: many spans and pairs, so stage 2 runs on many rows.
    cfg = StudentConfig(encoder="minilm", max_length=64, head_threshold=0.3, tail_threshold=0.3,
                        relation_threshold=0.4, **settings)
    folder = StudentExtractor.from_encoder(ade_task, cfg, seed=0).save_pretrained(tmp_path / "m")
    export_onnx(folder)
    torch_preds = StudentExtractor.from_pretrained(folder).predict(sentences[:40], batch_size=16)
    onnx_preds = StudentExtractor.from_pretrained(folder, runtime="onnx").predict(sentences[:40], batch_size=16)
    assert sum(len(p.relations) for p in torch_preds) > 0
    _assert_same(torch_preds, onnx_preds)


def test_stale_or_missing_export_is_refused(exported: Path, tmp_path: Path, trained_dir: Path) -> None:
    with pytest.raises(ConfigError, match="has no ONNX export.*export-onnx"):
        StudentExtractor.from_pretrained(trained_dir, runtime="onnx")
    with pytest.raises(ConfigError, match="runtime must be"):
        StudentExtractor.from_pretrained(trained_dir, runtime="tensorrt")
    with pytest.raises(ConfigError, match="no accepted int8 model"):
        StudentExtractor.from_pretrained(exported, runtime="onnx", quantize=True)
    copy = shutil.copytree(exported, tmp_path / "copy")
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ConfigError, match="exported from other weights"):
        StudentExtractor.from_pretrained(copy, runtime="onnx")


def test_corrupt_export_files_are_data_errors(exported: Path, tmp_path: Path) -> None:
    """A truncated graph, a student.json that is not JSON or not a valid config, a broken config.json: each a
    DataError naming the file (not onnxruntime's protobuf error or pydantic's ValidationError)."""
    from ade_distill.errors import DataError
    from ade_distill.student.onnx_runtime import load_onnx_student

    def copy(name: str) -> Path:
        return shutil.copytree(exported / "onnx", tmp_path / name)

    graph = copy("graph")
    (graph / "stage1.onnx").write_bytes((graph / "stage1.onnx").read_bytes()[:5000])  # a cut-off download
    with pytest.raises(DataError, match=r"stage1\.onnx.*cannot load the ONNX graph"):
        load_onnx_student(graph)
    empty = copy("empty")
    (empty / "stage2.onnx").write_bytes(b"")
    with pytest.raises(DataError, match=r"stage2\.onnx.*cannot load the ONNX graph"):
        load_onnx_student(empty)
    not_json = copy("not_json")
    (not_json / "student.json").write_text('{"architecture": "drug_conditioned", "enc', encoding="utf-8")
    with pytest.raises(DataError, match=r"student\.json.*not a valid student config"):
        load_onnx_student(not_json)
    invalid = copy("invalid")
    cfg = json.loads((invalid / "student.json").read_text(encoding="utf-8"))
    (invalid / "student.json").write_text(json.dumps({**cfg, "max_length": "long"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"student\.json.*max_length"):
        load_onnx_student(invalid)
    encoder = copy("encoder")
    (encoder / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"config\.json.*not a valid encoder config"):
        load_onnx_student(encoder)


def _broken(src: Path, dst: Path, **options) -> dict:
    """A deliberately broken quantization: int8 as usual, then the stage-1 tag layer's weights zeroed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    layout = quantize_graph(src, dst, **options)
    model = onnx.load(str(dst))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim == 2 and 3 in arr.shape:  # (hidden, 3): the head tag layer
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(arr), init.name))
    onnx.save(model, str(dst))
    return layout


def test_int8_guard_refuses_a_broken_quantization(exported: Path, tiny_train: list[Example]) -> None:
    with pytest.raises(AccuracyGuardError, match=r"int8 model refused: relation F1 loss .* exceeds --max-f1-loss 0.5"
                       ) as err:
        quantize_int8(exported, tiny_train, check_source="tiny_train", quantizer=_broken)
    report = err.value.report
    assert not report["accepted"] and report["reference"] == "gold" and report["loss"] > 50
    assert report["int8_f1"]["strict"] == 0.0 and report["fp32_f1"]["strict"] > 50
    assert not (exported / "onnx" / STAGE1_INT8).exists()
    manifest = json.loads((exported / "onnx" / MANIFEST).read_text())
    assert manifest["int8"]["accepted"] is False
    with pytest.raises(ConfigError, match="accuracy guard refused it"):
        StudentExtractor.from_pretrained(exported, runtime="onnx", quantize=True)
    # against the fp32 predictions as reference (no labels needed), the same refusal
    with pytest.raises(AccuracyGuardError, match="against the fp32 predictions"):
        quantize_int8(exported, tiny_train, labelled=False, quantizer=_broken)


def test_int8_guard_accepts_and_int8_predicts(exported: Path, tiny_train: list[Example]) -> None:
    report = quantize_int8(exported, tiny_train, check_source="tiny_train", max_f1_loss=100.0)
    assert report["accepted"] and report["per_channel"] and report["check_examples"] == len(tiny_train)
    assert set(report["loss_vs_fp32"]) == {"strict", "lenient"} and "loss_vs_gold" in report
    assert report["size_mb"]["int8"] < report["size_mb"]["fp32"]
    # MiniLM: 6 layers x 6 projections, of which the 6 FFN outputs and the tag layer stay in float
    assert report["layout"] == {"int8_matmuls": 30, "float": {"tag_layer": 1, "ffn_output": 6}}
    assert (exported / "onnx" / STAGE1_INT8).is_file()
    int8 = StudentExtractor.from_pretrained(exported, runtime="onnx", quantize=True)
    preds = int8.predict(tiny_train)
    assert preds[0].meta["predicted_by"]["quantized"] is True
    assert sum(len(p.relations) for p in preds) > 0
    with pytest.raises(ConfigError, match="max_f1_loss must be >= 0"):
        quantize_int8(exported, tiny_train, max_f1_loss=-1)
    with pytest.raises(ConfigError, match="needs a check set"):  # the fixture student was trained without --dev
        quantize_int8(exported)


def test_cli_export_refusal_and_predict_runtime_onnx(trained_dir: Path, tiny_train: list[Example], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ade_distill.cli import app
    from ade_distill.student import onnx_export

    student = shutil.copytree(trained_dir, tmp_path / "student")
    gold = tmp_path / "check.jsonl"
    write_examples(gold, tiny_train)
    monkeypatch.setattr(onnx_export, "quantize_graph", _broken)
    res = CliRunner().invoke(app, ["export-onnx", "--model", str(student), "--out", str(tmp_path / "export"),
                                   "--int8", "--check-gold", str(gold), "--max-f1-loss", "0.5"])
    assert res.exit_code != 0 and isinstance(res.exception, AccuracyGuardError)
    assert "int8 model refused" in str(res.exception) and "exported" in res.output
    assert (tmp_path / "export" / "stage1.onnx").is_file() and not (tmp_path / "export" / STAGE1_INT8).exists()
    out_torch, out_onnx = tmp_path / "torch.jsonl", tmp_path / "onnx.jsonl"
    for out, extra in ((out_torch, ["--model", str(student)]),
                       (out_onnx, ["--model", str(tmp_path / "export"), "--runtime", "onnx"])):
        res = CliRunner().invoke(app, ["predict", *extra, "--input", str(gold), "--out", str(out)])
        assert res.exit_code == 0, res.output
    _assert_same(list(read_examples(out_torch)), list(read_examples(out_onnx)))


def test_spacy_component_runs_onnx(exported: Path, tiny_train: list[Example]) -> None:
    import spacy

    import ade_distill.student.spacy_component  # noqa: F401 - registers the factory

    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("ade_distill", config={"model": str(exported), "runtime": "onnx"})
    assert pipe.student.onnx is not None
    docs = list(nlp.pipe([e.text for e in tiny_train[:8]]))
    want = StudentExtractor.from_pretrained(exported).predict([Example(id=str(i), text=e.text)
                                                              for i, e in enumerate(tiny_train[:8])])
    assert [len(d._.relations) for d in docs] == [len(w.relations) for w in want]
    assert sum(len(w.relations) for w in want) > 0
