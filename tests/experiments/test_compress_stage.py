"""The reproduce ``compress`` stage (issue 14): its configuration, its keys, early refusals, and the ablation rows
that show a compressed student. The end-to-end run is ``test_issue13_levers.py::test_compress_stage_end_to_end``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ade_distill.errors import ConfigError
from ade_distill.experiments.config import CompressStageConfig, load_config
from ade_distill.experiments.reproduce import Reproduction, RunOptions, compress_key_dict

ROOT = Path(__file__).resolve().parents[2]


def _rep(tmp_path: Path, config: str = "configs/ade_mpnet_compressed.yaml", **changes: object) -> Reproduction:
    raw = yaml.safe_load((ROOT / config).read_text())
    raw.update({"runs_dir": str(tmp_path / "runs"), **changes})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return Reproduction(load_config(p), RunOptions(progress=False))


def test_the_compress_stage_changes_result_keys_only_when_set(tmp_path: Path) -> None:
    plain = _rep(tmp_path, "configs/ade_mpnet.yaml")
    folds = plain.make_folds()
    committed = ROOT / "reports" / "ade_mpnet" / "folds" / "fold0" / "result" / "stage.json"
    assert plain.result_key(folds, "fold", 0) == json.loads(committed.read_text())["key"]  # unchanged
    rep = _rep(tmp_path, "configs/ade_mpnet.yaml", name="ade_mpnet",
               compress={"options": {"encoder": "minilm"}})
    base = rep.result_key(folds, "fold", 0)
    assert base != plain.result_key(folds, "fold", 0)
    rep.cfg = rep.cfg.model_copy(update={"compress": CompressStageConfig(options={"encoder": "minilm", "layers": 3})})
    assert rep.result_key(folds, "fold", 0) != base


def test_the_unlabeled_file_content_enters_the_result_key(tmp_path: Path) -> None:
    texts = tmp_path / "abstracts.jsonl"
    texts.write_text('{"pmid": "1", "text": "Aspirin was given."}\n', encoding="utf-8")
    rep = _rep(tmp_path, compress={"options": {}, "unlabeled": str(texts)})
    folds = rep.make_folds()
    before = rep.result_key(folds, "fold", 9)
    texts.write_text('{"pmid": "1", "text": "Ibuprofen was given."}\n', encoding="utf-8")
    assert rep.result_key(folds, "fold", 9) != before


def test_compress_key_leaves_out_threads_and_the_check_set() -> None:
    from ade_distill.student.compress import CompressConfig

    a = compress_key_dict(CompressConfig(threads=2, check_texts=200))
    assert a == compress_key_dict(CompressConfig(threads=8, check_texts=0))
    assert a != compress_key_dict(CompressConfig(temperature=3.0))
    assert "threads" not in a and "check_texts" not in a


def test_compress_threads_default_to_the_students(tmp_path: Path) -> None:
    rep = _rep(tmp_path)
    assert rep.compress_config().threads == rep.train_config.threads == 2


def test_invalid_compress_options_are_named_with_the_file(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "configs/ade_mpnet_compressed.yaml").read_text())
    raw["compress"]["options"].update({"epochs": 0, "precison": "bf16"})
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"bad\.yaml: compress\.options: epochs: .*; precison: Extra inputs"):
        load_config(p)


def test_what_compression_cannot_do_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compress.unlabeled: .*nowhere.jsonl not found"):
        _rep(tmp_path, compress={"options": {}, "unlabeled": str(tmp_path / "nowhere.jsonl")})
    with pytest.raises(ConfigError, match="must be drug_conditioned"):
        _rep(tmp_path, "configs/cdr_gpt4_replay.yaml", compress={"options": {}})


def test_ablation_refuses_a_compressed_row_of_a_run_without_compression(tmp_path: Path) -> None:
    from ade_distill.experiments.ablation import build, load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "t", "dev_fold": 9, "teacher": "teacher:gpt-4-json", "modes": ["strict"], "n_boot": 0,
        "rows": [{"lever": "c", "config": str(ROOT / "configs/ade_multi_teacher.yaml"), "system": "compressed"}]}))
    with pytest.raises(ConfigError, match="has no compressed system"):
        build(load_spec(spec))


def test_further_hops_keep_old_keys_and_change_keys_only_when_set(tmp_path: Path) -> None:
    rep = _rep(tmp_path)
    folds = rep.make_folds()
    committed = ROOT / "reports" / "ade_mpnet_compressed" / "folds" / "fold0" / "result" / "stage.json"
    assert rep.result_key(folds, "fold", 0) == json.loads(committed.read_text())["key"]  # no hop, no new key
    raw = yaml.safe_load((ROOT / "configs/ade_mpnet_compressed.yaml").read_text())
    hop = {"name": "l4", "options": {"init": "teacher", "layers": 4}}
    with_hop = _rep(tmp_path, compress={**raw["compress"], "further": [hop]})
    assert with_hop.result_key(folds, "fold", 0) != rep.result_key(folds, "fold", 0)
    other = _rep(tmp_path, compress={**raw["compress"], "further": [{**hop, "options": {"init": "teacher",
                                                                                        "layers": 3}}]})
    assert other.result_key(folds, "fold", 0) != with_hop.result_key(folds, "fold", 0)
    # a hop's options change the first hop's: the rest (losses, epochs, precision) are inherited
    (first, o1), (system, o2) = with_hop.cfg.compress.hop_options()
    assert (first, system) == ("compressed", "compressed:l4")
    assert o2 == {**o1, "init": "teacher", "layers": 4} and o2["hidden_weight"] == 1.0


def test_bad_further_hops_are_refused_on_load(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "configs/ade_mpnet_compressed.yaml").read_text())
    hop = {"name": "l4", "options": {"init": "teacher", "layers": 4}}
    for further, message in (([hop, hop], "hop names must differ"),
                             ([{"name": "l4", "options": {"layers": 0}}], "further hop 'l4': layers"),
                             ([{"name": "a b", "options": {}}], "further.0.name")):
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump({**raw, "compress": {**raw["compress"], "further": further}}))
        with pytest.raises(ConfigError, match=message):
            load_config(p)


def test_a_further_hop_has_its_own_training_seconds() -> None:
    from ade_distill.experiments.ablation import system_seconds

    timings = {"student": 10.0, "student:round1": 5.0, "compressed": 20.0, "compressed:l4": 7.0}
    assert system_seconds(timings, "student") == 15.0
    assert system_seconds(timings, "compressed") == 20.0 and system_seconds(timings, "compressed:l4") == 7.0
    assert system_seconds(timings, "supervised") is None


def test_an_explicit_default_init_keeps_the_result_key(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "configs/ade_mpnet_compressed.yaml").read_text())
    rep = _rep(tmp_path)
    explicit = _rep(tmp_path, compress={**raw["compress"], "options": {**raw["compress"]["options"], "init": "encoder"}})
    folds = rep.make_folds()
    assert explicit.result_key(folds, "fold", 0) == rep.result_key(folds, "fold", 0)


def test_a_hop_that_copies_its_teacher_keeps_no_layer_choice_of_the_first_hop(tmp_path: Path) -> None:
    first = {"encoder": "minilm", "layer_map": {1: 2, 2: 4}, "attention_layers": [2], "hidden_weight": 1.0}
    cfg = CompressStageConfig(options=first, further=[{"name": "l4", "options": {"init": "teacher", "layers": 4}},
                                                      {"name": "x", "options": {"layers": 2}}])
    (_, o1), (_, copy), (_, fresh) = cfg.hop_options()
    assert o1 == first and copy == {"encoder": "minilm", "hidden_weight": 1.0, "init": "teacher", "layers": 4}
    assert fresh == {**first, "layers": 2}  # init 'encoder': the first hop's layer choices still apply


def test_init_teacher_on_the_first_hop_is_refused_before_training_when_it_cannot_work(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "configs/ade_mpnet_compressed.yaml").read_text())
    options = {**raw["compress"]["options"], "init": "teacher"}  # encoder minilm; the distilled student is mpnet
    with pytest.raises(ConfigError, match="compress.options.encoder is 'minilm' but the distilled student's is 'mpnet'"):
        _rep(tmp_path, compress={**raw["compress"], "options": options})
    with pytest.raises(ConfigError, match="adapted"):
        _rep(tmp_path, compress={**raw["compress"], "options": {**options, "encoder": "mpnet"}},
             adapt_encoder={"texts": str(ROOT / "README.md")})
    with pytest.raises(ConfigError, match="an ensemble of 2"):
        _rep(tmp_path, ensemble={"seeds": 2}, compress={"options": {"init": "teacher", "encoder": "mpnet"}})
    _rep(tmp_path, compress={**raw["compress"], "options": {**options, "encoder": "mpnet"}})  # accepted
