"""`ade-distill compress`: a teacher student (or an ensemble of them) distilled into a smaller student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.errors import ConfigError
from ade_distill.records import Example, write_examples
from ade_distill.student.compress import (
    CompressConfig,
    _FeaturePlan,
    _projections,
    align_words,
    compress_student,
    keep_layers,
    same_tokenizer,
    soft_kl,
    token_pairs,
)
from ade_distill.student.encode import Encoding
from ade_distill.student.model import StudentExtractor
from tests.student.conftest import with_thresholds

pytestmark = pytest.mark.slow

FAST = {"epochs": 1, "batch_size": 16, "max_length": 64, "layers": 2, "check_texts": 100}


@pytest.fixture(scope="module")
def transfer(ade_gold: list[Example]) -> list[str]:
    """About 100 sentences: relations and ADE-NEG sentences (labels unused)."""
    return [e.text for e in ade_gold[:70] + ade_gold[-30:]]


@pytest.fixture(scope="module")
def all_losses(trained_dir: Path, transfer: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # every loss at once, under bf16 autocast (the teachers' passes and the student's forward pass)
    cfg = CompressConfig.build(**FAST, kl_weight=1.0, hard_weight=0.5, hidden_weight=1.0, attention_weight=1.0,
                               precision="bf16")
    return compress_student([trained_dir], transfer, tmp_path_factory.mktemp("compress") / "small", cfg)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "compress.json").read_text())


def test_compressed_folder_loads_predicts_and_says_where_it_came_from(
    all_losses: Path, trained_dir: Path, ade_gold: list[Example]
) -> None:
    student = StudentExtractor.from_pretrained(all_losses)
    assert student.module.encoder.config.num_hidden_layers == 2
    preds = student.predict(ade_gold[:10])
    assert [p.id for p in preds] == [e.id for e in ade_gold[:10]]
    s = _summary(all_losses)
    assert s["kept_layers"] == [0, 5] and s["identical_tokenizer"] and s["alignment"]["unaligned_words"] == 0
    assert all(0 < s["history"][0][k] < float("inf") for k in ("kl", "hard", "hidden", "attention"))
    assert s["config"]["precision"] == "bf16"
    assert student.config.provenance["compressed_from"][0]["model"] == str(trained_dir)
    card = (all_losses / "README.md").read_text()
    assert "compressed from" in card and str(trained_dir) in card and "attention" in card


def test_kl_alone_moves_the_student_toward_the_teacher_and_zero_weights_log_zero(
    trained_dir: Path, transfer: list[str], tmp_path: Path
) -> None:
    cfg = CompressConfig.build(**FAST, kl_weight=1.0, hard_weight=0.0, lr=3e-4, head_lr=5e-3, temperature=1.0)
    s = _summary(compress_student([trained_dir], transfer, tmp_path / "kl", cfg))
    assert s["stage1_kl_after"] < s["stage1_kl_before"]
    epoch = s["history"][0]
    assert epoch["kl"] > 0 and epoch["hard"] == epoch["hidden"] == epoch["attention"] == 0.0


def test_cli_compresses_an_ensemble_of_three(trained_dir: Path, ade_gold: list[Example], tmp_path: Path) -> None:
    from ade_distill.cli import app

    teachers = [trained_dir, with_thresholds(trained_dir, tmp_path / "low", 0.3, 0.3),
                with_thresholds(trained_dir, tmp_path / "high", 0.7, 0.7)]
    write_examples(tmp_path / "texts.jsonl", ade_gold[:30])
    args = ["compress", "--texts", str(tmp_path / "texts.jsonl"), "--out", str(tmp_path / "small"),
            "--layers", "1", "--epochs", "1", "--max-length", "64", "--hidden-weight", "0.5"]
    for t in teachers:
        args += ["--teacher", str(t)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    s = _summary(tmp_path / "small")
    assert len(s["teachers"]) == 3 and s["kept_layers"] == [0] and s["transfer"]["transfer_texts"] == 30
    assert StudentExtractor.from_pretrained(tmp_path / "small").predict(ade_gold[:3])


def test_config_refuses_all_zero_weights_and_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        CompressConfig.build(kl_weight=0.0, hard_weight=0.0)
    with pytest.raises(ConfigError, match="temperature"):
        CompressConfig.build(temperature=0.0)


def test_attention_loss_across_different_tokenizers_is_refused(trained_dir: Path, tmp_path: Path) -> None:
    from ade_distill.student.encoders import resolve_encoder

    try:
        resolve_encoder("mpnet")
    except ConfigError:
        pytest.skip("all-mpnet-base-v2 is not installed")
    cfg = CompressConfig.build(encoder="mpnet", attention_weight=1.0)
    with pytest.raises(ConfigError, match="tokenizers differ"):
        compress_student([trained_dir], ["Aspirin caused a rash."], tmp_path / "x", cfg)
    assert not (tmp_path / "x").exists()


def test_word_alignment_on_synthetic_offsets() -> None:
    # "Naproxen-induced rash": the student splits at the hyphen, the teacher keeps "Naproxen-induced" whole
    student = [(0, 8), (8, 9), (9, 16), (17, 21)]
    teacher = [(0, 16), (17, 21)]
    assert align_words(student, teacher) == [0, -1, -1, 1]
    assert align_words(teacher, student) == [0, 3]
    s = Encoding(tuple(range(7)), (-1, 0, 0, 1, 2, 3, -1), tuple(student), (1, 3, 4, 5), False)
    t = Encoding(tuple(range(6)), (-1, 0, 0, 0, 1, -1), tuple(teacher), (1, 4), False)
    assert token_pairs(s, t, identical=False) == [(1, 1), (5, 4)]  # first sub-tokens of aligned words only
    assert token_pairs(s, s, identical=True) == [(k, k) for k in range(7)]


def test_word_alignment_with_two_real_tokenizers(tokenizer) -> None:
    from transformers import AutoTokenizer

    from ade_distill.student.encode import encode_texts
    from ade_distill.student.encoders import resolve_encoder

    try:
        other = AutoTokenizer.from_pretrained(resolve_encoder("mpnet"))
    except ConfigError:
        pytest.skip("all-mpnet-base-v2 is not installed")
    assert same_tokenizer(tokenizer, tokenizer) and not same_tokenizer(tokenizer, other)
    text = "Naproxen-induced pseudoporphyria in a 7-year-old."
    a, b = encode_texts(tokenizer, [text], 64)[0], encode_texts(other, [text], 64)[0]
    al = align_words(a.words, b.words)
    for w, t in enumerate(al):
        assert t >= 0 and a.words[w][0] == b.words[t][0]
    assert a.input_ids != b.input_ids  # different vocabularies, aligned by characters


def test_keep_layers_is_evenly_spaced_with_first_and_last() -> None:
    from transformers import BertConfig, BertModel

    def kept(k: int | None) -> list[int]:
        enc = BertModel(BertConfig(hidden_size=8, num_hidden_layers=6, num_attention_heads=2, intermediate_size=8,
                                   vocab_size=20))
        ids = [id(x) for x in enc.encoder.layer]
        out = keep_layers(enc, k)
        assert [id(x) for x in enc.encoder.layer] == [ids[i] for i in out]
        assert enc.config.num_hidden_layers == len(out)
        return out

    assert kept(3) == [0, 3, 5] and kept(2) == [0, 5] and kept(1) == [0] and kept(None) == list(range(6))
    with pytest.raises(ConfigError, match="only 6"):
        kept(7)


def test_soft_kl_is_zero_on_the_teachers_own_distribution() -> None:
    import torch

    logits = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    for t in (1.0, 2.0):
        assert float(soft_kl(logits, torch.softmax(logits / t, -1), mask, t)) == pytest.approx(0.0, abs=1e-5)
    assert float(soft_kl(logits, torch.full((2, 5, 3), 1 / 3), mask, 1.0)) > 0


def test_teacher_targets_cached_per_text_equal_those_of_any_batch(trained_dir: Path, ade_gold: list[Example]) -> None:
    """Without feature losses the targets are computed once per text (``_Run.precompute``); re-batched from that
    cache they equal the targets computed on the batch itself (up to float rounding between batch shapes)."""
    import torch

    from ade_distill.student.compress import _members, join_targets, split_targets, teacher_targets

    teacher = StudentExtractor.from_pretrained(trained_dir)
    teacher.module.eval()  # as compress_student loads its teachers
    texts = [e.text for e in ade_gold if e.relations][:8]
    sencs = teacher.encode(texts)
    members, _ = _members([teacher], texts, sencs, 64)
    cfg = CompressConfig.build(**FAST)
    direct = teacher_targets(members, list(range(8)), sencs, cfg, features=False, identical=True)
    assert direct.mention_index is not None and len(direct.mention_index) > 0  # stage 2 is covered
    parts = [p for idx in ([5, 0, 3, 7], [1, 2, 4, 6]) for p in
             zip(idx, split_targets(teacher_targets(members, idx, [sencs[i] for i in idx], cfg, features=False,
                                                    identical=True), [sencs[i] for i in idx]), strict=True)]
    cache = dict(parts)
    joined = join_targets([cache[i] for i in range(8)], max(len(s) for s in sencs))
    for name in ("head_soft", "head_mask", "head_hard", "mention_index", "mention_mask", "tail_soft", "tail_mask",
                 "tail_hard"):
        a, b = getattr(joined, name), getattr(direct, name)
        assert a.shape == b.shape, name
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name


def test_a_killed_compression_resumes_to_the_same_student(trained_dir: Path, transfer: list[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed in its second epoch, compression continues from the first epoch's checkpoint and saves the student
    the uninterrupted run saves (dropout on: the random generators must continue too)."""
    import torch
    from safetensors.torch import load_file

    from ade_distill.student import compress as compress_mod

    cfg = CompressConfig.build(**{**FAST, "epochs": 2, "check_texts": 0}, hidden_weight=1.0, dropout=0.1)
    whole = compress_student([trained_dir], transfer, tmp_path / "whole", cfg)

    out = tmp_path / "resumed"
    real = compress_mod._Run._step
    calls = {"n": 0}
    steps_per_epoch = -(-len(transfer) // cfg.batch_size)

    def step(self, idx):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > steps_per_epoch:  # the second epoch's first step: the process dies
            raise KeyboardInterrupt
        return real(self, idx)

    with monkeypatch.context() as m:
        m.setattr(compress_mod._Run, "_step", step)
        with pytest.raises(KeyboardInterrupt):
            compress_student([trained_dir], transfer, out, cfg)
    ckpt = out.parent / f".{out.name}.checkpoint.pt"
    assert ckpt.is_file() and not out.exists()
    resumed = compress_student([trained_dir], transfer, out, cfg)
    assert not ckpt.exists()
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = _summary(whole), _summary(resumed)
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in sa["history"]] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in sb["history"]]
    assert sb["earlier_attempts_seconds"] > 0 == sa["earlier_attempts_seconds"]


def test_init_teacher_starts_from_the_teacher_cut_to_its_layers(trained_dir: Path, transfer: list[str],
                                                                tmp_path: Path) -> None:
    """A second hop's student is a copy of its teacher, task layers included, cut to 4 of its 6 layers; each kept
    layer is compared with the teacher layer it was copied from. With learning rates near 0 the trained student
    is still that copy."""
    import torch

    cfg = CompressConfig.build(**{**FAST, "layers": 4, "max_length": 48}, init="teacher", hidden_weight=1.0,
                               lr=1e-12, head_lr=1e-12, warmup_ratio=0.0, dropout=0.2)
    out = compress_student([trained_dir], transfer[:32], tmp_path / "l4", cfg)
    s = _summary(out)
    assert s["kept_layers"] == [0, 2, 3, 5]
    assert {int(k): v for k, v in s["layer_map"].items()} == {1: 1, 2: 3, 3: 4, 4: 6}
    teacher, student = StudentExtractor.from_pretrained(trained_dir), StudentExtractor.from_pretrained(out)
    assert student.module.encoder.config.num_hidden_layers == 4
    # the compression's max_length and dropout, not the teacher's (64, 0.0)
    assert (teacher.config.max_length, teacher.config.dropout) == (64, 0.0)
    assert (student.config.max_length, student.config.dropout, student.module.dropout.p) == (48, 0.2, 0.2)
    t_layers, s_layers = teacher.module.encoder.encoder.layer, student.module.encoder.encoder.layer
    for i, k in enumerate(s["kept_layers"]):
        for (name, a), b in zip(s_layers[i].state_dict().items(), t_layers[k].state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-6), f"student layer {i} {name} is not teacher layer {k}'s"
    for name in ("head_classifier", "tail_classifier"):
        for a, b in zip(getattr(student.module, name).parameters(), getattr(teacher.module, name).parameters(),
                        strict=True):
            assert torch.allclose(a, b, atol=1e-6), name
    # Cut from the trained teacher, it starts far closer to it than a fresh 4-layer MiniLM; its hidden-state
    # projections start as the identity (its states are the teacher's own), not as noise.
    fresh = _summary(compress_student([trained_dir], transfer[:32], tmp_path / "fresh", CompressConfig.build(
        **{**FAST, "layers": 4, "max_length": 48}, hidden_weight=1.0, lr=1e-12, head_lr=1e-12, warmup_ratio=0.0)))
    assert s["stage1_kl_before"] < fresh["stage1_kl_before"] / 2
    assert s["history"][0]["hidden"] < fresh["history"][0]["hidden"] / 3, (s["history"], fresh["history"])
    plan = _FeaturePlan.of(cfg, 4, 6, s["kept_layers"])
    for init, identity in (("teacher", True), ("encoder", False)):
        proj = _projections(cfg.model_copy(update={"init": init}), student, teacher, plan)
        assert list(proj) == ["1", "2", "3", "4"]
        assert all(torch.equal(p.weight, torch.eye(384)) and not p.bias.any() for p in proj.values()) == identity


def test_init_teacher_refuses_an_ensemble_and_another_encoder(trained_dir: Path, transfer: list[str],
                                                              tmp_path: Path) -> None:
    cfg = CompressConfig.build(**FAST, init="teacher")
    with pytest.raises(ConfigError, match="copies one teacher, got 2"):
        compress_student([trained_dir, trained_dir], transfer[:8], tmp_path / "a", cfg)
    other = CompressConfig.build(**FAST, init="teacher", encoder="some-org/other-encoder")
    with pytest.raises(ConfigError, match="set encoder to 'minilm'"):
        compress_student([trained_dir], transfer[:8], tmp_path / "b", other)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
