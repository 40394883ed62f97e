"""The pair_classifier student (issue 19): concept grouping, log-sum-exp pooling, the adaptive threshold, and a
tiny BC5CDR train → predict → score (concept mode) through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ade_distill.records import Example, Relation, Span, read_examples, write_examples
from ade_distill.student.pair_classifier import (
    adaptive_threshold_decide,
    adaptive_threshold_loss,
    build_pair_features,
    entity_keys,
    group_mentions,
    logsumexp_pool,
    onto_gold_entities,
)
from ade_distill.tasks.spec import load_task

TEXT = "Cocaine induced seizures. Seizures after cocaine and aspirin; aspirin-induced asthma."


def _doc() -> Example:
    def sp(i: str, label: str, word: str, k: int, concepts: list[str] | None) -> Span:
        start = [j for j in range(len(TEXT)) if TEXT.startswith(word, j)][k]
        meta = {"concepts": concepts} if concepts is not None else {}
        return Span(id=i, label=label, start=start, end=start + len(word), text=word, meta=meta)

    spans = (
        sp("T1", "CHEMICAL", "Cocaine", 0, ["D003042"]),
        sp("T2", "DISEASE", "seizures", 0, ["D012640"]),
        sp("T3", "DISEASE", "Seizures", 0, ["D012640"]),
        sp("T4", "CHEMICAL", "cocaine", 0, ["D003042"]),
        sp("T5", "CHEMICAL", "aspirin", 0, ["D001241"]),
        sp("T6", "CHEMICAL", "aspirin", 1, ["D001241"]),
        sp("T7", "DISEASE", "asthma", 0, None),  # no concept id: grouped by text
    )
    rels = (Relation(head="T1", tail="T2", label="CID", meta={"head_concept": "D003042", "tail_concept": "D012640"}),)
    return Example(id="1", text=TEXT, spans=spans, relations=rels, meta={"pmid": "1"})


def test_mentions_group_by_concept_id_else_by_normalized_text() -> None:
    ex = _doc()
    groups = group_mentions(ex.spans, ("CHEMICAL", "DISEASE"))
    assert groups == {
        ("CHEMICAL", "c:D003042"): [0, 3],
        ("DISEASE", "c:D012640"): [1, 2],
        ("CHEMICAL", "c:D001241"): [4, 5],
        ("DISEASE", "t:asthma"): [6],
    }
    composite = Span(id="X", label="DISEASE", start=0, end=7, text="Cocaine", meta={"concepts": ["D1", "D2", "-1"]})
    assert entity_keys(composite) == [("DISEASE", "c:D1"), ("DISEASE", "c:D2")]
    plain = Span(id="Y", label="DISEASE", start=0, end=7, text="Cocaine")
    assert entity_keys(plain) == [("DISEASE", "t:cocaine")]


def test_logsumexp_pools_the_mentions_of_each_entity() -> None:
    m = torch.tensor([[0.0, 5.0], [2.0, 1.0], [9.0, 9.0]])
    member = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = logsumexp_pool(m, member)
    expected0 = torch.logsumexp(m[:2], dim=0)
    assert torch.allclose(out[0], expected0)
    assert torch.allclose(out[1], m[2])
    assert torch.equal(out[2], torch.zeros(2))  # no mention: zeros, never -inf
    assert (out[0] >= m[:2].max(0).values).all()  # a smooth max


def test_adaptive_threshold_decides_against_each_pairs_own_threshold() -> None:
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0], [-3.0, -2.5]])
    assert adaptive_threshold_decide(logits).squeeze(1).tolist() == [True, False, True]
    # with one relation the loss is the two-class cross-entropy against [TH, r]
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    expected = torch.nn.functional.cross_entropy(logits, labels.argmax(1))
    assert torch.allclose(adaptive_threshold_loss(logits, labels), expected)
    # several relations: a positive relation is pushed above TH, TH above the negatives
    multi = torch.tensor([[0.0, 3.0, -3.0]], requires_grad=True)
    loss = adaptive_threshold_loss(multi, torch.tensor([[0.0, 1.0, 0.0]]))
    loss.backward()
    assert loss.item() < 0.1
    assert multi.grad[0, 1] < 0 and multi.grad[0, 2] > 0


def test_features_mark_mentions_and_label_concept_pairs(tokenizer) -> None:
    task = load_task("cdr")
    feats = build_pair_features(task, [_doc()], tokenizer, max_length=16)
    f = feats[0]
    assert len(f.enc.chunks) > 1 and all(len(c) <= 16 for c in f.enc.chunks)  # chunked, nothing dropped
    star = tokenizer.convert_tokens_to_ids("*")
    assert all(f.enc.chunks[c][p] == star for c, p in f.mentions)
    assert len(f.mentions) == 7 and len(f.entities) == 4
    pairs = {(f.entities[a][1], f.entities[b][1]): lab[1] for (a, b), lab in zip(f.pairs, f.labels, strict=True)}
    assert pairs == {("c:D003042", "c:D012640"): 1.0, ("c:D003042", "t:asthma"): 0.0,
                     ("c:D001241", "c:D012640"): 0.0, ("c:D001241", "t:asthma"): 0.0}


def test_silver_maps_onto_gold_entities() -> None:
    gold = _doc()
    def sp(i: str, label: str, word: str) -> Span:
        return Span(id=i, label=label, start=TEXT.index(word), end=TEXT.index(word) + len(word), text=word)

    silver = Example(id="1", text=TEXT, spans=(
        sp("T1", "CHEMICAL", "aspirin"), sp("T2", "DISEASE", "Seizures"), sp("T3", "DISEASE", "asthma"),
    ), relations=(Relation(head="T1", tail="T2", label="CID"), Relation(head="T1", tail="T3", label="CID")))
    mapped, unmapped = onto_gold_entities(silver, gold, load_task("cdr"))
    assert unmapped == 1  # asthma has no concept id in this gold record
    assert mapped.spans == gold.spans
    assert [(r.meta["head_concept"], r.meta["tail_concept"]) for r in mapped.relations] == [("D001241", "D012640")]


@pytest.fixture(scope="module")
def cdr_docs() -> list[Example]:
    from ade_distill.data.corpora import load_corpus

    docs = load_corpus("cdr-train")
    return [d for d in docs if d.relations][:24]


def test_cli_trains_predicts_and_scores_concept_pairs(cdr_docs: list[Example], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ade_distill.cli import app

    train, test = cdr_docs[:20], cdr_docs[20:]
    write_examples(tmp_path / "train.jsonl", train)
    write_examples(tmp_path / "test.jsonl", test)
    # a new task is a YAML file: BC5CDR's, naming the pair classifier as its student (cdr.yaml keeps the tagger,
    # which needs no given mentions)
    task_yaml = tmp_path / "cdr_pairs.yaml"
    task_yaml.write_text(load_task("cdr").model_copy(update={"student_architecture": "pair_classifier"}).to_yaml(),
                         encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--task", str(task_yaml), "--train", str(tmp_path / "train.jsonl"), "--out",
                              str(tmp_path / "model"), "--epochs", "1", "--batch-size", "4", "--max-length", "256",
                              "--encoder", "minilm", "--threads", "2"])
    assert res.exit_code == 0, res.output
    student = json.loads((tmp_path / "model" / "student.json").read_text())
    assert student["architecture"] == "pair_classifier"  # the task's student_architecture
    res = runner.invoke(app, ["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "test.jsonl"),
                              "--out", str(tmp_path / "pred.jsonl")])
    assert res.exit_code == 0, res.output
    preds = list(read_examples(tmp_path / "pred.jsonl"))
    assert [p.id for p in preds] == [t.id for t in test]
    for p, t in zip(preds, test, strict=True):
        assert [s.id for s in p.spans] == [s.id for s in t.spans]  # the given (gold) entity mentions
        for r in p.relations:
            assert r.label == "CID" and 0.0 <= r.score <= 1.0
            assert {"head_concept", "tail_concept"} <= set(r.meta)
    res = runner.invoke(app, ["score", "--gold", str(tmp_path / "test.jsonl"), "--pred",
                              f"pair={tmp_path / 'pred.jsonl'}", "--mode", "concept", "--n-boot", "10",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "concept" in res.output


def test_ade_keeps_the_drug_conditioned_default() -> None:
    from ade_distill.student.train import TrainConfig

    assert load_task("ade").student_architecture is None
    assert "student_architecture" not in load_task("ade").model_dump()  # stage keys of ADE runs unchanged
    assert TrainConfig().architecture == "drug_conditioned"
    # the pair classifier needs given entity mentions, so the task that also serves raw abstracts keeps the tagger
    assert load_task("cdr").student_architecture is None


def test_the_task_hint_leaves_committed_cdr_results_valid(tmp_path: Path) -> None:
    """student_architecture in cdr.yaml stays out of stage keys: the committed tagger folds (reports/cdr_tagger, made
    under the name cdr_gpt4_replay before configs/cdr_tagger.yaml was renamed) still match their config."""
    from ade_distill.experiments.config import load_config
    from ade_distill.experiments.reproduce import Reproduction, RunOptions

    root = Path(__file__).resolve().parents[2]
    marker = root / "reports" / "cdr_tagger" / "folds" / "fold0" / "result" / "stage.json"
    want = json.loads(marker.read_text(encoding="utf-8"))["key"]
    overrides = {"runs_dir": str(tmp_path), "name": "cdr_gpt4_replay"}
    cfg = load_config(root / "configs" / "cdr_tagger.yaml", overrides=overrides)
    rep = Reproduction(cfg, RunOptions(progress=False))
    assert rep.result_key(rep.make_folds(), "fold", 0) == want
    pair = load_config(root / "configs" / "cdr_gpt4_replay.yaml", overrides={"runs_dir": str(tmp_path)})
    assert Reproduction(pair, RunOptions(progress=False)).train_config.architecture == "pair_classifier"


def test_pair_structure_reads_sentence_distance_first_sentence_and_frequency() -> None:
    from ade_distill.student.pair_classifier import STRUCTURE_FEATURES, mention_sentences, pair_structure

    ex = _doc()  # sentence 0: "Cocaine induced seizures."  sentence 1: the rest
    assert mention_sentences(TEXT, [s.start for s in ex.spans]) == [0, 0, 1, 1, 1, 1, 1]
    groups = group_mentions(ex.spans, ("CHEMICAL", "DISEASE"))
    members = list(groups.values())  # cocaine [0, 3], seizures [1, 2], aspirin [4, 5], asthma [6]
    rows = pair_structure([0, 0, 1, 1, 1, 1, 1], members, [(0, 1), (2, 3), (2, 1)])
    assert all(len(r) == len(STRUCTURE_FEATURES) for r in rows)
    named = [dict(zip(STRUCTURE_FEATURES, r, strict=True)) for r in rows]
    cocaine_seizures, aspirin_asthma, aspirin_seizures = named
    assert cocaine_seizures["same_sentence"] == 1.0 and cocaine_seizures["farther_apart"] == 0.0
    assert cocaine_seizures["log_cooccurrences"] == pytest.approx(math.log1p(2))  # once in each sentence
    assert cocaine_seizures["head_in_first_sentence"] == cocaine_seizures["tail_in_first_sentence"] == 1.0
    assert aspirin_asthma["head_in_first_sentence"] == aspirin_asthma["tail_in_first_sentence"] == 0.0
    assert aspirin_asthma["tail_mention_share"] == 0.5 and aspirin_asthma["tail_most_mentioned"] == 0.0
    assert aspirin_seizures["log_cooccurrences"] == pytest.approx(math.log1p(2))  # two aspirins x one Seizures
    far = pair_structure([0, 3], [[0], [1]], [(0, 1)])[0]
    assert far[:4] == [0.0, 0.0, 0.0, 1.0]


def test_a_pair_structure_student_saves_loads_and_predicts_the_same(tmp_path: Path) -> None:
    from ade_distill.student.config import StudentConfig
    from ade_distill.student.model import StudentExtractor

    task = load_task("cdr")
    cfg = StudentConfig(architecture="pair_classifier", encoder="minilm", max_length=32, pair_structure=True,
                        relation_threshold=0.1)
    student = StudentExtractor.from_encoder(task, cfg, seed=3)
    width = student.module.pair_classifier[0].in_features
    assert width == 3 * student.module.encoder.config.hidden_size + 13
    doc = _doc().model_copy(update={"relations": ()})
    before = student.predict([doc])
    assert before[0].relations  # an untrained classifier is near P = 0.5, above the 0.1 threshold
    student.save_pretrained(tmp_path / "m")
    again = StudentExtractor.from_pretrained(tmp_path / "m")
    assert again.config.pair_structure and again.module.structure
    after = again.predict([doc])
    assert [(r.meta, round(r.score, 5)) for r in after[0].relations] == \
        [(r.meta, round(r.score, 5)) for r in before[0].relations]
    with pytest.raises(ValueError, match="pair_structure"):
        StudentConfig(architecture="drug_conditioned", encoder="minilm", pair_structure=True)


def test_raw_text_without_mentions_warns_that_the_pair_classifier_needs_them(caplog) -> None:
    from ade_distill.student.config import StudentConfig
    from ade_distill.student.model import StudentExtractor

    task = load_task("cdr")
    cfg = StudentConfig(architecture="pair_classifier", encoder="minilm", max_length=32, relation_threshold=0.1)
    student = StudentExtractor.from_encoder(task, cfg, seed=3)
    raw = Example(id="raw", text=TEXT)
    with caplog.at_level("WARNING", logger="ade_distill"):
        out = student.predict([raw])
    assert out[0].relations == ()
    assert "CHEMICAL or DISEASE mentions" in caplog.text and "drug_conditioned" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ade_distill"):
        assert student.predict([_doc().model_copy(update={"relations": ()}), raw])[0].relations
    assert "drug_conditioned" not in caplog.text  # one text with mentions: no warning


def test_features_line_up_structure_with_the_mentions_used(tokenizer) -> None:
    """A span of another label and one without offsets come first: the mentions used skip them, and each pair's
    structure features are those of its own mentions' sentences."""
    from ade_distill.student.pair_classifier import mention_sentences, pair_structure

    doc = _doc()
    other = Span(id="X1", label="GENE", start=TEXT.index("aspirin"), end=TEXT.index("aspirin") + 7, text="aspirin")
    loose = Span(id="X2", label="CHEMICAL", text="cocaine", alignment="unaligned")  # no offsets: not read
    doc = doc.model_copy(update={"spans": (other, loose, *doc.spans)})
    f = build_pair_features(load_task("cdr"), [doc], tokenizer, max_length=64)[0]
    used = [s for s in doc.spans if s.label in ("CHEMICAL", "DISEASE") and s.start is not None]
    want = pair_structure(mention_sentences(TEXT, [s.start for s in used]), f.members, f.pairs)
    assert f.structure == want
    named = {(f.entities[a][1], f.entities[b][1]): row for (a, b), row in zip(f.pairs, f.structure, strict=True)}
    assert named[("c:D003042", "c:D012640")][5:7] == [1.0, 1.0]  # cocaine and seizures in the first sentence
    assert named[("c:D001241", "t:asthma")][5:7] == [0.0, 0.0]


def test_the_classifier_reads_the_structure_features(tokenizer) -> None:
    from transformers import BertConfig, BertModel

    from ade_distill.student.pair_classifier import PairClassifier, collate_pairs

    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32))
    module = PairClassifier(enc, dropout=0.0, structure=True).eval()
    f = build_pair_features(load_task("cdr"), [_doc()], tokenizer, max_length=64)[0]
    batch = collate_pairs([f], tokenizer.pad_token_id)
    batch.pop("pair_labels"), batch.pop("pair_weights")
    with torch.no_grad():
        base = module(**batch)["pair_logits"]
        moved = module(**{**batch, "pair_structure": batch["pair_structure"] + 1.0})["pair_logits"]
        assert not torch.allclose(base, moved)
        with pytest.raises(ValueError, match="pair_structure"):
            module(**{k: v for k, v in batch.items() if k != "pair_structure"})
    plain = PairClassifier(enc, dropout=0.0).eval()  # without the option the features are not read
    with torch.no_grad():
        a = plain(**batch)["pair_logits"]
        b = plain(**{**batch, "pair_structure": batch["pair_structure"] + 1.0})["pair_logits"]
    assert torch.equal(a, b)
