"""char spans ↔ word BIO ↔ first-sub-word labels: identities on real sentences and the snapping rule."""

from __future__ import annotations

from ade_distill.records import Example
from ade_distill.student.encode import (
    IGNORE,
    B,
    I,
    O,
    decode_bio,
    encode_texts,
    spans_to_word_tags,
    word_range_to_chars,
    word_values_to_tokens,
)


def _decode(tags: list[int]) -> list[tuple[int, int, float]]:
    inside = [1.0 if t != O else 0.0 for t in tags]
    begin = [1.0 if t == B else -1.0 for t in tags]
    return decode_bio(inside, begin)


def test_round_trip_on_real_sentences(tokenizer, ade_positive: list[Example]) -> None:
    exs = ade_positive[:400]
    encs = encode_texts(tokenizer, [e.text for e in exs], max_length=256)
    n_spans = n_exact = 0
    for ex, enc in zip(exs, encs, strict=True):
        for label in ("DRUG", "ADE"):
            spans = [(s.start, s.end) for s in ex.spans if s.label == label]
            tagged = spans_to_word_tags(enc.words, spans)
            assert tagged.stats.lost == 0 and tagged.stats.conflict == 0
            back = {word_range_to_chars(enc.words, ws, we) for ws, we, _ in _decode(tagged.tags)}
            exact = {sp for sp, r in zip(spans, tagged.ranges, strict=True)
                     if r is not None and word_range_to_chars(enc.words, *r) == sp}
            n_spans += len(spans)
            n_exact += len(exact)
            assert exact <= back  # every word-aligned span comes back identical
            assert len(back) == len(set(spans))
    # nearly every ADE gold mention lies on BERT word boundaries; the rest are snapped (and counted)
    assert n_spans > 600 and n_spans - n_exact <= 5


def test_words_have_original_offsets(tokenizer) -> None:
    text = "Naïve Café-induced hepatotoxicity."
    (enc,) = encode_texts(tokenizer, [text], max_length=32)
    assert [text[s:e] for s, e in enc.words] == ["Naïve", "Café", "-", "induced", "hepatotoxicity", "."]


def test_snapping_lost_and_conflict_are_counted(tokenizer) -> None:
    text = "Intravenous azithromycin-induced ototoxicity."
    (enc,) = encode_texts(tokenizer, [text], max_length=32)
    # "zithro" lies inside one word: snapped outward to "azithromycin"
    tagged = spans_to_word_tags(enc.words, [(13, 19), (12, 24), (33, 44)])
    assert tagged.stats.snapped == 1 and tagged.stats.conflict == 1 and tagged.stats.exact == 1
    (ws, we) = tagged.ranges[0]
    assert text[slice(*word_range_to_chars(enc.words, ws, we))] == "azithromycin"
    lost = spans_to_word_tags(enc.words, [(11, 12)])  # only the space
    assert lost.stats.lost == 1 and lost.ranges == [None]


def test_only_first_sub_word_is_labelled(tokenizer) -> None:
    text = "Intravenous azithromycin-induced ototoxicity."
    (enc,) = encode_texts(tokenizer, [text], max_length=32)
    tags = spans_to_word_tags(enc.words, [(12, 24)]).tags
    labels = word_values_to_tokens(enc, tags)
    toks = tokenizer.convert_ids_to_tokens(list(enc.input_ids))
    for t, lab in zip(toks, labels, strict=True):
        if t.startswith("##") or t in ("[CLS]", "[SEP]"):
            assert lab == IGNORE
    assert labels[toks.index("az")] == B
    assert sum(1 for x in labels if x != IGNORE) == len(enc.words)


def test_decode_bio_thresholds_and_adjacent_entities() -> None:
    assert decode_bio([0.9, 0.9, 0.1], [0.5, -0.5, 0.0]) == [(0, 2, 0.9)]
    assert [(s, e) for s, e, _ in decode_bio([0.9, 0.9], [0.5, 0.5])] == [(0, 1), (1, 2)]  # B B
    assert decode_bio([0.4, 0.4], [0.1, -0.1], threshold=0.5) == []
    assert [(s, e) for s, e, _ in decode_bio([0.4, 0.4], [0.1, -0.1], threshold=0.3)] == [(0, 2)]
    assert [(s, e) for s, e, _ in _decode([O, I, I, O, B])] == [(1, 3), (4, 5)]  # I after O starts a span


def test_truncation_is_flagged(tokenizer) -> None:
    long = " ".join(["word"] * 100)
    (enc,) = encode_texts(tokenizer, [long], max_length=16)
    assert enc.truncated and len(enc.input_ids) == 16 and len(enc.words) == 14
    (short,) = encode_texts(tokenizer, ["short text"], max_length=16)
    assert not short.truncated
    assert I == 2


def test_batch_encoding_equals_one_by_one_with_texts_at_the_limit(tokenizer) -> None:
    # Only texts reaching max_length are tokenized again untruncated; each must still be matched to its own text.
    texts = ["short text", "word word word azithromycin ototoxicity.", "a b c d e", "tiny",
             "word word word word word", " ".join(["word"] * 40)]
    batch = encode_texts(tokenizer, texts, max_length=7)
    alone = [encode_texts(tokenizer, [t], max_length=7)[0] for t in texts]
    assert batch == alone
    assert [e.truncated for e in batch] == [False, True, False, False, False, True]


def test_word_cut_by_truncation_is_dropped_and_its_span_lost(tokenizer) -> None:
    text = "word word word azithromycin ototoxicity."
    # [CLS] word word word az ##ith [SEP]: "azithromycin" is cut after two of its five pieces
    (enc,) = encode_texts(tokenizer, [text], max_length=7)
    assert enc.truncated
    assert [text[s:e] for s, e in enc.words] == ["word", "word", "word"]  # no partial word "azith"
    assert enc.token_word.count(-1) == 4 and len(enc.first_token) == 3  # CLS, az, ##ith, SEP carry no word
    tagged = spans_to_word_tags(enc.words, [(15, 27)])  # "azithromycin": cut off, counted as lost
    assert tagged.stats.lost == 1 and tagged.stats.snapped == 0
    (whole,) = encode_texts(tokenizer, [text], max_length=10)  # cut right after a whole word: nothing dropped
    assert [text[s:e] for s, e in whole.words] == ["word", "word", "word", "azithromycin"]


def test_encodings_match_the_tokenizer_wrapper(tokenizer, ade_gold: list[Example]) -> None:
    # encode_texts reads a private copy of the Rust tokenizer (truncating_backend) instead of the wrapper's
    # BatchEncoding; ids, offsets and word ids must be the wrapper's, whatever the wrapper was last called with.
    from ade_distill.student.encode import truncating_backend

    texts = [e.text for e in ade_gold[:300]] + [
        "", "   ", "Naïve Café-induced hepatotoxicity.", "A [SEP] inside and a [CLS] too.",
        " ".join(["azithromycin-induced"] * 30), "word " * 200,
    ]
    for max_length in (8, 32, 128):
        tokenizer(texts[:3], padding="max_length", max_length=150, truncation=False)  # leaves padding set on it
        got = truncating_backend(tokenizer, max_length).encode_batch(texts, add_special_tokens=True)
        ref = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
        for i, e in enumerate(got):
            assert (e.ids, e.offsets, e.word_ids) == (ref["input_ids"][i], ref["offset_mapping"][i], ref.word_ids(i))
        encs = encode_texts(tokenizer, texts, max_length)
        assert [list(e.input_ids) for e in encs] == ref["input_ids"]
        assert all(e.truncated == (len(tokenizer(t)["input_ids"]) > max_length) for e, t in zip(encs, texts, strict=True))
    assert truncating_backend(tokenizer, 32) is truncating_backend(tokenizer, 32)
    assert len(tokenizer("word " * 200)["input_ids"]) > 128  # the wrapper's own calls are not truncated by it
