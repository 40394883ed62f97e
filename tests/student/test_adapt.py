"""Encoder domain adaptation (continued masked-LM pretraining): blocks, the masked-positions loss, a tiny real
run on shared PubMed abstracts, the gold-text guard, the CLI and the reproduction stage's keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.experiments.protocol import filter_documents
from ade_distill.records import Example, write_examples
from ade_distill.student.adapt import AdaptConfig, adapt_encoder, blocks_of, masked_lm_loss

ROOT = Path(__file__).resolve().parents[2]


def test_blocks_of_cuts_consecutive_blocks_and_drops_a_short_tail() -> None:
    ids = list(range(10))
    assert blocks_of(ids, 4, 2) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert blocks_of(ids, 4, 3) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert blocks_of([1], 4, 2) == [] and blocks_of([], 4, 1) == []


def test_filter_documents_removes_gold_pmids_and_gold_text() -> None:
    gold = [Example(id="g1", text="Aspirin caused  rash.", meta={"pmid": "111"}),
            Example(id="g2", text="Case report.", meta={"pmid": "222"})]
    docs = [Example(id="d1", text="Unrelated abstract about statins.", meta={"pmid": "999"}),
            Example(id="d2", text="Anything.", meta={"pmid": "111"}),
            Example(id="d3", text="Intro. ASPIRIN caused rash. More.", meta={"pmid": "333"}),
            Example(id="d4", text="A case report. Of a case.", meta={"pmid": "444"})]
    kept, counts = filter_documents(docs, gold)
    assert [d.id for d in kept] == ["d1"]
    assert counts == {"documents_in": 4, "removed_by_pmid": 1, "removed_by_text": 2, "documents_out": 1}


@pytest.fixture(scope="module")
def abstracts(data_root: Path) -> list[str]:
    from ade_distill.data.unlabeled import iter_documents

    out = []
    for d in iter_documents(data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl"):
        out.append(d.text)
        if len(out) == 12:
            break
    return out


def test_masked_positions_loss_equals_the_model_loss() -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

    from ade_distill.student.encoders import resolve_encoder

    path = resolve_encoder("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    batch = DataCollatorForLanguageModeling(tok, mlm_probability=0.3, seed=3)(
        [{"input_ids": tok(t)["input_ids"]} for t in ("Aspirin caused severe bleeding in two patients.",
                                                       "Hydroxychloroquine and mortality.")])
    assert int((batch["labels"] != -100).sum()) > 0
    with torch.no_grad():
        assert float(masked_lm_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


@pytest.mark.slow
def test_tiny_adaptation_writes_a_loadable_encoder(tmp_path: Path, abstracts: list[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from ade_distill.student.model import load_encoder

    cfg = AdaptConfig(epochs=2, batch_size=8, max_length=32, lr=1e-4, heldout_fraction=0.2, threads=2)
    out = tmp_path / "enc"
    with caplog.at_level(logging.INFO, logger="ade_distill.student.adapt"):
        s = adapt_encoder("minilm", abstracts, out, cfg, progress=False)
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MLM step")]
    # progress for logs (non-interactive runs): a line every 5% of the steps (every step when fewer than 20)
    assert min(s["steps"], 20) <= len(steps) <= 40 and steps[-1].startswith(f"MLM step {s['steps']}/{s['steps']} (100%)")
    assert [m for m in caplog.messages if m.startswith("MLM epoch")][-1].startswith("MLM epoch 2/2 done")
    assert s["documents"] == 12 and s["blocks_train"] > 0 and s["blocks_heldout"] > 0
    assert s["steps"] == 2 * -(-s["blocks_train"] // 8)
    assert s["heldout_mlm_loss_after"] < s["heldout_mlm_loss_before"]  # the (new) head and encoder learn
    assert json.loads((out / "adapt.json").read_text())["config"]["max_length"] == 32
    assert not (tmp_path / "enc.tmp").exists()
    encoder, tokenizer = load_encoder(str(out))
    assert type(encoder).__name__ == "BertModel" and tokenizer.is_fast


@pytest.mark.slow
def test_adaptation_does_not_depend_on_the_process_random_state(tmp_path: Path, abstracts: list[str]) -> None:
    """MiniLM ships no masked-LM head, so loading draws a fresh one: the same config and texts must give the
    same encoder whatever the process drew before (its cache key promises that)."""
    import torch

    cfg = AdaptConfig(epochs=1, batch_size=8, max_length=32, heldout_fraction=0.2, threads=2)
    weights = []
    for i, draws in enumerate((0, 7)):
        torch.rand(draws)  # a different global random state before each run
        s = adapt_encoder("minilm", abstracts[:6], tmp_path / f"enc{i}", cfg, progress=False)
        weights.append((tmp_path / f"enc{i}" / "model.safetensors").read_bytes())
        assert s["heldout_mlm_loss_before"] > 0
    assert weights[0] == weights[1]


def test_adaptation_without_text_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no text"):
        adapt_encoder("minilm", ["", "  "], tmp_path / "enc", progress=False)
    assert not (tmp_path / "enc").exists()


@pytest.mark.slow
def test_cli_excludes_evaluation_records(tmp_path: Path, abstracts: list[str]) -> None:
    from ade_distill.cli import app

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"pmid": str(9000 + i), "text": t}) + "\n" for i, t in enumerate(abstracts)))
    held = tmp_path / "held.jsonl"
    write_examples(held, [Example(id="x", text=abstracts[0].split(". ")[1] + ".", meta={"pmid": "1"}),
                          Example(id="y", text="whatever", meta={"pmid": "9003"})])
    res = CliRunner().invoke(app, ["adapt-encoder", "--texts", str(docs), "--out", str(tmp_path / "enc"),
                                   "--exclude", str(held), "--max-length", "32", "--batch-size", "16",
                                   "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert "excluded 1 documents by PMID and 1 by text" in res.output
    assert json.loads((tmp_path / "enc" / "adapt.json").read_text())["documents"] == 10


# -- the reproduction stage -------------------------------------------------------------------------------------
def test_adaptation_config_is_validated_and_keyed(tmp_path: Path) -> None:
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import Reproduction, RunOptions

    path = ROOT / "configs" / "beat_the_teacher" / "mlm_pubmed.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("mlm: {epochs: 1,", "mlm: {epochz: 1,"))
    with pytest.raises(ConfigError, match="epochz"):
        load_config(bad)
    cfg = load_config(path, overrides={"runs_dir": str(tmp_path / "a")})
    rep = Reproduction(cfg, RunOptions(progress=False))
    assert rep.adapted is not None
    folder, name, akey = rep.adapted
    assert folder == tmp_path / "a" / "encoders" / akey and name == f"minilm+mlm:{akey}"
    assert rep.train_config.encoder == str(folder) == rep.supervised_config.encoder
    assert rep.train_key(rep.train_config)["encoder"] == name
    # the result key names the adaptation by its key, not by the runs folder
    other = Reproduction(load_config(path, overrides={"runs_dir": str(tmp_path / "b")}), RunOptions(progress=False))
    folds = rep.make_folds()
    assert other.result_key(other.make_folds(), "fold", 9) == rep.result_key(folds, "fold", 9)
    changed = Reproduction(load_config(path, overrides={
        "runs_dir": str(tmp_path / "a"), "adapt_encoder": {**cfg.adapt_encoder.model_dump(),
                                                           "mlm": {"epochs": 2}}}), RunOptions(progress=False))
    assert changed.adapted[2] != akey and changed.result_key(folds, "fold", 9) != rep.result_key(folds, "fold", 9)


def test_cli_refuses_to_replace_an_encoder_folder(tmp_path: Path) -> None:
    from ade_distill.cli import app

    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text("{}")
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"pmid": "1", "text": "Some text."}) + "\n")
    res = CliRunner().invoke(app, ["adapt-encoder", "--texts", str(docs), "--out", str(tmp_path / "enc")])
    assert res.exit_code != 0 and "exists and is not empty" in str(res.exception)
    assert (tmp_path / "enc" / "config.json").read_text() == "{}"


def test_max_length_beyond_the_encoder_positions_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exceeds the 512 positions"):
        adapt_encoder("minilm", ["Some text. " * 50], tmp_path / "enc", AdaptConfig(max_length=1024), progress=False)


def test_missing_adaptation_texts_is_a_config_error(tmp_path: Path) -> None:
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import Reproduction, RunOptions

    cfg = load_config(ROOT / "configs" / "beat_the_teacher" / "mlm_pubmed.yaml",
                      overrides={"runs_dir": str(tmp_path), "adapt_encoder": {"texts": str(tmp_path / "no.jsonl")}})
    with pytest.raises(ConfigError, match="adapt_encoder.texts: .*no.jsonl not found"):
        Reproduction(cfg, RunOptions(progress=False))


def test_a_local_encoder_folder_enters_keys_by_its_weights(tmp_path: Path) -> None:
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import Reproduction, RunOptions

    enc = tmp_path / "my-encoder"
    enc.mkdir()
    (enc / "model.safetensors").write_bytes(b"one")
    cfg = load_config(ROOT / "configs" / "ade_multi_teacher.yaml",
                      overrides={"runs_dir": str(tmp_path), "student": {"encoder": str(enc)}})
    rep = Reproduction(cfg, RunOptions(progress=False))
    first = rep.train_key(rep.train_config)
    (enc / "model.safetensors").write_bytes(b"two")
    second = rep.train_key(rep.train_config)
    assert first["encoder"] == second["encoder"] == str(enc)
    assert first["encoder_weights"] != second["encoder_weights"]
    # an alias is not a folder: its key is the name alone, as in the committed reports
    assert "encoder_weights" not in Reproduction(load_config(ROOT / "configs" / "ade_multi_teacher.yaml"),
                                                 RunOptions(progress=False)).train_key(rep.train_config.model_copy(
                                                     update={"encoder": "minilm"}))
