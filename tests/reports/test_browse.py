"""The error browser's pure part (judging → page data, escaping) and the `browse` command; no browser here (see
test_browse_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ade_distill.cli import app
from ade_distill.errors import ConfigError, DataError
from ade_distill.evaluation.errors_analysis import analyze_errors, classify_example
from ade_distill.evaluation.scoring import score_systems
from ade_distill.records import Example, Relation, Span, read_examples, write_examples
from ade_distill.reports.browse import CATEGORY_ORDER, build_browse_data, render_browse_html, write_browse


def span(sid: str, text: str, sub: str, label: str) -> Span:
    start = text.index(sub)
    return Span(id=sid, label=label, start=start, end=start + len(sub), text=sub)


def unaligned(sid: str, s: str, label: str) -> Span:
    return Span(id=sid, label=label, text=s, alignment="unaligned")


def ex(eid: str, text: str, spans=(), rels=()) -> Example:
    return Example(id=eid, text=text, spans=tuple(spans),
                   relations=tuple(Relation(head=h, tail=t, label="ADE") for h, t in rels))


T = "Azithromycin and rifampicin caused ototoxicity and renal failure."
X = 'A <script>alert("x")</script> & <img src=x onerror=alert(1)> caused </script><!-- rash.'
ROOT = Path(__file__).resolve().parents[2]


def _fixture() -> tuple[list[Example], dict[str, list[Example]]]:
    """Three sentences, two systems: correct, boundary, label, boundary_label, spurious, ungrounded, miss,
    wrong_pairing and covered items (the hand-worked case of test_error_categories), a text full of markup and a
    system name with some."""
    g1 = ex("1", T, [span("G1", T, "Azithromycin", "DRUG"), span("G2", T, "ototoxicity", "ADE"),
                     span("G3", T, "renal failure", "ADE"), span("G4", T, "rifampicin", "DRUG")],
            [("G1", "G2"), ("G4", "G3")])
    g2 = ex("2", X, [span("G1", X, "<script>", "DRUG"), span("G2", X, "rash", "ADE")], [("G1", "G2")])
    g3 = ex("3", "No relation here.")
    a = [ex("1", T, [span("P1", T, "Azithromycin", "DRUG"), span("P2", T, "ototoxicity", "ADE"),
                     span("P3", T, "failure", "ADE"), span("P4", T, "rifampicin", "ADE"),
                     span("P5", T, "caused", "ADE"), unaligned("P6", "aspirin", "DRUG")],
            [("P1", "P3"), ("P6", "P2"), ("P1", "P5")]),
         ex("2", X, [span("P1", X, "<script>", "DRUG"), span("P2", X, "rash", "ADE")], [("P1", "P2")]),
         ex("3", "No relation here.")]
    b = [ex("1", T, [span("P1", T, "Azithromycin", "DRUG"), span("P3", T, "renal failure", "ADE"),
                     span("P4", T, "rifampicin", "DRUG"), span("P5", T, "ototoxicity", "ADE"),
                     span("P6", T, "renal", "DRUG")],
            [("P1", "P3"), ("P4", "P5")]),
         ex("2", X, [span("P1", X, '<script>alert("x")', "DRUG"), span("P2", X, "rash.", "ADE")], [("P1", "P2")]),
         ex("3", "No relation here.", [span("P1", "No relation here.", "relation", "ADE")])]
    return [g1, g2, g3], {"a": a, "b<&>": b}


def _counted(d: dict, name: str) -> dict[str, dict[str, int]]:
    """The page's counts of ``name`` without ``correct``: the shape of ErrorAnalysis.to_dict()["counts"]."""
    return {lvl: {c: n for c, n in d["counts"][name][lvl].items() if c != "correct"} for lvl in ("entity", "relation")}


@pytest.mark.parametrize("mode", ["strict", "boundaries", "lenient"])
def test_counts_equal_the_error_analysis(mode: str) -> None:
    gold, systems = _fixture()
    d = build_browse_data(gold, systems, mode)
    for name, preds in systems.items():
        assert _counted(d, name) == analyze_errors(gold, preds, name, mode=mode).to_dict()["counts"]
    # every category, per sentence, is the one classify_example gives, and the rows add up to the counts
    for i, s in enumerate(d["sentences"]):
        for j, name in enumerate(d["systems"]):
            judged = classify_example(gold[i], systems[name][i], mode)
            rows = s["s"][j]["e"] + s["s"][j]["r"]
            assert sorted(CATEGORY_ORDER[r[0]] for r in rows) == sorted(x.category for x in judged)
    assert d["counts"]["a"]["relation"]["correct"] == 1
    if mode == "strict":
        assert d["counts"]["b<&>"]["relation"]["wrong_pairing"] == 2


def test_strict_counts_are_the_scorers() -> None:
    gold, systems = _fixture()
    report = score_systems(gold, systems, modes=("strict",), n_boot=0)
    d = build_browse_data(gold, systems)
    for name in systems:
        assert _counted(d, name) == report.errors[name].to_dict()["counts"]


def test_rows_point_at_the_right_spans() -> None:
    gold, systems = _fixture()
    d = build_browse_data(gold, systems)
    s1 = d["sentences"][0]
    labels = d["labels"]
    assert [[labels[x[2]] for x in s1["g"]]] == [["DRUG", "ADE", "ADE", "DRUG"]]
    a = s1["s"][0]
    assert a["sp"][5] == [-1, -1, labels.index("DRUG"), "aspirin"]  # the unaligned span keeps its text
    ungrounded = [r for r in a["r"] if CATEGORY_ORDER[r[0]] == "ungrounded"]
    assert len(ungrounded) == 1 and ungrounded[0][1] == 5 and ungrounded[0][4:] == [-1, -1, -1]
    misses = [r for r in a["r"] if CATEGORY_ORDER[r[0]] == "miss"]
    assert sorted(tuple(r[4:6]) for r in misses) == [(0, 1), (3, 2)]  # gold G1→G2 and G4→G3
    # relation-set signatures: system a on sentence 2 says what gold says (0), system b does not
    assert d["sentences"][1]["k"] == [0, 1] and d["sentences"][2]["k"] == [0, 0]


def _embedded(html: str) -> str:
    m = re.search(r'<script type="application/json" id="browse-data">(.*?)</script>', html, re.S)
    assert m, "no data script"
    return m.group(1)


def test_html_escapes_text_and_names() -> None:
    gold, systems = _fixture()
    d = build_browse_data(gold, systems, title="</title><script>alert(1)</script>")
    html = render_browse_html(d)
    raw = _embedded(html)
    # nothing in the data can close the script element, open a comment or start an entity
    assert not re.search(r"[<>&]", raw)
    assert json.loads(raw) == json.loads(json.dumps(d))  # ... and JSON.parse gets every string back unchanged
    assert html.count("<script") == 2 and "alert" not in html.replace(raw, "")
    assert "http://" not in html and "https://" not in html and "src=" not in html.replace(raw, "")


def test_modes_without_categories_and_unpaired_ids_are_refused() -> None:
    gold, systems = _fixture()
    with pytest.raises(ConfigError, match="strict"):
        build_browse_data(gold, systems, "text")
    with pytest.raises(ConfigError, match="at least one"):
        build_browse_data(gold, {})
    with pytest.raises(DataError, match="no prediction"):
        build_browse_data(gold, {"a": systems["a"][:2]})
    d = build_browse_data(gold, {"a": systems["a"][:2]}, missing_as_empty=True)
    assert d["counts"]["a"]["relation"]["miss"] == analyze_errors(
        gold, [*systems["a"][:2], ex("3", gold[2].text)]).counts["relation"]["miss"]


def test_real_predictions_match_the_committed_report(ade_positive: list[Example]) -> None:
    """Two systems of a committed report on the whole 4,272-sentence corpus: the page's counts are the
    ``errors_strict`` of its results.json."""
    report = ROOT / "reports" / "ade_best"
    res = json.loads((report / "results.json").read_text(encoding="utf-8"))
    names = [s for s in res["systems"] if s == "student" or s.startswith("teacher:")][:2]
    systems = {s: list(read_examples(report / "predictions" / (s.replace(":", "_") + ".jsonl"))) for s in names}
    d = build_browse_data(ade_positive, systems)
    assert len(d["sentences"]) == 4272
    for s in names:
        assert _counted(d, s) == res["errors_strict"][s]


def test_browse_command(tmp_path: Path) -> None:
    gold, systems = _fixture()
    write_examples(tmp_path / "gold.jsonl", gold)
    write_examples(tmp_path / "a.jsonl", systems["a"])
    out = tmp_path / "page" / "errors.html"
    r = CliRunner().invoke(app, ["browse", "--gold", str(tmp_path / "gold.jsonl"), "--pred",
                                 f"sys={tmp_path / 'a.jsonl'}", "--out", str(out), "--mode", "lenient"])
    assert r.exit_code == 0, r.output
    assert "3 sentences, 1 system(s), lenient" in r.output
    d = json.loads(_embedded(out.read_text(encoding="utf-8")))
    assert d["mode"] == "lenient" and d["systems"] == ["sys"] and d["title"] == "Errors on gold.jsonl"
    r = CliRunner().invoke(app, ["browse", "--gold", str(tmp_path / "gold.jsonl"), "--pred",
                                 f"sys={tmp_path / 'a.jsonl'}", "--out", str(out), "--mode", "concept"])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)


def test_write_browse_and_the_report_page(tmp_path: Path) -> None:
    from ade_distill.experiments.results import write_report_browser

    gold, systems = _fixture()
    page = write_browse(tmp_path / "b.html", gold, systems, title="t")
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    page = write_report_browser({"config_name": "demo"}, gold, systems, tmp_path / "r" / "browse.html")
    d = json.loads(_embedded(page.read_text(encoding="utf-8")))
    assert d["title"] == "demo: errors of 2 systems on 3 test sentences" and d["mode"] == "strict"
    assert _counted(d, "a") == analyze_errors(gold, systems["a"]).to_dict()["counts"]


# -- a hand-worked sentence per mode: the categories written out, not recomputed with classify_example ------------
H = "Aspirin caused severe rash and nausea."


def _hand() -> tuple[Example, Example]:
    """Gold: Aspirin (DRUG) → severe rash (ADE), Aspirin → nausea (ADE). Prediction: Aspirin (DRUG) → rash (ADE,
    too short), Aspirin → nausea labelled DRUG (same offsets, wrong label)."""
    g = ex("h", H, [span("G1", H, "Aspirin", "DRUG"), span("G2", H, "severe rash", "ADE"),
                    span("G3", H, "nausea", "ADE")], [("G1", "G2"), ("G1", "G3")])
    p = ex("h", H, [span("P1", H, "Aspirin", "DRUG"), span("P2", H, "rash", "ADE"),
                    span("P3", H, "nausea", "DRUG")], [("P1", "P2"), ("P1", "P3")])
    return g, p


def _ids(item) -> str | None:
    if item is None:
        return None
    if isinstance(item, Span):
        return item.id
    return f"{item[1].id}>{item[2].id}"  # a relation item (relation, head, tail)


HAND_EXPECTED = {
    # exact offsets and label: rash is a boundary error, nausea/DRUG a label error, both gold spans they overlap
    # are covered; the relation to rash overlaps gold with the right labels (boundary), the one to nausea/DRUG
    # has a tail of the wrong label and no gold span at its offsets with its label (spurious)
    "strict": {("entity", "correct", "P1", "G1"), ("entity", "boundary", "P2", "G2"), ("entity", "label", "P3", "G3"),
               ("entity", "covered", "P2", "G2"), ("entity", "covered", "P3", "G3"),
               ("relation", "boundary", "P1>P2", "G1>G2"), ("relation", "spurious", "P1>P3", None),
               ("relation", "covered", "P1>P2", "G1>G2"), ("relation", "covered", "P1>P3", "G1>G3")},
    # offsets only (labels ignored): nausea and Aspirin → nausea are correct; rash stays a boundary error
    "boundaries": {("entity", "correct", "P1", "G1"), ("entity", "correct", "P3", "G3"),
                   ("entity", "boundary", "P2", "G2"), ("entity", "covered", "P2", "G2"),
                   ("relation", "correct", "P1>P3", "G1>G3"), ("relation", "boundary", "P1>P2", "G1>G2"),
                   ("relation", "covered", "P1>P2", "G1>G2")},
    # overlap with the same label: rash and Aspirin → rash are correct; nausea/DRUG stays a label error
    "lenient": {("entity", "correct", "P1", "G1"), ("entity", "correct", "P2", "G2"), ("entity", "label", "P3", "G3"),
                ("entity", "covered", "P3", "G3"),
                ("relation", "correct", "P1>P2", "G1>G2"), ("relation", "spurious", "P1>P3", None),
                ("relation", "covered", "P1>P3", "G1>G3")},
}


@pytest.mark.parametrize("mode", ["strict", "boundaries", "lenient"])
def test_classify_example_by_hand(mode: str) -> None:
    g, p = _hand()
    judged = classify_example(g, p, mode)
    got = [(j.level, j.category, _ids(j.pred), _ids(j.gold)) for j in judged]
    assert len(got) == len(set(got))
    assert set(got) == HAND_EXPECTED[mode]
    # the page counts every row but `covered`, per level and category
    d = build_browse_data([g], {"s": [p]}, mode)
    for level in ("entity", "relation"):
        want = {c: 0 for c in d["counts"]["s"][level]}
        for lvl, cat, _, _ in HAND_EXPECTED[mode]:
            if lvl == level and cat != "covered":
                want[cat] += 1
        assert d["counts"]["s"][level] == want, (mode, level)


def test_a_prediction_with_an_error_is_also_named_by_a_covered_row() -> None:
    """The premise of the page's highlight rule (templates/browse.html, sysLayer): the rash prediction has its
    ``boundary`` row and, after it, the ``covered`` row of the gold span it overlaps — the page must take the
    prediction's status from the former."""
    g, p = _hand()
    rows = build_browse_data([g], {"s": [p]}, "strict")["sentences"][0]["s"][0]["e"]
    about_rash = [CATEGORY_ORDER[r[0]] for r in rows if r[1] == 1]
    assert about_rash == ["boundary", "covered"]
    assert "r[0] !== COVERED) status[r[1]] = r[0]" in render_browse_html(build_browse_data([g], {"s": [p]}))


def test_write_browse_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unique hidden temporary name, fsynced before the rename; a failed write leaves the old page and no
    temporary file."""
    import os

    g, p = _hand()
    out = tmp_path / "b.html"
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    write_browse(out, [g], {"s": [p]})
    assert synced and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["b.html"]
    (tmp_path / "b.html.tmp").write_text("a fixed temp name of another writer", encoding="utf-8")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    before = out.read_text(encoding="utf-8")
    with pytest.raises(OSError, match="disk full"):
        write_browse(out, [g], {"s": [p]}, title="new")
    assert out.read_text(encoding="utf-8") == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["b.html", "b.html.tmp"]
    assert (tmp_path / "b.html.tmp").read_text(encoding="utf-8") == "a fixed temp name of another writer"
