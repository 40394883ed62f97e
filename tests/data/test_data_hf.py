"""Hugging Face reader on a locally built ``datasets.Dataset`` with the hub schema (no download)."""

from __future__ import annotations

import re

import pytest

from ade_distill.data.hf import HF_CONFIG, examples_from_rows
from ade_distill.errors import DataError

datasets = pytest.importorskip("datasets")

FEATURES = datasets.Features({
    "text": datasets.Value("string"),
    "drug": datasets.Value("string"),
    "effect": datasets.Value("string"),
    "indexes": {
        k: datasets.Sequence({"start_char": datasets.Value("int32"), "end_char": datasets.Value("int32")})
        for k in ("drug", "effect")
    },
})


def _hub_row(text: str, drug: str, effect: str) -> dict:
    # as the hub's loading script computes them: an *unescaped* re.finditer over the sentence
    # (the script yields lists of {start_char, end_char}; a Sequence of a dict stores them as a dict of lists)
    def idx(s: str) -> dict[str, list[int]]:
        try:
            found = list(re.finditer(s, text))
        except re.error:
            found = []
        return {"start_char": [m.start() for m in found], "end_char": [m.end() for m in found]}
    return {"text": text, "drug": drug, "effect": effect, "indexes": {"drug": idx(drug), "effect": idx(effect)}}


ROWS = [
    _hub_row("Intravenous azithromycin-induced ototoxicity.", "azithromycin", "ototoxicity"),
    _hub_row("Cough and angioedema after enalapril.", "enalapril", "Cough"),
    _hub_row("Cough and angioedema after enalapril.", "enalapril", "angioedema"),
    # regex metacharacters: the hub's unescaped search finds no / wrong occurrences
    _hub_row("Toxicity of 5-FU (fluorouracil) led to mucositis.", "5-FU (fluorouracil)", "mucositis"),
    _hub_row("CBDCA hypersensitivity, then CBDCA hypersensitivity again.", "CBDCA", "hypersensitivity"),
    _hub_row("CBDCA hypersensitivity, then CBDCA hypersensitivity again.", "CBDCA", "hypersensitivity"),
]


@pytest.fixture(scope="module")
def dataset():  # type: ignore[no-untyped-def]
    ds = datasets.Dataset.from_list(ROWS, features=FEATURES)
    assert ds[0]["indexes"]["drug"] == {"start_char": [12], "end_char": [24]}  # the hub's column shape
    return ds


def test_examples_from_a_dataset(dataset) -> None:  # type: ignore[no-untyped-def]
    # regression: de-duplicating Relation objects raised "unhashable type: 'dict'" on any input
    exs = examples_from_rows(dataset)
    assert len(exs) == 4
    ex = exs[0]
    assert ex.id.startswith("hf_") and ex.meta["source"] == "hf:ade_corpus_v2" and ex.meta["has_ade"] is True
    assert "pmid" not in ex.meta and ex.meta["doc_id"] == ex.id[3:]
    assert [(s.label, s.start, s.end, s.text) for s in ex.spans] == [
        ("DRUG", 12, 24, "azithromycin"), ("ADE", 33, 44, "ototoxicity")]
    assert [(r.head, r.tail, r.label) for r in ex.relations] == [("T1", "T2", "ADE")]


def test_rows_of_one_sentence_are_grouped(dataset) -> None:  # type: ignore[no-untyped-def]
    ex = examples_from_rows(dataset)[1]
    s = ex.span_by_id()
    assert sorted((s[r.head].text, s[r.tail].text) for r in ex.relations) == [
        ("enalapril", "Cough"), ("enalapril", "angioedema")]
    assert len(ex.spans) == 3 and ex.meta["rows"] == 2


def test_regex_metacharacters_fall_back_to_text_search(dataset) -> None:  # type: ignore[no-untyped-def]
    ex = examples_from_rows(dataset)[2]
    drug = next(s for s in ex.spans if s.label == "DRUG")
    assert (drug.start, drug.text) == (12, "5-FU (fluorouracil)")


def test_repeated_mention_takes_first_occurrence_and_counts_rows(dataset) -> None:  # type: ignore[no-untyped-def]
    ex = examples_from_rows(dataset)[3]
    assert [(s.label, s.start) for s in ex.spans] == [("DRUG", 0), ("ADE", 6)]
    assert len(ex.relations) == 1 and ex.meta["rows"] == 2  # merged rows stay visible


def test_list_of_dicts_indexes_and_plain_rows() -> None:
    rows = [{"text": "A rash, then a rash after aspirin.", "drug": "aspirin", "effect": "rash",
             "indexes": {"drug": [{"start_char": 26, "end_char": 33}],
                         "effect": [{"start_char": 15, "end_char": 19}, {"start_char": 2, "end_char": 6}]}}]
    (ex,) = examples_from_rows(rows)
    assert [(s.label, s.start) for s in ex.spans] == [("ADE", 15), ("DRUG", 26)]  # first *listed* occurrence


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"text": "x", "drug": "x", "effect": "x"}, f"missing column 'indexes' (is this the {HF_CONFIG} config?)"),
        ({"text": "A rash.", "drug": "aspirin", "effect": "rash", "indexes": {}}, "drug mention 'aspirin' not found"),
        ({"text": "A rash.", "drug": None, "effect": "rash", "indexes": {}}, "column 'drug' must be a non-empty"),
    ],
)
def test_bad_rows(row: dict, fragment: str) -> None:
    ok = _hub_row("Aspirin rash.", "Aspirin", "rash")
    with pytest.raises(DataError) as info:
        examples_from_rows([ok, row])
    assert str(info.value).startswith("record 'row 1': ") and fragment in str(info.value)
