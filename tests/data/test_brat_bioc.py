"""BRAT standoff and BioC (XML, JSON) readers and writers: lossless round trips on real corpus records, the
documented handling of what the schema cannot hold (with counts), errors naming file:line, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.data.bioc import read_bioc, write_bioc
from ade_distill.data.brat import MANIFEST, read_brat, write_brat
from ade_distill.data.corpora import load_corpus
from ade_distill.data.formats import detect_format, read_records, write_records
from ade_distill.data.standoff import FormatOptions, FormatReport, load_format_options
from ade_distill.data.unlabeled import iter_documents, sniff_format
from ade_distill.errors import ConfigError, DataError
from ade_distill.records import AlignmentStatus, Example, Relation, Span, read_examples, write_examples
from ade_distill.tasks.spec import load_task

runner = CliRunner()
FORMATS = [("brat", "out"), ("bioc", "out.xml"), ("bioc", "out.json")]


@pytest.fixture(scope="module")
def ade_sample(ade_gold: list[Example]) -> list[Example]:
    """300 ADE sentences with relations and 100 ADE-NEG sentences (real records)."""
    return [e for e in ade_gold if e.relations][:300] + [e for e in ade_gold if not e.relations][:100]


@pytest.fixture(scope="module")
def cdr_test(data_root: Path) -> list[Example]:
    return load_corpus("cdr-test", data_root)


@pytest.fixture()
def brat_tiny(fixtures_dir: Path, tmp_path: Path) -> Path:
    """The hand-written n2c2-style BRAT document (discontinuous, overlapping, attribute, note, normalization)."""
    dst = tmp_path / "brat_tiny"
    shutil.copytree(fixtures_dir / "brat_tiny", dst)
    return dst


def _silver() -> list[Example]:
    """Records with everything the schema holds: scores, alignment, span/relation/record meta, an id BRAT cannot
    hold, an ungrounded span, overlapping spans, a CRLF text."""
    text = "Rash after amoxicillin.\r\nAmoxicillin-induced rash & <fever>."
    spans = (
        Span(id="T1", label="ADE", start=0, end=4, text="Rash", score=0.9, alignment=AlignmentStatus.EXACT),
        Span(id="d-2", label="DRUG", start=11, end=22, text="amoxicillin", score=0.75,
             alignment=AlignmentStatus.CASE_INSENSITIVE, meta={"votes": 2}),
        Span(id="T3", label="DRUG", start=25, end=36, text="Amoxicillin"),
        Span(id="T4", label="ADE", start=45, end=49, text="rash", alignment=AlignmentStatus.FUZZY),
        Span(id="T5", label="ADE", start=25, end=49, text="Amoxicillin-induced rash"),
        Span(id="T6", label="ADE", text="fevers", alignment=AlignmentStatus.UNALIGNED),
    )
    rels = (
        Relation(head="d-2", tail="T1", label="ADE", score=0.8, meta={"teacher": "gpt"}),
        Relation(head="T3", tail="T4", label="ADE"),
        Relation(head="T3", tail="T6", label="ADE", score=0.4),
    )
    return [
        Example(id="s1", text=text, spans=spans, relations=rels, meta={"teacher": {"model": "x"}, "status": "ok"}),
        Example(id="s2", text="", meta={}),
        Example(id="s3", text="Nothing here.", meta={"pmid": "123", "n": 1.5, "flag": True, "none": None}),
    ]


# -- round trips on real records --------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_round_trip_ade_corpus(ade_sample: list[Example], tmp_path: Path, fmt: str, name: str) -> None:
    report = write_records(tmp_path / name, ade_sample, fmt)
    assert report.lossless and report.records == 400
    assert report.spans == sum(len(e.spans) for e in ade_sample)
    assert detect_format(tmp_path / name) == fmt
    back_report = FormatReport(fmt, "read")
    back = read_records(tmp_path / name, report=back_report)
    assert back == ade_sample  # ids, text, offsets, labels, relations, meta — and order
    assert back_report.lossless and back_report.relations == sum(len(e.relations) for e in ade_sample)


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_round_trip_bc5cdr_documents(cdr_test: list[Example], tmp_path: Path, fmt: str, name: str) -> None:
    docs = cdr_test[:150]
    assert write_records(tmp_path / name, docs, fmt).lossless
    assert read_records(tmp_path / name) == docs  # concept ids in span/relation meta, title_end, unanchored pairs


def test_bioc_cdr_uses_pubtator_passages(cdr_test: list[Example], tmp_path: Path) -> None:
    doc = cdr_test[0]
    write_bioc(tmp_path / "c.json", [doc])
    passages = json.loads((tmp_path / "c.json").read_text())["documents"][0]["passages"]
    t = doc.meta["title_end"]
    assert [(p["infons"].get("type"), p["offset"]) for p in passages] == [("title", 0), ("abstract", t + 1)]
    assert passages[0]["text"] + " " + passages[1]["text"] == doc.text
    ann = passages[1]["annotations"][0]
    span = doc.span_by_id()[ann["id"]]
    assert ann["locations"] == [{"offset": span.start, "length": span.end - span.start}]  # document offsets


def test_brat_files_look_like_brat(ade_sample: list[Example], tmp_path: Path) -> None:
    write_brat(tmp_path / "b", ade_sample[:1])
    ex = ade_sample[0]
    assert (tmp_path / "b" / f"{ex.id}.txt").read_text() == ex.text
    assert (tmp_path / "b" / f"{ex.id}.ann").read_text().splitlines() == [
        "T1\tDRUG 12 24\tazithromycin", "T2\tADE 33 44\tototoxicity", "R1\tADE Arg1:T1 Arg2:T2"]
    conf = (tmp_path / "b" / "annotation.conf").read_text()
    assert "[entities]\nADE\nDRUG\n" in conf and "ADE\tArg1:DRUG, Arg2:ADE" in conf


# -- silver extras: what each format holds -------------------------------------------------------------------------
def test_bioc_holds_every_field(tmp_path: Path) -> None:
    recs = _silver()
    for name in ("s.xml", "s.json", "s.xml.gz"):
        rep = write_bioc(tmp_path / name, recs)
        assert rep.lossless
        assert read_bioc(tmp_path / name) == recs  # ungrounded span, CRLF, &, <, >, scores, meta types


def test_brat_reports_ungrounded_spans_and_keeps_the_rest(tmp_path: Path) -> None:
    recs = _silver()
    rep = write_brat(tmp_path / "b", recs)
    assert dict(rep.issues) == {"unaligned_spans_not_written": 1, "relations_not_written_argument_not_written": 1}
    assert rep.where["unaligned_spans_not_written"] == ["s1/T6"]
    back = read_brat(tmp_path / "b")
    s1 = recs[0]
    expected = s1.model_copy(update={"spans": s1.spans[:5], "relations": s1.relations[:2]})
    assert back == [expected, *recs[1:]]  # id 'd-2' came back from its note; CRLF offsets intact
    ann = (tmp_path / "b" / "s1.ann").read_text()
    assert "T7\tDRUG 11 22\tamoxicillin" in ann  # renumbered, original id in the note
    assert '#2\tAnnotatorNotes T7\tade-distill {"alignment":"case_insensitive","id":"d-2","meta":{"votes":2},' \
           '"score":0.75}' in ann


def test_write_brat_refuses_existing_export_and_bad_ids(tmp_path: Path) -> None:
    write_brat(tmp_path / "b", _silver()[1:])
    with pytest.raises(ConfigError, match="already holds BRAT files"):
        write_brat(tmp_path / "b", _silver()[1:])
    with pytest.raises(DataError, match="cannot be a BRAT file name"):
        write_brat(tmp_path / "c", [Example(id="a/b", text="x")])
    assert not (tmp_path / "c").exists()  # nothing half-written


# -- the hand-written BRAT file -----------------------------------------------------------------------------------
def test_handwritten_brat_default_policy(brat_tiny: Path) -> None:
    rep = FormatReport("brat", "read")
    [ex] = read_brat(brat_tiny, report=rep)
    assert ex.id == "note1" and ex.meta == {}
    assert [(s.id, s.label, s.text) for s in ex.spans] == [
        ("T1", "Drug", "lisinopril"), ("T2", "Strength", "10 mg"), ("T3", "ADE", "dry cough"),
        ("T4", "ADE", "cough"), ("T6", "Drug", "lisinopril")]  # T5 (discontinuous) skipped; T3/T4 overlap, kept
    # no label map: labels as written, Arg1 → head, Arg2 → tail
    assert [(r.head, r.tail, r.label) for r in ex.relations] == [("T3", "T6", "ADE-Drug"), ("T2", "T1", "Strength-Drug")]
    assert dict(rep.issues) == {
        "discontinuous_spans_skipped": 1, "relations_skipped_argument_not_read": 1, "attributes_not_read": 1,
        "normalizations_not_read": 1, "equivalences_not_read": 1, "notes_not_read": 1}
    assert rep.where["discontinuous_spans_skipped"] == ["note1.ann:5"]
    assert rep.where["relations_skipped_argument_not_read"] == ["note1.ann:8"]
    assert dict(rep.info) == {"overlapping_span_pairs": 1}
    assert "NOT carried" in rep.summary() and "discontinuous_spans_skipped 1 (e.g. note1.ann:5)" in rep.summary()


def test_handwritten_brat_with_n2c2_map_and_cover(brat_tiny: Path, tmp_path: Path) -> None:
    opts = load_format_options("n2c2_2018").model_copy(update={"discontinuous": "cover"})
    rep = FormatReport("brat", "read")
    [ex] = read_brat(brat_tiny / "note1.ann", opts, rep)  # one pair
    assert [(s.id, s.label) for s in ex.spans] == [("T1", "DRUG"), ("T3", "ADE"), ("T4", "ADE"), ("T5", "ADE"),
                                                   ("T6", "DRUG")]
    t5 = ex.span_by_id()["T5"]
    assert t5.text == "angio-\nedema" and t5.meta == {"fragments": [[67, 73], [74, 79]]}  # the covering extent
    # n2c2 relations: Arg1 is the ADE, Arg2 the drug → project head DRUG, tail ADE
    assert [(r.head, r.tail, r.label) for r in ex.relations] == [("T6", "T3", "ADE"), ("T6", "T5", "ADE")]
    assert rep.issues["unmapped_spans_skipped"] == 1 and rep.issues["unmapped_relations_skipped"] == 1
    assert rep.issues["discontinuous_spans_covered"] == 1
    # written back through the same map: the fragments, labels and roles of the original file
    write_brat(tmp_path / "again", [ex], opts)
    ann = (tmp_path / "again" / "note1.ann").read_text().splitlines()
    assert "T5\tADE 67 73;74 79\tangio- edema" in ann
    assert ann[5:] == ["R1\tADE-Drug Arg1:T3 Arg2:T6", "R2\tADE-Drug Arg1:T5 Arg2:T6"]
    assert read_brat(tmp_path / "again", opts) == [ex]
    # and BioC holds the covered span as two locations
    write_bioc(tmp_path / "n.json", [ex], opts)
    [doc] = json.loads((tmp_path / "n.json").read_text())["documents"]
    locs = {a["id"]: a["locations"] for p in doc["passages"] for a in p["annotations"]}
    assert locs["T5"] == [{"offset": 67, "length": 6}, {"offset": 74, "length": 5}]
    assert read_bioc(tmp_path / "n.json", opts) == [ex]


def test_handwritten_brat_error_policy_and_task_check(brat_tiny: Path) -> None:
    with pytest.raises(DataError, match=r"note1\.ann:5: span 'T5' is discontinuous"):
        read_brat(brat_tiny, FormatOptions(discontinuous="error"))
    with pytest.raises(DataError, match="unknown entity label 'Drug'"):
        read_records(brat_tiny, task=load_task("ade"))  # without the n2c2 map the labels are not the task's
    recs = read_records(brat_tiny, task=load_task("ade"), options="n2c2_2018")
    assert {s.label for s in recs[0].spans} == {"DRUG", "ADE"}
    with pytest.raises(DataError, match=r"note1\.ann:2: entity label 'Strength' is not in the label map"):
        read_brat(brat_tiny, FormatOptions(entities={"DRUG": "Drug", "ADE": "ADE"}, unmapped="error"))
    wrong = FormatOptions(relations={"ADE": {"label": "ADE-Drug", "head_role": "Drug", "tail_role": "Effect"}})
    with pytest.raises(DataError, match=r"note1\.ann:7: relation 'ADE-Drug' has roles \['Arg1', 'Arg2'\]"):
        read_brat(brat_tiny, wrong)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("T9 Drug 0 4\tPati", "expected 'ID<TAB>...'"),
        ("T9\tDrug 0 4", "needs 'T9<TAB>LABEL START END<TAB>TEXT'"),
        ("T9", "expected 'ID<TAB>...'"),
        ("T9\tDrug 0 x\tPati", "offsets '0 x' are not 'START END'"),
        ("T9\tDrug 4 2\tPati", "not a non-empty range"),
        ("T9\tDrug 0 400\tPati", "not a non-empty range inside the text (length 98)"),
        ("T9\tDrug 0 4\tDrug", "T9 text 'Drug' differs from the .txt at 0 4 = 'Pati'"),
        ("T1\tDrug 0 4\tPati", "annotation id 'T1' is used twice"),
        ("R9\tADE-Drug Arg1:T3", "relation needs 'R9<TAB>LABEL ROLE:ID ROLE:ID'"),
        ("R9\tADE-Drug Arg1:T3 Arg2:T99", "relation argument 'T99' is not a text-bound annotation"),
        ("X1\tfoo", "unknown annotation id 'X1'"),
        ("#9\tAnnotatorNotes T1\tade-distill {not json", "extras are not valid JSON"),
        ("#9\tAnnotatorNotes T1\tade-distill {\"score\": 7}", "note of T1: Input should be less than or equal to 1"),
    ],
)
def test_malformed_ann_lines_name_file_and_line(brat_tiny: Path, line: str, message: str) -> None:
    ann = brat_tiny / "note1.ann"
    lines = ann.read_text().splitlines()
    lines.insert(2, line)  # becomes line 3
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_brat(brat_tiny)
    assert str(info.value).startswith(f"{ann}:3") and message in str(info.value), str(info.value)


def test_brat_folder_errors(tmp_path: Path, brat_tiny: Path) -> None:
    (brat_tiny / "note1.txt").rename(brat_tiny / "other.txt")
    with pytest.raises(DataError, match="note1.txt is missing"):
        read_brat(brat_tiny)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .ann files"):
        read_brat(tmp_path / "empty")
    sub = tmp_path / "two" / "a"
    sub.mkdir(parents=True)
    for d in (tmp_path / "two", sub):
        (d / "x.txt").write_text("t")
        (d / "x.ann").write_text("")
    with pytest.raises(DataError, match="document id 'x' occurs twice"):
        read_brat(tmp_path / "two")


def test_brat_reads_back_corrections_in_manifest_order(tmp_path: Path, ade_sample: list[Example]) -> None:
    recs = ade_sample[:3]
    write_brat(tmp_path / "b", recs)
    # an annotator deletes a document, adds one, removes an annotation and leaves a readme
    (tmp_path / "b" / f"{recs[1].id}.ann").unlink()
    (tmp_path / "b" / f"{recs[1].id}.txt").unlink()
    (tmp_path / "b" / "0new.txt").write_text("Aspirin caused bleeding.")
    (tmp_path / "b" / "0new.ann").write_text("T1\tDRUG 0 7\tAspirin\n")
    (tmp_path / "b" / "README.txt").write_text("notes for annotators")
    rep = FormatReport("brat", "read")
    back = read_brat(tmp_path / "b", report=rep)
    assert [e.id for e in back] == [recs[0].id, recs[2].id, "0new"]
    assert back[0] == recs[0] and back[2].meta == {}
    assert dict(rep.issues) == {"txt_files_without_ann_not_read": 1} and rep.info["manifest_records_without_files"] == 1
    assert json.loads((tmp_path / "b" / MANIFEST).read_text())["records"][0]["id"] == recs[0].id


# -- foreign BioC ---------------------------------------------------------------------------------------------------
PUBTATOR_BIOC = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE collection SYSTEM "BioC.dtd">
<collection><source>PubTator</source><date>2015</date><key>BioC.key</key>
<document><id>123</id>
<passage><infon key="type">title</infon><offset>0</offset><text>Lithium-induced tremor.</text>
<annotation id="0"><infon key="type">Chemical</infon><infon key="MESH">D008094</infon>
<location offset="0" length="7"/><text>Lithium</text></annotation>
<annotation id="1"><infon key="type">Disease</infon><location offset="16" length="6"/><text>tremor</text></annotation>
</passage>
<passage><infon key="type">abstract</infon><offset>24</offset><text>We saw tremor and renal failure.</text>
<annotation id="2"><infon key="type">Disease</infon><location offset="31" length="6"/><text>tremor</text></annotation>
<annotation id="3"><infon key="type">Disease</infon><location offset="42" length="5"/><location offset="48" length="7"/>
<text>renal failure</text></annotation>
</passage>
<relation id="R0"><infon key="relation">CID</infon><infon key="Chemical">D008094</infon><infon key="Disease">D014202</infon></relation>
<relation id="R1"><infon key="type">CID</infon><node refid="0" role="Chemical"/><node refid="1" role="Disease"/></relation>
<relation id="R2"><infon key="type">CID</infon><node refid="0" role="Chemical"/><node refid="2" role="Disease"/></relation>
</document>
</collection>
"""


def test_foreign_pubtator_bioc_document_and_passage_units(tmp_path: Path) -> None:
    path = tmp_path / "pubtator.xml"
    path.write_text(PUBTATOR_BIOC)
    assert detect_format(path) == "bioc" and sniff_format(path) == "bioc"
    opts = FormatOptions(entities={"CHEMICAL": "Chemical", "DISEASE": "Disease"},
                         relations={"CID": {"label": "CID", "head_role": "Chemical", "tail_role": "Disease"}})
    rep = FormatReport("bioc", "read")
    [doc] = read_bioc(path, opts, rep)
    assert doc.id == "123" and doc.text == "Lithium-induced tremor. We saw tremor and renal failure."
    assert [(s.id, s.label, s.text) for s in doc.spans] == [("0", "CHEMICAL", "Lithium"), ("1", "DISEASE", "tremor"),
                                                           ("2", "DISEASE", "tremor")]
    assert doc.spans[0].meta == {"bioc_infons": {"MESH": "D008094"}}
    assert [(r.head, r.tail) for r in doc.relations] == [("0", "1"), ("0", "2")]
    assert doc.meta["bioc_relations"][0]["infons"]["Disease"] == "D014202"  # concept-level CID kept, counted
    assert dict(rep.issues) == {"discontinuous_spans_skipped": 1, "relations_without_two_nodes_kept_in_meta": 1}
    prep = FormatReport("bioc", "read")
    title, abstract = read_bioc(path, opts, prep, unit="passage")
    assert (title.id, title.text, abstract.id, abstract.text) == (
        "123_s0", "Lithium-induced tremor.", "123_s1", "We saw tremor and renal failure.")
    assert abstract.meta["doc_start"] == 24 and abstract.spans[0].start == 7  # passage-relative offsets
    assert len(title.relations) == 1 and not abstract.relations
    assert prep.issues["relations_across_passages_skipped"] == 1
    with pytest.raises(DataError, match="has roles \\['Chemical', 'Disease'\\]; expected 'Arg1'"):
        read_bioc(path, FormatOptions(entities=opts.entities))


def test_bioc_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(PUBTATOR_BIOC.replace('offset="16" length="6"/><text>tremor', 'offset="16" length="6"/><text>tremors'))
    with pytest.raises(DataError, match=r"bad.xml \(record '123'\): annotation '1' text 'tremors' differs"):
        read_bioc(bad)
    bad.write_text(PUBTATOR_BIOC.replace("</document>", ""))
    with pytest.raises(DataError, match=r"bad.xml:\d+: malformed XML"):
        read_bioc(bad)
    bad.write_text("<MedlineCitationSet></MedlineCitationSet>")
    with pytest.raises(DataError, match="not a BioC <collection>"):
        read_bioc(bad)
    with pytest.raises(DataError, match="cannot be written in XML 1.0"):
        write_bioc(tmp_path / "x.xml", [Example(id="a", text="bell \x07")])
    write_bioc(tmp_path / "x.json", [Example(id="a", text="bell \x07")])  # JSON holds it
    assert read_bioc(tmp_path / "x.json")[0].text == "bell \x07"


def test_sniffing_keeps_medline_and_jsonl(tmp_path: Path, fixtures_dir: Path) -> None:
    assert sniff_format(fixtures_dir / "medline_tiny.xml") == "medline"
    assert sniff_format(fixtures_dir / "abstracts_tiny.jsonl") == "abstracts"
    write_examples(tmp_path / "r.json", _silver())  # JSONL under a .json name stays JSONL
    assert detect_format(tmp_path / "r.json") == "jsonl"
    write_bioc(tmp_path / "b.json", _silver())
    assert detect_format(tmp_path / "b.json") == "bioc"
    write_brat(tmp_path / "br", _silver())
    assert sniff_format(tmp_path / "br") == "brat" and detect_format(tmp_path / "br" / "s1.txt") == "brat"
    assert [d.id for d in iter_documents(tmp_path / "br")] == ["s1", "s2", "s3"]  # predict / label input
    with pytest.raises(ConfigError, match="unknown records format 'conll'"):
        read_records(tmp_path / "br", "conll")


def test_label_map_validation(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("entities: {DRUG: Drug, ADE: Drug}\n")
    with pytest.raises(ConfigError, match="both map to 'Drug'"):
        load_format_options(bad)
    bad.write_text("relations: {ADE: {label: X, head_role: Arg1, tail_role: Arg1}}\n")
    with pytest.raises(ConfigError, match="head_role and tail_role must differ"):
        load_format_options(bad)
    with pytest.raises(ConfigError, match="n2c2_2018"):
        load_format_options(tmp_path / "missing.yaml")
    bad.write_text("relations: {ADE: ADE-Drug}\ndiscontinuous: cover\n")
    opts = load_format_options(bad)
    assert opts.relations["ADE"].label == "ADE-Drug" and opts.relations["ADE"].head_role == "Arg1"


# -- scoring and the CLI ----------------------------------------------------------------------------------------------
def _predictions(gold: list[Example]) -> list[Example]:
    """A deterministic imperfect system: drops every third record's relations, trims some spans by a character."""
    out = []
    for k, ex in enumerate(gold):
        spans = []
        for j, s in enumerate(ex.spans):
            if (k + j) % 5 == 0 and s.end - s.start > 2:
                s = s.model_copy(update={"end": s.end - 1, "text": s.text[:-1]})
            spans.append(s.model_copy(update={"score": round(0.5 + 0.01 * (j % 40), 2)}))
        rels = () if k % 3 == 0 else ex.relations
        out.append(ex.model_copy(update={"spans": tuple(spans), "relations": rels}))
    return out


@pytest.mark.parametrize("corpus", ["ade", "cdr"])
def test_score_brat_gold_against_bioc_predictions_equals_jsonl(
    corpus: str, ade_sample: list[Example], cdr_test: list[Example], tmp_path: Path
) -> None:
    gold = ade_sample if corpus == "ade" else cdr_test[:60]
    pred = _predictions(gold)
    write_examples(tmp_path / "gold.jsonl", gold)
    write_examples(tmp_path / "pred.jsonl", pred)
    write_brat(tmp_path / "gold_brat", gold)
    write_bioc(tmp_path / "pred.xml", pred)
    write_bioc(tmp_path / "pred.json", pred)
    common = ["--format", "json", "--n-boot", "50", "--seed", "3"]
    outs = []
    for g, p in (("gold.jsonl", "pred.jsonl"), ("gold_brat", "pred.xml"), ("gold_brat", "pred.json")):
        r = runner.invoke(app, ["score", "--gold", str(tmp_path / g), "--pred", f"sys={tmp_path / p}", *common])
        assert r.exit_code == 0, r.output
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1] == outs[2]
    assert ("concept" in outs[0]["modes"]) == (corpus == "cdr")
    micro = outs[0]["results"]["sys"]["strict"]["relation"]["micro"]
    assert micro["fn"] > 0 and micro["tp"] > 0


def test_cli_export_to_brat_and_back(tmp_path: Path, ade_sample: list[Example]) -> None:
    silver = _silver() + ade_sample[:20]
    write_examples(tmp_path / "silver.jsonl", silver)
    r = runner.invoke(app, ["data", "export", "--corpus", str(tmp_path / "silver.jsonl"), "--format", "brat",
                            "--out", str(tmp_path / "to_correct")])
    assert r.exit_code == 0, r.output
    assert "wrote 23 examples" in r.output and "unaligned_spans_not_written 1" in r.output
    # the corrected folder comes back as JSONL through the same command
    r = runner.invoke(app, ["data", "export", "--corpus", str(tmp_path / "to_correct"), "--out",
                            str(tmp_path / "corrected.jsonl")])
    assert r.exit_code == 0, r.output
    back = list(read_examples(tmp_path / "corrected.jsonl"))
    assert back[3:] == ade_sample[:20] and back[1:3] == silver[1:3]
    # gold corpus straight to BioC, with a label map
    r = runner.invoke(app, ["data", "export", "--corpus", "ade-positive", "--format", "bioc", "--label-map",
                            "n2c2_2018", "--out", str(tmp_path / "ade.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "ade.json").read_text())["documents"][0]
    assert {a["infons"]["type"] for a in doc["passages"][0]["annotations"]} == {"Drug", "ADE"}
    assert doc["relations"][0]["infons"]["type"] == "ADE-Drug"
    assert {n["role"] for n in doc["relations"][0]["nodes"]} == {"Arg1", "Arg2"}
    r = runner.invoke(app, ["data", "folds", "--corpus", str(tmp_path / "ade.json"), "--label-map", "n2c2_2018",
                            "-k", "3", "--out", str(tmp_path / "folds.json")])
    assert r.exit_code == 0, r.output


def test_cli_score_reports_bad_brat_line(tmp_path: Path, brat_tiny: Path, ade_sample: list[Example]) -> None:
    (brat_tiny / "note1.ann").write_text("T1\tDrug 19 29\tlisinoprill\n")
    r = runner.invoke(app, ["score", "--gold", str(brat_tiny), "--pred", f"s={brat_tiny}", "--input-format", "brat"])
    assert isinstance(r.exception, DataError) and f"{brat_tiny / 'note1.ann'}:1" in str(r.exception)


def test_training_input_from_brat_and_its_hash(tmp_path: Path, ade_sample: list[Example]) -> None:
    from ade_distill.hashing import file_sha256, path_sha256
    from ade_distill.student.train import read_training_file

    write_brat(tmp_path / "train", ade_sample[:10])
    assert read_training_file(tmp_path / "train", load_task("ade")) == ade_sample[:10]
    before = path_sha256(tmp_path / "train")
    ann = tmp_path / "train" / f"{ade_sample[0].id}.ann"
    ann.write_text(ann.read_text().replace("T2\tADE 33", "T2\tADE 34").replace("\tototoxicity", "\ttotoxicity"))
    assert path_sha256(tmp_path / "train") != before
    assert path_sha256(ann) == file_sha256(ann)


def test_labels_with_spaces_fit_bioc_not_brat(tmp_path: Path) -> None:
    ex = Example(id="a", text="Aspirin rash", spans=(Span(id="T1", label="Drug name", start=0, end=7, text="Aspirin"),
                                                     Span(id="T2", label="ADE", start=8, end=12, text="rash")),
                 relations=(Relation(head="T1", tail="T2", label="causes effect"),))
    assert write_records(tmp_path / "a.xml", [ex]).lossless and read_records(tmp_path / "a.xml") == [ex]
    with pytest.raises(DataError, match="'Drug name' contains whitespace"):
        write_brat(tmp_path / "b", [ex])
    opts = FormatOptions(entities={"Drug name": "Drug"}, relations={"causes effect": "causes"})
    write_brat(tmp_path / "c", [ex], opts)
    assert read_brat(tmp_path / "c", opts) == [ex]


# -- review fixes: input routing ------------------------------------------------------------------------------------
def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The console script's entry point: package errors are one line and exit code 2."""
    import sys

    from ade_distill.cli import main

    monkeypatch.setattr(sys, "argv", ["ade-distill", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code), capsys.readouterr().err


def test_cli_export_format_follows_out_name(tmp_path: Path) -> None:
    # regression: --format defaulted to jsonl, so `--out x.xml` got JSONL in an .xml file
    write_examples(tmp_path / "silver.jsonl", _silver())
    r = runner.invoke(app, ["data", "export", "--corpus", str(tmp_path / "silver.jsonl"), "--out",
                            str(tmp_path / "x.xml")])
    assert r.exit_code == 0, r.output
    assert "(bioc)" in r.output and (tmp_path / "x.xml").read_text().startswith("<?xml")
    assert detect_format(tmp_path / "x.xml") == "bioc" and read_records(tmp_path / "x.xml") == _silver()
    r = runner.invoke(app, ["data", "export", "--corpus", str(tmp_path / "silver.jsonl"), "--out",
                            str(tmp_path / "y.xml"), "--format", "jsonl"])
    assert isinstance(r.exception, ConfigError) and "--format jsonl contradicts" in str(r.exception)
    assert not (tmp_path / "y.xml").exists()
    with pytest.raises(ConfigError, match="--format bioc contradicts"):
        write_records(tmp_path / "z.jsonl", _silver(), "bioc")
    with pytest.raises(ConfigError, match="--format brat contradicts"):
        write_records(tmp_path / "z.json", _silver(), "brat")
    assert write_records(tmp_path / "j.json", _silver(), "jsonl").fmt == "jsonl"  # .json may hold JSONL


def test_label_map_reaches_training_and_predict_input(
    tmp_path: Path, brat_tiny: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # regression: BRAT/BioC input with non-project labels could be scored but not trained on
    from ade_distill.student.train import read_training_file

    recs = read_training_file(brat_tiny, load_task("ade"), label_map="n2c2_2018")
    assert {s.label for s in recs[0].spans} == {"DRUG", "ADE"}
    assert {s.label for s in next(iter_documents(brat_tiny, options="n2c2_2018")).spans} == {"DRUG", "ADE"}
    base = ["train", "--train", str(brat_tiny), "--out", str(tmp_path / "m"), "--folds", str(tmp_path / "f.json")]
    # with the map the labels pass; the command then stops at a later check (--folds without --fold)
    code, err = _main(monkeypatch, capsys, *base, "--label-map", "n2c2_2018")
    assert code == 2 and "--folds and --fold go together" in err
    code, err = _main(monkeypatch, capsys, *base)
    assert code == 2 and "unknown entity label 'Drug'" in err and "note1" in err
    code, err = _main(monkeypatch, capsys, *base, "--dev", str(brat_tiny), "--label-map", "n2c2_2018")
    assert code == 2 and "--folds and --fold go together" in err
    for cmd in ("train", "predict", "adapt-encoder", "export-onnx", "label"):
        assert _option(cmd, "label_map").opts == ["--label-map"], cmd


def test_label_demo_pool_takes_a_label_map(tmp_path: Path, brat_tiny: Path, fixtures_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["label", "--teacher", "openai:gpt-4o-mini", "--input", str(fixtures_dir / "abstracts_tiny.jsonl"),
            "--out", str(tmp_path / "s.jsonl"), "--dry-run", "--shots", "1", "--demo-pool", str(brat_tiny)]
    code, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and "unknown entity label 'Drug'" in err
    r = runner.invoke(app, [*args, "--label-map", "n2c2_2018"])
    assert r.exit_code == 0, r.output
    assert "dry run" in r.output


@pytest.mark.parametrize("name", ["in.xml.gz", "in.json.gz", "in.jsonl.gz"])
def test_truncated_gzip_input_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], name: str) -> None:
    # regression: is_bioc read gzip without catching BadGzipFile / EOFError → a traceback
    import gzip

    full = gzip.compress(b"<collection><document><id>1</id></document></collection>\n" * 50)
    (tmp_path / name).write_bytes(full[: len(full) // 2])
    (tmp_path / ("bad_" + name)).write_bytes(b"not gzip at all")
    for path in (tmp_path / name, tmp_path / ("bad_" + name)):
        code, err = _main(monkeypatch, capsys, "label", "--teacher", "openai:gpt-4o-mini", "--input", str(path),
                          "--out", str(tmp_path / "s.jsonl"), "--dry-run")
        assert code == 2 and "cannot read" in err and str(path) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    with pytest.raises(DataError, match="cannot read"):
        sniff_format(tmp_path / ("bad_" + name))


def _option(command: str, name: str) -> typer.core.TyperOption:
    """The click option ``name`` of a root command."""
    group = typer.main.get_command(app)
    return next(p for p in group.commands[command].params if p.name == name)  # type: ignore[attr-defined]


def test_one_input_format_vocabulary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # regression: `predict --format jsonl` failed ("unknown input format 'jsonl'"), label took records only
    from ade_distill import cli as root_cli
    from ade_distill.data.formats import document_format
    from ade_distill.evaluation import cli as eval_cli

    assert document_format("jsonl") == document_format("records") == "records"
    write_examples(tmp_path / "r.jsonl", _silver())
    assert [e.id for e in iter_documents(tmp_path / "r.jsonl", "jsonl")] == [e.id for e in _silver()]
    assert read_records(tmp_path / "r.jsonl", "records") == _silver()
    # records given as jsonl are labeled as they are (no sentence split, which would refuse their spans)
    r = runner.invoke(app, ["label", "--teacher", "openai:gpt-4o-mini", "--input", str(tmp_path / "r.jsonl"),
                            "--input-format", "jsonl", "--out", str(tmp_path / "s.jsonl"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "3 records to label" in r.output
    # an unknown format is a ConfigError listing the choices, under the new name and the old one
    for opt in ("--input-format", "--format"):
        code, err = _main(monkeypatch, capsys, "predict", "--model", str(tmp_path / "no_model"), "--input",
                          str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "p.jsonl"), opt, "csv")
        assert code == 2 and "unknown input format 'csv'" in err and "'jsonl'" in err and "'medline'" in err
    with pytest.raises(ConfigError, match="unknown input format 'csv'"):
        list(iter_documents(tmp_path / "r.jsonl", "csv"))
    assert _option("predict", "input_format").opts == ["--input-format", "--format"]
    assert "BRAT folder or BioC file; gold or silver" in _option("train", "train_file").help
    assert _option("browse", "pred").help.startswith("NAME=PATH (JSONL, BRAT folder, BioC file)")
    # one definition of the shared options
    assert root_cli.InputFormatOpt is eval_cli.InputFormatOpt and root_cli.LabelMapOpt is eval_cli.LabelMapOpt


def test_label_map_for_jsonl_input_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # regression: a label map given with JSONL input was silently ignored
    write_examples(tmp_path / "r.jsonl", _silver())
    with caplog.at_level("WARNING"):
        assert read_records(tmp_path / "r.jsonl", options="n2c2_2018") == _silver()
    assert "label map is not used for JSONL input" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        list(iter_documents(tmp_path / "r.jsonl", options="n2c2_2018"))
    assert "label map is not used for JSONL input" in caplog.text


def test_score_and_browse_share_system_loading(tmp_path: Path, brat_tiny: Path) -> None:
    from ade_distill.evaluation.cli import _load_systems

    gold, systems = _load_systems(brat_tiny, [f"a={brat_tiny}"], "brat", Path("n2c2_2018"), False)
    assert systems["a"] == gold and {s.label for s in gold[0].spans} == {"DRUG", "ADE"}
    with pytest.raises(ConfigError, match="must be unique"):
        _load_systems(brat_tiny, [f"a={brat_tiny}", f"a={brat_tiny}"], None, None, False)
    for cmd in ("score", "browse"):
        r = runner.invoke(app, [cmd, "--gold", str(brat_tiny), "--pred", f"a={brat_tiny}", "--pred", f"a={brat_tiny}",
                                "--out", str(tmp_path / "o.html")])
        assert isinstance(r.exception, ConfigError) and "must be unique" in str(r.exception), cmd


SENTENCE_BIOC = """<?xml version="1.0" encoding="UTF-8"?>
<collection><source>x</source><date>2024</date><key>k</key>
<document><id>7</id>
<passage><offset>0</offset><text>Aspirin caused rash. It stopped.</text>
<annotation id="P1"><infon key="type">DRUG</infon><location offset="0" length="7"/><text>Aspirin</text></annotation>
<sentence><offset>0</offset><text>Aspirin caused rash.</text>
<annotation id="S1"><infon key="type">ADE</infon><location offset="15" length="4"/><text>rash</text></annotation>
<relation id="R1"><infon key="type">ADE</infon><node refid="P1" role="Arg1"/><node refid="S1" role="Arg2"/></relation>
</sentence>
<sentence><offset>21</offset><text>It stopped.</text></sentence>
</passage>
</document>
</collection>
"""


def test_bioc_reads_sentence_annotations_of_a_passage_with_text(tmp_path: Path) -> None:
    # regression: a passage with its own text and sentences lost the sentences' annotations and relations
    (tmp_path / "s.xml").write_text(SENTENCE_BIOC)
    rep = FormatReport("bioc", "read")
    [ex] = read_bioc(tmp_path / "s.xml", report=rep)
    assert ex.text == "Aspirin caused rash. It stopped."
    assert [(s.id, s.label, s.text) for s in ex.spans] == [("P1", "DRUG", "Aspirin"), ("S1", "ADE", "rash")]
    assert [(r.head, r.tail, r.label) for r in ex.relations] == [("P1", "S1", "ADE")]
    assert rep.spans == 2 and rep.relations == 1 and rep.lossless
    # the same as JSON
    write_bioc(tmp_path / "s.json", [ex])
    assert read_bioc(tmp_path / "s.json") == [ex]
