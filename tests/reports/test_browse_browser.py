"""The error browser in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright opens the
page of a committed report — the 4,272-sentence ADE corpus and its seven systems — and checks that the counts
shown are the scorer's, that filters, the text search and the comparison show exactly the sentences they should,
that markup in the text is shown and never run; it saves a screenshot. ``scripts/setup.sh --dev`` installs
Playwright and, where it can, Chromium; without either the tests are skipped, saying which is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ade_distill.evaluation.errors_analysis import analyze_errors
from ade_distill.evaluation.scoring import score_systems
from ade_distill.records import Example, Relation, Span, read_examples
from ade_distill.reports.browse import write_browse

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright, "
                               "or bash scripts/setup.sh --dev)")


def _chromium() -> str | None:
    """The Chromium binary: $ADE_DISTILL_CHROMIUM, else chromium / chromium-browser on PATH (Playwright's own
    browser download is not used: it needs the network)."""
    env = os.environ.get("ADE_DISTILL_CHROMIUM")
    if env:
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip("no chromium binary on PATH (apt-get install -y chromium, or set ADE_DISTILL_CHROMIUM)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "ade_best"


@pytest.fixture(scope="module")
def report(ade_positive: list[Example]) -> dict:
    """Gold, the report's systems (named as in its results.json) and the scorer's error analysis of them."""
    res = json.loads((REPORT / "results.json").read_text(encoding="utf-8"))
    systems = {s: list(read_examples(REPORT / "predictions" / (s.replace(":", "_") + ".jsonl")))
               for s in res["systems"]}
    scored = score_systems(ade_positive, systems, modes=("strict",), n_boot=0)
    return {"gold": ade_positive, "systems": systems, "errors": scored.errors, "committed": res["errors_strict"]}


@pytest.fixture(scope="module")
def page_file(report: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browse") / "browse.html"
    return write_browse(out, report["gold"], report["systems"], "strict", title="ade_best (test)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, page_file: Path) -> Iterator[object]:
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(page_file.as_uri())
    pg.wait_for_selector("body[data-ready='1']")
    yield pg
    pg.close()
    assert not errors, errors


def _matches(pg) -> int:
    return int(pg.get_attribute("#n-match", "data-count"))


def _wait_matches(pg, n: int) -> None:
    # polled by Playwright, not by a script in the page: the page's Content-Security-Policy forbids eval
    sync_api.expect(pg.locator("#n-match")).to_have_attribute("data-count", str(n), timeout=10_000)


def _card_ids(pg) -> list[str]:
    return pg.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")


def _sentences_with(report: dict, system: str, level: str, cat: str) -> list[str]:
    """Ids of the sentences where the scorer's error analysis finds ``cat`` for ``system``."""
    preds = {p.id: p for p in report["systems"][system]}
    return [g.id for g in report["gold"] if analyze_errors([g], [preds[g.id]]).counts[level][cat] > 0]


def test_page_loads_and_shows_the_scorers_counts(browser, page_file: Path, report: dict, tmp_path: Path,
                                                 record_property) -> None:
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    pg.goto(page_file.as_uri())
    pg.wait_for_selector("body[data-ready='1']")
    load_s = time.perf_counter() - start
    timing = pg.evaluate("window.browseTiming")
    size_mb = page_file.stat().st_size / 1e6
    record_property("browse_load", {"seconds": round(load_s, 3), "size_mb": round(size_mb, 2), **timing})
    print(f"\nerror browser: {size_mb:.1f} MB, 4,272 sentences x {len(report['systems'])} systems, "
          f"loaded in {load_s:.2f} s (JSON parse {timing['parse_ms']:.0f} ms, first cards "
          f"{timing['first_render_ms']:.0f} ms)")
    assert _matches(pg) == len(report["gold"]) == 4272
    assert pg.locator(".card").count() == 40  # rendered lazily, a page at a time
    shown = pg.eval_on_selector_all(
        "button.count", "bs => bs.map(b => [b.dataset.system, b.dataset.level, b.dataset.cat, +b.dataset.count])")
    assert len(shown) == len(report["systems"]) * (7 + 7)  # correct + six categories, two levels
    for system, level, cat, n in shown:
        if cat == "correct":
            continue
        assert n == report["errors"][system].counts[level][cat], (system, level, cat)
        assert n == report["committed"][system][level][cat], (system, level, cat)
    shot = tmp_path / "browse.png"
    pg.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    pg.close()


def test_a_filter_shows_exactly_the_sentences_with_that_error(page, report: dict) -> None:
    expected = _sentences_with(report, "teacher:o1-json", "relation", "wrong_pairing")
    assert 0 < len(expected) < 40
    page.click("button.count[data-system='teacher:o1-json'][data-level='relation'][data-cat='wrong_pairing']")
    _wait_matches(page, len(expected))
    assert sorted(_card_ids(page)) == sorted(expected)
    hits = page.locator(".layer[data-system='teacher:o1-json'] li.hit[data-cat='wrong_pairing']")
    assert hits.count() >= len(expected)
    # the menus: misses of the student, many sentences, rendered 40 at a time and more on scrolling
    expected = _sentences_with(report, "student", "relation", "miss")
    page.select_option("#f-sys", label="student")
    page.select_option("#f-cat", "miss")
    _wait_matches(page, len(expected))
    assert page.locator(".card").count() == 40
    assert set(_card_ids(page)) <= set(expected)
    page.click("#more")
    shown = page.locator(".card").count()  # the click adds a page; the end of the list then in view may add more
    assert shown >= 80 and (shown % 40 == 0 or shown == len(expected)), shown
    assert set(_card_ids(page)) <= set(expected)
    # an entity-level category through the level menu
    expected = _sentences_with(report, "supervised", "entity", "label")
    page.select_option("#f-level", "entity")
    page.select_option("#f-sys", label="supervised")
    page.select_option("#f-cat", "label")
    _wait_matches(page, len(expected))
    assert sorted(_card_ids(page)) == sorted(expected)


def test_text_search(page, report: dict) -> None:
    expected = [g.id for g in report["gold"] if "<" in g.text]
    page.fill("#f-q", "<")
    _wait_matches(page, len(expected))
    assert sorted(_card_ids(page)) == sorted(expected)
    text = page.inner_text("#list")
    assert "(normal < 230)" in text  # markup characters shown as text
    page.fill("#f-q", "methotrexate")
    n = sum("methotrexate" in g.text.lower() for g in report["gold"])
    _wait_matches(page, n)
    page.fill("#f-q", "")
    _wait_matches(page, len(report["gold"]))


def test_side_by_side_of_teacher_and_student(page, report: dict) -> None:
    teacher, student = "teacher:o1-json", "student"
    a = {p.id: p for p in report["systems"][teacher]}
    b = {p.id: p for p in report["systems"][student]}

    def errs(p: Example, g: Example) -> int:
        return sum(analyze_errors([g], [p]).counts["relation"].values())

    a_only = [g.id for g in report["gold"] if errs(a[g.id], g) == 0 and errs(b[g.id], g) > 0]
    page.select_option("#f-a", label=teacher)
    page.select_option("#f-b", label=student)
    page.select_option("#f-cmpmode", "a_only")
    _wait_matches(page, len(a_only))
    first = page.locator(".card").first
    assert first.locator(".layer.sys").count() == 2
    assert first.locator(".layers.cmp").count() == 1
    assert set(_card_ids(page)) <= set(a_only)
    assert f"right, {student} wrong: {len(a_only)}" in page.inner_text("#cmp-counts")


def test_markup_in_the_data_is_shown_not_run(browser, tmp_path: Path) -> None:
    text = 'Dose <img src=x onerror="window.__xss=1"> & </script><script>window.__xss=2</script> caused rash.'
    start = text.index("rash")
    gold = [Example(id="x<1>", text=text, spans=(
        Span(id="T1", label="DRUG", start=0, end=4, text="Dose"),
        Span(id="T2", label="ADE", start=start, end=start + 4, text="rash")),
        relations=(Relation(head="T1", tail="T2", label="ADE"),))]
    page_file = write_browse(tmp_path / "x.html", gold, {'<b onmouseover="window.__xss=3">sys</b>': gold})
    pg = browser.new_page()
    pg.goto(page_file.as_uri())
    pg.wait_for_selector("body[data-ready='1']")
    assert pg.evaluate("window.__xss") is None
    assert text in pg.inner_text(".card .layer.gold")
    assert pg.locator(".card img").count() == 0 and pg.locator(".card b").count() == 0
    assert '<b onmouseover="window.__xss=3">sys</b>' in pg.inner_text("#counts")
    pg.close()


def test_a_boundary_error_is_marked_in_the_highlighted_text(browser, tmp_path: Path) -> None:
    """A prediction with an error also appears in the ``covered`` row of the gold span it overlaps (after its own
    row); the highlight keeps its error: the mark is ``err`` and its tooltip names the category."""
    text = "Aspirin caused severe rash and nausea."

    def sp(sid: str, sub: str, label: str) -> Span:
        start = text.index(sub)
        return Span(id=sid, label=label, start=start, end=start + len(sub), text=sub)

    gold = Example(id="h", text=text, spans=(sp("G1", "Aspirin", "DRUG"), sp("G2", "severe rash", "ADE"),
                                             sp("G3", "nausea", "ADE")),
                   relations=(Relation(head="G1", tail="G2", label="ADE"), Relation(head="G1", tail="G3", label="ADE")))
    pred = Example(id="h", text=text, spans=(sp("P1", "Aspirin", "DRUG"), sp("P2", "rash", "ADE"),
                                             sp("P3", "nausea", "DRUG")),
                   relations=(Relation(head="P1", tail="P2", label="ADE"), Relation(head="P1", tail="P3", label="ADE")))
    page_file = write_browse(tmp_path / "h.html", [gold], {"sys": [pred]}, "strict")
    pg = browser.new_page()
    pg.goto(page_file.as_uri())
    pg.wait_for_selector("body[data-ready='1']")
    marks = pg.eval_on_selector_all(".card .layer.sys mark",
                                    "ms => ms.map(m => [m.textContent, m.classList.contains('err'), m.title])")
    by_text = {t: (err, title) for t, err, title in marks}
    assert by_text["rash"] == (True, "ADE (boundary)")
    assert by_text["nausea"] == (True, "DRUG (wrong label)")
    assert by_text["Aspirin"] == (False, "DRUG (correct)")
    assert "score's errors.md is strict" not in pg.inner_text("#subtitle")
    pg.close()
    lenient = write_browse(tmp_path / "l.html", [gold], {"sys": [pred]}, "lenient")
    pg = browser.new_page()
    pg.goto(lenient.as_uri())
    pg.wait_for_selector("body[data-ready='1']")
    assert "error analysis under the same mode (score's errors.md is strict)" in pg.inner_text("#subtitle")
    by_text = {t: err for t, err in pg.eval_on_selector_all(
        ".card .layer.sys mark", "ms => ms.map(m => [m.textContent, m.classList.contains('err')])")}
    assert by_text == {"Aspirin": False, "rash": False, "nausea": True}
    pg.close()
