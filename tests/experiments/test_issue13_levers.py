"""The levers of issue 13: soft targets (soft_cross_entropy, TrainConfig.soft_targets), bf16 autocast
(TrainConfig.precision) and self-training on unlabeled text (select_pseudo, sample_sentences, the reproduce
stage) — with stage keys of configs that do not use them unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ade_distill.errors import ConfigError
from ade_distill.experiments.config import load_config
from ade_distill.experiments.reproduce import Reproduction, RunOptions, train_key_dict
from ade_distill.experiments.self_training import sample_sentences, select_pseudo
from ade_distill.records import Example, Relation, Span, read_examples
from ade_distill.student.modules import soft_cross_entropy, weighted_cross_entropy
from ade_distill.student.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


# -- soft targets ------------------------------------------------------------------------------------------------
def test_soft_cross_entropy_is_hard_cross_entropy_at_confidence_one() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[0, 1, 2, -100, 0], [1, 2, 0, 0, -100]])
    ones = torch.ones(2, 5)
    assert torch.allclose(soft_cross_entropy(logits, labels, ones), weighted_cross_entropy(logits, labels, ones))


def test_soft_cross_entropy_moves_the_rest_of_the_mass_to_o() -> None:
    """A B word with confidence c has target (1 - c) on O, c on B: the loss is minimal where softmax = target."""
    labels = torch.tensor([[1]])
    conf = torch.tensor([[1 / 3]])
    target = torch.tensor([2 / 3, 1 / 3, 1e-9])

    def loss_at(p: torch.Tensor) -> float:
        return float(soft_cross_entropy(p.log().view(1, 1, 3), labels, conf))

    assert loss_at(target) < loss_at(torch.tensor([0.5, 0.5, 1e-9]))
    assert loss_at(target) < loss_at(torch.tensor([0.8, 0.2, 1e-9]))
    # the weighted hard loss instead pulls toward B whatever the confidence
    assert float(weighted_cross_entropy(torch.tensor([[[0.0, 5.0, 0.0]]]), labels, conf)) < \
        float(weighted_cross_entropy(torch.tensor([[[5.0, 0.0, 0.0]]]), labels, conf))
    # temperature: the loss is scaled by T² and computed on z / T
    z = torch.tensor([[[1.0, 2.0, 0.5]]])
    assert float(soft_cross_entropy(z, labels, conf, 2.0)) == pytest.approx(
        4 * float(soft_cross_entropy(z / 2, labels, conf)))


def test_soft_targets_need_confidences_and_the_tagger() -> None:
    with pytest.raises(ConfigError, match="soft_targets"):
        TrainConfig.build(soft_targets=True)
    with pytest.raises(ConfigError, match="soft_targets"):
        TrainConfig.build(soft_targets=True, confidence_weighting=True, architecture="pairwise")
    assert TrainConfig.build(soft_targets=True, confidence_weighting=True).soft_targets


def test_new_train_options_leave_keys_alone_at_their_defaults() -> None:
    base = train_key_dict(TrainConfig())
    assert not {"precision", "soft_targets", "soft_temperature"} & base.keys()
    assert train_key_dict(TrainConfig(precision="bf16"))["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.build(precision="fp8")


# -- self-training -------------------------------------------------------------------------------------------------
def _pred(i: int, rel_scores: list[float]) -> Example:
    text = "aspirin caused rash and fever and drowsiness"
    spans = [Span(id="T1", label="DRUG", start=0, end=7, text="aspirin")]
    rels = []
    words = [("rash", 15), ("fever", 24), ("drowsiness", 34)]
    for k, sc in enumerate(rel_scores):
        w, s = words[k]
        spans.append(Span(id=f"T{k + 2}", label="ADE", start=s, end=s + len(w), text=w, score=sc))
        rels.append(Relation(head="T1", tail=f"T{k + 2}", label="ADE", score=sc))
    return Example(id=f"s{i}", text=text, spans=spans, relations=rels, meta={"doc_id": f"d{i}"})


def test_select_pseudo_keeps_confident_sentences_whole_and_samples_negatives() -> None:
    preds = [_pred(0, [0.9, 0.95]), _pred(1, [0.9, 0.5]), _pred(2, [0.85])] + [_pred(i, []) for i in range(3, 13)]
    preds[3] = preds[3].model_copy(update={"spans": [preds[3].spans[0]]})  # a lone drug, no relation
    out, counts = select_pseudo(preds, min_relation_score=0.8, negative_ratio=1.5, seed=0, round_=1)
    assert counts == {"sentences": 13, "positive": 2, "uncertain_left_out": 1, "relation_free": 10,
                      "relation_free_kept": 3, "relations": 3}
    by_id = {e.id: e for e in out}
    assert "s1" not in by_id  # one relation under the line: the whole sentence is left out
    assert len(by_id["s0"].relations) == 2 and len(by_id["s2"].spans) == 2
    negs = [e for e in out if not e.relations]
    assert len(negs) == 3 and all(not e.spans for e in negs)  # lone drugs are not kept (teacher silver has none)
    assert all(e.meta["source"] == "pseudo-silver" and e.meta["pseudo_round"] == 1 for e in out)
    again, _ = select_pseudo(preds, min_relation_score=0.8, negative_ratio=1.5, seed=0, round_=1)
    assert [e.id for e in again] == [e.id for e in out]  # seeded


def test_sample_sentences_is_seeded_and_keeps_order() -> None:
    sents = [Example(id=f"s{i}", text=f"sentence {i}") for i in range(50)]
    a = sample_sentences(sents, 10, seed=3)
    assert len(a) == 10 and [e.id for e in a] == sorted((e.id for e in a), key=lambda x: int(x[1:]))
    assert a == sample_sentences(sents, 10, seed=3) and a != sample_sentences(sents, 10, seed=4)
    assert sample_sentences(sents, None, seed=3) == sents


def test_self_training_config_rejects_an_ensemble(tmp_path: Path) -> None:
    import yaml

    raw = yaml.safe_load((ROOT / "configs/beat_the_teacher_2/minilm_selftrain.yaml").read_text())
    raw["ensemble"] = {"seeds": 3}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="self_training"):
        load_config(p)


@pytest.mark.slow
def test_self_training_round_end_to_end(tiny_config: Callable[..., Path], tmp_path: Path, data_root: Path) -> None:
    """A tiny real run: round 0 student, pseudo-silver from unlabeled PubMed (no gold document), round 1 student
    trained on silver + pseudo-silver and scored as the student; round 0 kept as student:round0."""
    path = tiny_config("configs/beat_the_teacher_2/minilm_selftrain.yaml", self_training={
        "texts": str(data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl"), "max_sentences": 60,
        "min_relation_score": 0.01, "negative_ratio": 1.0},
        supervised={"enabled": True})
    cfg = load_config(path)
    rep = Reproduction(cfg, RunOptions(folds=1, progress=False))
    res = rep.run()
    fr = res.folds_done[0]
    assert {"student", "student:round0"} <= fr.predictions.keys()
    rounds = fr.silver["self_training"]
    assert rounds[0]["round"] == 1 and rounds[0]["sentences"] == 60
    train = list(read_examples(rep.run_dir / "fold0" / "student_round1" / "train.jsonl"))
    pseudo = [e for e in train if e.meta.get("source") == "pseudo-silver"]
    assert len(pseudo) == rounds[0]["positive"] + rounds[0]["relation_free_kept"]
    gold_pmids = {e.meta["pmid"] for e in rep.gold}
    assert all(e.meta.get("pmid") not in gold_pmids for e in pseudo)
    assert json.loads(json.dumps(fr.silver))  # serialisable into the fold result
    # all held-out sentences: the fold's ADE-NEG sentences predicted by each single-model student, teachers left out
    from ade_distill.experiments.all_sentences import rescore, score_all_sentences

    out = tmp_path / "all"
    res = score_all_sentences(rep, [0], out, "cmd")
    assert set(res["scores"]["results"]) == {"student", "student:round0", "supervised"}
    n_neg = res["per_fold"][0]["negative"]
    assert n_neg > 0 and res["n_scored"] == len(fr.gold) + n_neg
    again = rescore(out, rep.by_id)
    for system, by_mode in again.items():
        got = res["scores"]["results"][system]["strict"]["relation"]["micro"]
        assert by_mode["strict"] == pytest.approx((got["precision"], got["recall"], got["f1"]))
    assert "ADE-NEG" in (out / "README.md").read_text()


def test_ablation_row_can_score_a_configs_supervised_student(tmp_path: Path) -> None:
    """A lever row with ``system: supervised`` scores that config's supervised student (the encoder's ceiling),
    read from the committed fold result."""
    import yaml

    from ade_distill.experiments.ablation import build, load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "t", "dev_fold": 9, "teacher": "teacher:gpt-4-json", "modes": ["strict"], "n_boot": 0,
        "rows": [{"lever": "distilled", "config": str(ROOT / "configs/ade_multi_teacher.yaml")},
                 {"lever": "gold", "config": str(ROOT / "configs/ade_multi_teacher.yaml"), "system": "supervised"}]}))
    res = build(load_spec(spec))
    committed = json.loads((ROOT / "reports/ade_multi_teacher/folds/fold9/result/fold.json").read_text())
    for row, system in zip(res["rows"], ("student", "supervised"), strict=True):
        want = committed["scores"]["results"][system]["strict"]["relation"]["micro"]["f1"]
        assert row["system"] == f"{system}:ade_multi_teacher"
        assert row["scores"]["strict"]["f1"] == pytest.approx(want)
    with pytest.raises(ConfigError):
        spec.write_text(spec.read_text().replace("system: supervised", "system: teacher"))
        load_spec(spec)


def test_committed_all_sentence_reports_rescore_exactly(ade_gold: list[Example]) -> None:
    """Every committed ``all_sentences`` report: its numbers come back from its committed predictions."""
    from ade_distill.experiments.all_sentences import rescore

    outs = sorted(ROOT.glob("reports/**/all_sentences/results.json"))
    assert outs, "no committed all-sentence report"
    by_id = {e.id: e for e in ade_gold}
    for path in outs:
        res = json.loads(path.read_text())
        again = rescore(path.parent, by_id)
        assert set(again) == set(res["scores"]["results"])
        for system, by_mode in again.items():
            for mode, prf in by_mode.items():
                got = res["scores"]["results"][system][mode]["relation"]["micro"]
                assert prf == pytest.approx((got["precision"], got["recall"], got["f1"])), (path, system, mode)
        assert res["n_negative"] > 0 and res["n_scored"] == len(again and list(read_examples(
            path.parent / "gold_ids.jsonl")))


@pytest.mark.slow
def test_compress_stage_end_to_end(tiny_config: Callable[..., Path], data_root: Path) -> None:
    """Issue 14 in a reproduction: the fold's distilled ensemble (2 members) compressed into one student on the
    silver texts plus unlabeled PubMed sentences (no gold document), scored as ``compressed``; a rerun of the
    fold reuses the compressed model from the cache."""
    from ade_distill.experiments.all_sentences import model_folders
    from ade_distill.experiments.reproduce import COMPRESSED

    path = tiny_config("configs/ade_mpnet_compressed.yaml", ensemble={"seeds": 2, "min_votes": 1},
                       compress={"options": {"encoder": "minilm", "epochs": 1, "max_length": 64, "threads": 2,
                                             "check_texts": 20},
                                 "unlabeled": str(data_root / "pubmed_unlabeled" / "pubmed_abstracts.jsonl"),
                                 "max_unlabeled_sentences": 30,
                                 "further": [{"name": "l2", "options": {"init": "teacher", "layers": 2}}]})
    cfg = load_config(path)
    rep = Reproduction(cfg, RunOptions(folds=1, progress=False))
    run = rep.run()
    fr = run.folds_done[0]
    hop = f"{COMPRESSED}:l2"
    assert {"student", "student:seed13", COMPRESSED, hop} <= fr.predictions.keys()
    counts = fr.silver["compress"]
    silver = list(read_examples(rep.run_dir / "fold0" / "silver.jsonl"))
    assert counts["teachers"] == 2 and counts["unlabeled_sentences"] == 30
    assert counts["silver_texts"] == len(silver) and counts["transfer_texts"] <= len(silver) + 30
    model_dir = Path((rep.run_dir / "fold0" / COMPRESSED / "model.txt").read_text().strip())
    card = json.loads((model_dir / "student.json").read_text())
    members = {Path((rep.run_dir / "fold0" / n / "model.txt").read_text().strip()).name
               for n in ("student", "student_seed14")}
    assert {Path(t["model"]).name for t in card["provenance"]["compressed_from"]} == members
    compress_json = json.loads((model_dir / "compress.json").read_text())
    gold_texts = {e.text for e in rep.gold}
    unlabeled = [u.text for u in rep.unlabeled_pool(cfg.compress.unlabeled, 30, "test")]
    assert not gold_texts & set(unlabeled) and compress_json["transfer"]["transfer_texts"] == counts["transfer_texts"]
    # the further hop: a copy of the compact student cut to 2 layers, distilled from it on the same texts
    hop_dir = Path((rep.run_dir / "fold0" / "compressed_l2" / "model.txt").read_text().strip())
    hop_json = json.loads((hop_dir / "compress.json").read_text())
    assert [t["model"] for t in hop_json["teachers"]] == [str(model_dir)] and hop_json["kept_layers"] == [0, 5]
    assert hop_json["config"]["init"] == "teacher" and hop_json["transfer_texts"] == counts["transfer_texts"]
    assert counts["further"][hop]["sentences_per_second"] > 0 and hop in fr.timings
    assert set(model_folders(rep, 0)) == {COMPRESSED, hop}  # the ensemble is not one model; supervised is off
    # in the report: right after the hop it was made from, compared with it, with its own speed
    from ade_distill.experiments.results import build_results

    res, _, _ = build_results(rep, run, "test")
    assert res["systems"][res["systems"].index(COMPRESSED) + 1] == hop
    assert f"{hop} − {COMPRESSED}" in res["comparisons"] and f"{hop} − teacher:gpt-4-json" in res["comparisons"]
    assert res["cost"]["systems"][hop]["sentences_per_second"] == counts["further"][hop]["sentences_per_second"]
    mtimes = [(d / "stage.json").stat().st_mtime for d in (model_dir, hop_dir)]
    (rep.run_dir / "fold0" / "result" / "stage.json").unlink()  # recompute the fold: every model comes from the cache
    again = Reproduction(cfg, RunOptions(folds=1, progress=False)).run().folds_done[0]
    assert [(d / "stage.json").stat().st_mtime for d in (model_dir, hop_dir)] == mtimes
    assert again.predictions[COMPRESSED] == fr.predictions[COMPRESSED] and again.predictions[hop] == fr.predictions[hop]
