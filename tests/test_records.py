"""The record schema: construction invariants, JSONL round trip, appender recovery, and every bad-input error."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from ade_distill.errors import DataError
from ade_distill.records import (
    AlignmentStatus,
    Example,
    JsonlAppender,
    Relation,
    Span,
    check_labels,
    example_to_json,
    iter_jsonl,
    parse_example,
    read_examples,
    write_examples,
)
from ade_distill.tasks import load_task

TEXT = "Intravenous azithromycin-induced ototoxicity."


def _ex(ex_id: str = "10030778_p0", **kw: object) -> Example:
    spans = (
        Span(id="T1", label="DRUG", start=12, end=24, text="azithromycin"),
        Span(id="T2", label="ADE", start=33, end=44, text="ototoxicity", score=0.9,
             alignment=AlignmentStatus.EXACT),
    )
    base: dict[str, object] = dict(
        id=ex_id, text=TEXT, spans=spans, relations=(Relation(head="T1", tail="T2", label="ADE", score=1.0),),
        meta={"pmid": "10030778", "source": "ade_corpus_v2"},
    )
    base.update(kw)
    return Example(**base)  # type: ignore[arg-type]


def _line(**over: object) -> dict[str, object]:
    obj = json.loads(example_to_json(_ex()))
    obj.update(over)
    return obj


def _write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


# -- construction invariants ------------------------------------------------------------------------------


def test_valid_example_and_span_helpers() -> None:
    ex = _ex()
    assert [s.grounded for s in ex.spans] == [True, True]
    assert ex.span_by_id()["T1"].text == "azithromycin"
    for s in ex.spans:
        assert ex.text[s.start : s.end] == s.text  # half-open offsets


@pytest.mark.parametrize(
    ("span", "fragment"),
    [
        (dict(start=12, end=12, text=""), "not a non-empty range"),
        (dict(start=-1, end=3, text="abc"), "not a non-empty range"),
        (dict(start=5, end=2, text="abc"), "not a non-empty range"),
        (dict(start=12, text="azithromycin"), "give both start and end"),
        (dict(text="azithromycin"), "only an ungrounded LLM string may lack them"),
        (dict(start=12, end=24, text="azithromycin", alignment="unaligned"), "has offsets but alignment='unaligned'"),
        (dict(start="12", end=24, text="azithromycin"), "offsets must be integers"),
        (dict(start=True, end=24, text="azithromycin"), "offsets must be integers"),
        (dict(start=12.0, end=24, text="azithromycin"), "offsets must be integers"),
        (dict(start=12, end=24, text="azithromycin", score=1.5), "less than or equal to 1"),
        (dict(start=12, end=24, text="azithromycin", score=-0.1), "greater than or equal to 0"),
    ],
)
def test_span_invariants(span: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Span(id="T1", label="DRUG", **span)  # type: ignore[arg-type]


def test_span_accepts_numpy_integers() -> None:
    np = pytest.importorskip("numpy")
    s = Span(id="T1", label="DRUG", start=np.int64(12), end=np.int64(24), text="azithromycin")
    assert type(s.start) is int and s.start == 12


def test_unaligned_span_without_offsets_is_allowed() -> None:
    s = Span(id="T9", label="ADE", text="hearing loss", alignment="unaligned")
    ex = Example(id="x", text=TEXT, spans=(s,))
    assert not ex.spans[0].grounded and ex.spans[0].alignment is AlignmentStatus.UNALIGNED


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(spans=(Span(id="T1", label="DRUG", start=40, end=50, text="xxxxxxxxxx"),)), "lie outside the text"),
        (dict(spans=(Span(id="T1", label="DRUG", start=12, end=24, text="Azithromycin"),)), "differs from text"),
        (dict(spans=(Span(id="T1", label="DRUG", start=12, end=24, text="azithromycin"),
                     Span(id="T1", label="ADE", start=33, end=44, text="ototoxicity"))), "duplicate span id 'T1'"),
        (dict(relations=(Relation(head="T1", tail="T7", label="ADE"),)), "unknown span id 'T7'"),
        (dict(relations=(Relation(head="T0", tail="T2", label="ADE"),)), "head refers to unknown span id 'T0'"),
        (dict(id=""), "at least 1 character"),
    ],
)
def test_example_invariants(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        _ex(**kw)


def test_relation_score_range() -> None:
    with pytest.raises(ValidationError):
        Relation(head="a", tail="b", label="ADE", score=2.0)
    with pytest.raises(ValidationError):
        Relation(head="a", tail="b", label="")


def test_records_are_frozen_and_reject_unknown_fields() -> None:
    ex = _ex()
    with pytest.raises(ValidationError):
        ex.text = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        Example(id="x", text="t", extra_field=1)  # type: ignore[call-arg]


def test_check_labels() -> None:
    check_labels(_ex(), ["DRUG", "ADE"], ["ADE"])
    with pytest.raises(DataError, match="unknown entity label 'DRUG'"):
        check_labels(_ex(), ["CHEMICAL", "ADE"], ["ADE"], path="f.jsonl", line=3)
    with pytest.raises(DataError, match=r"^f\.jsonl:3 \(record '10030778_p0'\): unknown relation label 'ADE'"):
        check_labels(_ex(), ["DRUG", "ADE"], ["CID"], path="f.jsonl", line=3)


# -- JSONL round trip ---------------------------------------------------------------------------------------


def test_jsonl_round_trip_is_equal_and_deterministic(tmp_path: Path) -> None:
    unaligned = Span(id="T3", label="ADE", text="deafness", alignment="unaligned", meta={"raw": "Deafness"})
    examples = [
        _ex("a"),
        _ex("b", spans=(*_ex().spans, unaligned), meta={"pmid": "1", "nested": {"k": [1, 2]}}),
        Example(id="c", text="Ünïcode — “quotes” and \u2028 a line separator."),
        Example(id="d", text=""),
    ]
    p1, p2 = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"
    assert write_examples(p1, examples) == 4
    back = list(read_examples(p1))
    assert back == examples
    write_examples(p2, back)
    assert p1.read_bytes() == p2.read_bytes()
    raw = p1.read_bytes()
    assert raw.count(b"\n") == 4 and "Ünïcode".encode() in raw  # one line per record, UTF-8 not escaped
    first = json.loads(raw.splitlines()[0])
    assert list(first) == ["id", "text", "spans", "relations", "meta"]
    assert "score" not in first["spans"][0] and "alignment" not in first["spans"][0]  # None fields omitted


def test_write_examples_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    p = tmp_path / "out.jsonl"
    write_examples(p, [_ex("old")])

    def boom():  # type: ignore[no-untyped-def]
        yield _ex("new")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_examples(p, boom())
    assert [e.id for e in read_examples(p)] == ["old"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.jsonl"]


def test_write_examples_file_mode_follows_umask(tmp_path: Path) -> None:
    # regression: mkstemp made every written file 0600
    old = os.umask(0o022)
    try:
        p = tmp_path / "out.jsonl"
        write_examples(p, [_ex()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_read_gzipped_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(example_to_json(_ex()) + "\n")
    assert [e.id for e in read_examples(p)] == ["10030778_p0"]
    p.write_bytes(gzip.compress(b"{}" * 1000)[:30])
    with pytest.raises(DataError, match=r"x\.jsonl\.gz: cannot read"):
        list(iter_jsonl(p))


# -- appender ------------------------------------------------------------------------------------------------


def test_appender_appends_and_truncates_partial_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "silver.jsonl"
    with JsonlAppender(p) as app:
        assert app.truncated_bytes == 0
        app.write(_ex("a"))
        app.write(_ex("b"))
    whole = p.read_bytes()
    partial = example_to_json(_ex("c"))[:37].encode()
    p.write_bytes(whole + partial)  # a crash in the middle of a line
    with caplog.at_level("WARNING"), JsonlAppender(p) as app:
        assert app.truncated_bytes == len(partial)
        assert p.read_bytes() == whole
        app.write(_ex("c"))
    assert "incomplete last line" in caplog.text
    assert [e.id for e in read_examples(p)] == ["a", "b", "c"]


def test_appender_truncates_file_with_only_a_partial_line(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"id": "a", "te')
    with JsonlAppender(p) as app:
        assert app.truncated_bytes == 15
        app.write(_ex("a"))
    assert [e.id for e in read_examples(p)] == ["a"]


def test_appender_leaves_complete_and_empty_files_alone(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(b"")
    JsonlAppender(p).close()
    assert p.read_bytes() == b""
    write_examples(p, [_ex("a")])
    before = p.read_bytes()
    JsonlAppender(p).close()
    assert p.read_bytes() == before


def test_appender_truncation_scans_past_a_block(tmp_path: Path) -> None:
    # a partial line longer than the 64 KiB backward-scan block
    p = tmp_path / "s.jsonl"
    head = (example_to_json(_ex("a")) + "\n").encode()
    p.write_bytes(head + b'{"id": "b", "text": "' + b"x" * 200_000)
    with JsonlAppender(p) as app:
        assert app.truncated_bytes == 200_000 + 21
    assert p.read_bytes() == head


# -- bad input: every error names file:line and record id -----------------------------------------------------


def _err(path: Path, **kw: object) -> DataError:
    with pytest.raises(DataError) as info:
        list(read_examples(path, **kw))  # type: ignore[arg-type]
    return info.value


def test_error_malformed_json(tmp_path: Path) -> None:
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("a")), '{"id": "b", "text": '])
    e = _err(p)
    assert str(e).startswith(f"{p}:2: malformed JSON")
    assert (e.path, e.line) == (str(p), 2)


def test_error_invalid_utf8(tmp_path: Path) -> None:
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("a")), b'{"id": "b", "text": "caf\xe9"}'])
    e = _err(p)
    assert str(e).startswith(f"{p}:2: invalid UTF-8 at byte 24 of the line")


def test_error_offsets_outside_text(tmp_path: Path) -> None:
    obj = _line(id="bad_1")
    obj["spans"][1].update(start=33, end=99)  # type: ignore[index]
    p = _write_lines(tmp_path / "in.jsonl", ["", json.dumps(obj)])
    e = _err(p)
    assert str(e).startswith(f"{p}:2 (record 'bad_1'): ")
    assert "span 'T2' offsets [33, 99) lie outside the text (length 45)" in str(e)
    assert e.record_id == "bad_1"


def test_error_span_text_differs_from_slice(tmp_path: Path) -> None:
    obj = _line(id="bad_2")
    obj["spans"][0]["text"] = "Azithromycin"  # type: ignore[index]
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("ok")), json.dumps(obj)])
    e = _err(p)
    assert str(e).startswith(f"{p}:2 (record 'bad_2'): ")
    assert "text 'Azithromycin' differs from text[12:24] = 'azithromycin'" in str(e)


def test_error_dangling_relation_and_field_name(tmp_path: Path) -> None:
    obj = _line(id="bad_3", relations=[{"head": "T1", "tail": "T5", "label": "ADE"}])
    p = _write_lines(tmp_path / "in.jsonl", [json.dumps(obj)])
    assert "unknown span id 'T5'" in str(_err(p))
    obj = _line(id="bad_4")
    obj["spans"][0]["start"] = "12"  # type: ignore[index]
    p = _write_lines(tmp_path / "in2.jsonl", [json.dumps(obj)])
    msg = str(_err(p))
    assert msg.startswith(f"{p}:1 (record 'bad_4'): spans.0.start: offsets must be integers")


def test_error_unknown_label_with_task(tmp_path: Path) -> None:
    obj = _line(id="bad_5")
    obj["spans"][0]["label"] = "CHEMICAL"  # type: ignore[index]
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("ok")), json.dumps(obj)])
    assert len(list(read_examples(p))) == 2  # labels are only checked against a task
    e = _err(p, task=load_task("ade"))
    assert str(e).startswith(f"{p}:2 (record 'bad_5'): unknown entity label 'CHEMICAL' on span 'T1'")
    obj = _line(id="bad_6", relations=[{"head": "T1", "tail": "T2", "label": "CID"}])
    p = _write_lines(tmp_path / "in2.jsonl", [json.dumps(obj)])
    assert "unknown relation label 'CID'" in str(_err(p, task=load_task("ade")))


def test_error_relation_argument_types_with_task(tmp_path: Path) -> None:
    # regression: a relation ADE(head=ADE span, tail=DRUG span) passed label checks
    obj = _line(id="bad_7", relations=[{"head": "T2", "tail": "T1", "label": "ADE"}])
    p = _write_lines(tmp_path / "in.jsonl", [json.dumps(obj)])
    assert len(list(read_examples(p))) == 1
    e = _err(p, task=load_task("ade"))
    assert str(e) == f"{p}:1 (record 'bad_7'): relation 'ADE' head 'T2' is a ADE span; task 'ade' expects DRUG"


def test_error_duplicate_record_id(tmp_path: Path) -> None:
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("a")), example_to_json(_ex("b")),
                                             example_to_json(_ex("a"))])
    assert str(_err(p)) == f"{p}:3 (record 'a'): duplicate record id"
    assert [e.id for e in read_examples(p, unique_ids=False)] == ["a", "b", "a"]


@pytest.mark.parametrize("line", ['["a", "b"]', '"text"', "42", "null"])
def test_error_non_object_line(tmp_path: Path, line: str) -> None:
    p = _write_lines(tmp_path / "in.jsonl", [example_to_json(_ex("a")), line])
    assert str(_err(p)).startswith(f"{p}:2: expected a JSON object, found ")


def test_error_missing_field_and_missing_file(tmp_path: Path) -> None:
    p = _write_lines(tmp_path / "in.jsonl", ['{"id": "x"}'])
    assert str(_err(p)) == f"{p}:1 (record 'x'): text: Field required"
    missing = tmp_path / "nope.jsonl"
    assert str(_err(missing)) == f"{missing}: file not found"


def test_parse_example_without_location() -> None:
    with pytest.raises(DataError, match=r"^record 'x': text: Field required$"):
        parse_example({"id": "x"})


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    p = _write_lines(tmp_path / "in.jsonl", ["", "  ", example_to_json(_ex("a")), "", "{"])
    assert str(_err(p)).startswith(f"{p}:5: malformed JSON")
    assert [n for n, _ in iter_jsonl(_write_lines(tmp_path / "b.jsonl", ["", "{}", "", "{}"]))] == [2, 4]
