"""Sentence windows for long texts (ade_distill.student.windows): packing, cutting examples, real tokenizer and
real BC5CDR documents, and prediction of a windowed student mapped back to document offsets."""

from __future__ import annotations

import pytest

from ade_distill.records import Example, Relation, Span
from ade_distill.student.windows import (
    WindowStats,
    pack_sentences,
    text_windows,
    window_example,
    window_examples,
)


# -- pack_sentences ------------------------------------------------------------------------------------------------
def _covers_in_order(windows: list[tuple[int, int]], sents: list[tuple[int, int]]) -> None:
    """Every sentence lies in exactly one window; windows start and end on sentence boundaries, in order."""
    starts, ends = {s for s, _ in sents}, {e for _, e in sents}
    assert all(ws in starts and we in ends for ws, we in windows)
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:], strict=False))
    for s, e in sents:
        assert sum(ws <= s and e <= we for ws, we in windows) == 1


def test_pack_everything_fits_in_one_window() -> None:
    sents = [(0, 10), (11, 20), (21, 35)]
    assert pack_sentences(sents, [3, 4, 5], 12) == [(0, 35)]
    assert pack_sentences(sents, [3, 4, 5], 100) == [(0, 35)]


def test_pack_splits_at_sentence_boundaries_greedily() -> None:
    sents = [(0, 10), (11, 20), (21, 35), (36, 40), (41, 50)]
    wins = pack_sentences(sents, [4, 4, 4, 4, 4], 8)
    assert wins == [(0, 20), (21, 40), (41, 50)]
    _covers_in_order(wins, sents)
    wins = pack_sentences(sents, [5, 3, 1, 6, 2], 9)  # 5+3+1 = 9 fits exactly; 6+2 fits
    assert wins == [(0, 35), (36, 50)]
    _covers_in_order(wins, sents)


def test_pack_over_long_sentence_is_its_own_window() -> None:
    sents = [(0, 10), (11, 200), (201, 210), (211, 220)]
    wins = pack_sentences(sents, [3, 50, 3, 3], 10)
    assert wins == [(0, 10), (11, 200), (201, 220)]
    _covers_in_order(wins, sents)
    assert pack_sentences([(0, 100)], [99], 5) == [(0, 100)]  # alone and too long: still one window


def test_pack_empty_and_mismatched() -> None:
    assert pack_sentences([], [], 10) == []
    with pytest.raises(ValueError):
        pack_sentences([(0, 5), (6, 9)], [3], 10)
    with pytest.raises(ValueError):
        pack_sentences([(0, 5)], [3, 4], 10)


def test_pack_random_inputs_cover_every_sentence_once_within_budget() -> None:
    import random

    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 15)
        sents, pos = [], 0
        for _ in range(n):
            ln = rng.randint(1, 30)
            sents.append((pos, pos + ln))
            pos += ln + rng.randint(0, 2)
        counts = [rng.randint(1, 12) for _ in sents]
        budget = rng.randint(1, 30)
        wins = pack_sentences(sents, counts, budget)
        _covers_in_order(wins, sents)
        for ws, we in wins:
            inside = [c for (s, e), c in zip(sents, counts, strict=True) if ws <= s and e <= we]
            assert sum(inside) <= budget or len(inside) == 1
        # greedy: the next window's first sentence would not have fitted into the previous window
        for (ws, we), (nws, _) in zip(wins, wins[1:], strict=False):
            used = sum(c for (s, e), c in zip(sents, counts, strict=True) if ws <= s and e <= we)
            nxt = next(c for (s, _), c in zip(sents, counts, strict=True) if s == nws)
            assert used + nxt > budget


# -- window_example -----------------------------------------------------------------------------------------------
S1 = "Aspirin caused a rash."
S2 = "Patients recovered soon."
S3 = "Ibuprofen induced nausea."
TEXT = f"{S1} {S2} {S3}"
W0 = (0, len(S1))
W1 = (len(S1) + 1, len(S1) + 1 + len(S2))
W2 = (W1[1] + 1, len(TEXT))


def _span(sid: str, label: str, phrase: str, occurrence_from: int = 0) -> Span:
    start = TEXT.index(phrase, occurrence_from)
    return Span(id=sid, label=label, start=start, end=start + len(phrase), text=phrase)


def _counts(stats: WindowStats) -> tuple[int, int, int, int]:
    """(texts_split, windows, spans_cut, relations_across_windows)."""
    d = stats.as_dict()
    return d["texts_split"], d["windows"], d["spans_cut"], d["relations_across_windows"]


def _example() -> Example:
    spans = (
        _span("T1", "DRUG", "Aspirin"),
        _span("T2", "ADE", "rash"),
        _span("T3", "DRUG", "Ibuprofen"),
        _span("T4", "ADE", "nausea"),
        _span("T5", "ADE", "rash. Patients"),  # straddles the boundary of windows 0 and 1
        Span(id="T6", label="ADE", text="headache", alignment="unaligned"),  # no offsets
    )
    rels = (
        Relation(head="T1", tail="T2", label="ADE"),  # window 0
        Relation(head="T3", tail="T4", label="ADE"),  # window 2
        Relation(head="T1", tail="T4", label="ADE"),  # across windows 0 and 2
        Relation(head="T3", tail="T5", label="ADE"),  # argument cut by a boundary
        Relation(head="T1", tail="T6", label="ADE"),  # unaligned argument
    )
    return Example(id="doc1", text=TEXT, spans=spans, relations=rels, meta={"pmid": "123"})


def test_window_example_cuts_spans_and_relations() -> None:
    ex = _example()
    stats = WindowStats()
    out = window_example(ex, [W0, W1, W2], stats)
    assert [w.id for w in out] == ["doc1#w0", "doc1#w1", "doc1#w2"]
    assert [w.text for w in out] == [S1, S2, S3]
    assert [w.meta["window"] for w in out] == [["doc1", W0[0]], ["doc1", W1[0]], ["doc1", W2[0]]]
    assert all(w.meta["pmid"] == "123" for w in out)
    assert [[s.id for s in w.spans] for w in out] == [["T1", "T2"], [], ["T3", "T4"]]
    for w in out:
        for s in w.spans:
            assert w.text[s.start:s.end] == s.text
            off = w.meta["window"][1]
            orig = ex.span_by_id()[s.id]
            assert (s.start + off, s.end + off) == (orig.start, orig.end)
            assert (s.label, s.score, s.meta) == (orig.label, orig.score, orig.meta)
    assert [[(r.head, r.tail) for r in w.relations] for w in out] == [[("T1", "T2")], [], [("T3", "T4")]]
    # T1→T4 lies across windows; T3→T5 (argument cut) and T1→T6 (unaligned argument) lose an argument
    assert _counts(stats) == (1, 3, 1, 1)
    assert stats.relations_with_cut_span == 2  # nothing lost goes uncounted
    # accumulates over calls
    window_example(ex, [W0, (W1[0], len(TEXT))], stats)
    assert stats.texts_split == 2 and stats.windows == 5
    assert stats.spans_cut == 2 and stats.relations_across_windows == 2  # T1→T4 across again
    # the windows are valid records (round-trip through validation)
    for w in out:
        assert Example.model_validate(w.model_dump()) == w


def test_window_example_keeps_relations_when_both_arguments_share_a_window() -> None:
    stats = WindowStats()
    out = window_example(_example(), [(0, W1[1]), W2], stats)
    assert [w.text for w in out] == [f"{S1} {S2}", S3]
    assert [s.id for s in out[0].spans] == ["T1", "T2", "T5"]  # T5 now inside window 0
    assert {(r.head, r.tail) for r in out[0].relations} == {("T1", "T2")}
    assert {(r.head, r.tail) for r in out[1].relations} == {("T3", "T4")}
    # T1→T4 and T3→T5 now both cross windows
    assert _counts(stats) == (1, 2, 0, 2)


def test_window_example_whole_text_is_returned_unchanged() -> None:
    ex = _example()
    stats = WindowStats()
    out = window_example(ex, [(0, len(TEXT))], stats)
    assert len(out) == 1 and out[0] is ex
    assert _counts(stats) == (0, 0, 0, 0)
    assert window_example(ex, [(0, len(TEXT))])[0] is ex  # no stats given


# -- with the real MiniLM tokenizer ---------------------------------------------------------------------------------
LONG = " ".join([
    "Cisplatin is widely used in the treatment of solid tumours of the head and neck.",
    "A 54-year-old man developed severe ototoxicity after the third cycle.",
    "Audiometry showed bilateral high-frequency hearing loss.",
    "The drug was stopped and hearing partly recovered within six months.",
    "Nephrotoxicity was not observed at any time during the treatment period.",
    "We review previously reported cases of platinum-induced ototoxicity and discuss the mechanisms, the risk "
    "factors, the role of cumulative dose, age, renal function, concomitant aminoglycosides and loop diuretics, "
    "and the strategies proposed for monitoring and prevention in adults and in children.",
    "Clinicians should monitor hearing.",
])


def test_text_windows_short_text_is_one_window(tokenizer) -> None:
    assert text_windows(tokenizer, ["Aspirin caused a rash."], 32) == [[(0, 22)]]
    assert text_windows(tokenizer, [], 32) == []


def test_text_windows_long_text_fits_each_window(tokenizer) -> None:
    from ade_distill.data.sentences import split_sentences

    max_length = 32
    (wins,) = text_windows(tokenizer, [LONG], max_length)
    sents = split_sentences(LONG)
    assert len(sents) == 7 and len(wins) > 2
    _covers_in_order(wins, sents)
    n_long = 0
    for ws, we in wins:
        n = len(tokenizer(LONG[ws:we])["input_ids"])  # specials included
        if (ws, we) in sents and n > max_length:
            n_long += 1  # a single over-long sentence stays one (truncated) window
        else:
            assert n <= max_length, (LONG[ws:we], n)
    assert n_long == 1
    # consecutive windows could not have been joined
    for (a, _), (_, d) in zip(wins, wins[1:], strict=False):
        assert len(tokenizer(LONG[a:d])["input_ids"]) > max_length
    # short texts in the same batch are left whole
    batch = text_windows(tokenizer, ["Short one.", LONG, ""], max_length)
    assert batch == [[(0, 10)], wins, [(0, 0)]]


def test_window_examples_on_real_cdr_documents(tokenizer) -> None:
    from ade_distill.data.corpora import load_corpus

    docs = load_corpus("cdr-test")[:3]
    out, stats = window_examples(tokenizer, docs, 128)
    split = [w for w in text_windows(tokenizer, [d.text for d in docs], 128) if len(w) > 1]
    assert stats.texts_split == len(split) >= 1 and stats.windows == sum(len(w) for w in split)
    by_parent: dict[str, list[Example]] = {}
    for w in out:
        parent = w.meta["window"][0] if "window" in w.meta else w.id
        by_parent.setdefault(parent, []).append(w)
    assert list(by_parent) == [d.id for d in docs]
    kept = across = 0
    cut = 0
    for d in docs:
        wins = by_parent[d.id]
        if len(wins) == 1 and wins[0] is d:
            continue
        assert [w.id for w in wins] == [f"{d.id}#w{k}" for k in range(len(wins))]
        placed: dict[str, int] = {}
        for k, w in enumerate(wins):
            off = w.meta["window"][1]
            assert d.text[off:off + len(w.text)] == w.text
            for s in w.spans:
                assert w.text[s.start:s.end] == s.text
                assert d.text[s.start + off:s.end + off] == s.text
                placed[s.id] = k
            kept += len(w.relations)
        cut += sum(1 for s in d.spans if s.start is not None and s.id not in placed)
        both = [r for r in d.relations if r.head in placed and r.tail in placed]
        across += sum(1 for r in both if placed[r.head] != placed[r.tail])
        assert sum(len(w.relations) for w in wins) + sum(
            1 for r in both if placed[r.head] != placed[r.tail]) == len(both)
    assert stats.relations_across_windows == across and stats.spans_cut == cut
    assert sum(len(w.relations) for w in out if "window" in w.meta) == kept


# -- prediction with a windowed student -----------------------------------------------------------------------------
def _tiny_student(tokenizer, ade_task, **config):
    import torch
    from transformers import BertConfig, BertModel

    from ade_distill.student.model import StudentConfig, StudentExtractor
    from ade_distill.student.modules import DrugConditionedTagger

    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64))
    return StudentExtractor(DrugConditionedTagger(enc), tokenizer, ade_task, StudentConfig(encoder="minilm", **config))


def _keys(ex: Example) -> tuple[set[tuple[int, int, str]], set[tuple[int, int, int, int]]]:
    by = ex.span_by_id()
    spans = {(s.start, s.end, s.label) for s in ex.spans}
    rels = {(by[r.head].start, by[r.head].end, by[r.tail].start, by[r.tail].end) for r in ex.relations}
    return spans, rels


def test_windowed_prediction_maps_offsets_back(tokenizer, ade_task) -> None:
    model = _tiny_student(tokenizer, ade_task, max_length=24, head_threshold=0.3, tail_threshold=0.3)
    model.config = model.config.model_copy(update={"window_long_texts": True})
    doc = Example(id="d", text=LONG)
    (pred,) = model.predict([doc], batch_size=1)
    (wins,) = text_windows(tokenizer, [LONG], 24)
    assert pred.meta["windows"] == len(wins) > 1 and "sentences" not in pred.meta
    assert pred.meta.get("truncated") is True  # the over-long sentence
    assert pred.spans, "the random student should predict something at threshold 0.3"
    spans, rels = set(), set()
    for ws, we in wins:  # the document's predictions are exactly those of its windows, shifted
        (p,) = model.predict([Example(id="w", text=LONG[ws:we])], batch_size=1, split="never")
        sp, rl = _keys(p)
        spans |= {(s + ws, e + ws, lab) for s, e, lab in sp}
        rels |= {(a + ws, b + ws, c + ws, d + ws) for a, b, c, d in rl}
    assert _keys(pred) == (spans, rels)
    for s in pred.spans:
        assert LONG[s.start:s.end] == s.text and s.text == s.text.strip() and s.text
        assert any(ws <= s.start and s.end <= we for ws, we in wins)
    # relations may cross sentences inside a window (never across windows)
    by = pred.span_by_id()
    for r in pred.relations:
        h, t = by[r.head], by[r.tail]
        assert any(ws <= min(h.start, t.start) and max(h.end, t.end) <= we for ws, we in wins)

    # the same student without windows predicts sentence by sentence
    model.config = model.config.model_copy(update={"window_long_texts": False})
    (plain,) = model.predict([doc], batch_size=1)
    assert plain.meta["sentences"] == 7 and "windows" not in plain.meta
    # a short text is predicted whole either way
    model.config = model.config.model_copy(update={"window_long_texts": True})
    (short,) = model.predict([Example(id="s", text="Aspirin caused a rash.")])
    assert "windows" not in short.meta and "sentences" not in short.meta
