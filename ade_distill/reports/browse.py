"""The error browser: one self-contained HTML page showing, sentence by sentence, gold and every system's spans
and relations, each item judged under one matching mode.

The judging is :func:`ade_distill.evaluation.errors_analysis.classify_example` — the rules the scorer's error
analysis counts with — run here in Python; the page's JavaScript only renders, filters and sorts. So the counts
at the top of the page are, by construction, ``analyze_errors(..., mode=mode).counts`` of each system: in
``strict`` mode the ``errors.json`` / ``errors.md`` of ``ade-distill score``; in ``boundaries`` or ``lenient`` mode
the error analysis under that same mode (``score`` writes the strict one only).

:func:`build_browse_data` returns a JSON-able dict (compact, index-coded; layout in its docstring);
:func:`render_browse_html` puts it, escaped, into the page template (``templates/browse.html``: inline CSS and
JS, no network); :func:`write_browse` does both and writes the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ade_distill.errors import ConfigError
from ade_distill.evaluation.errors_analysis import (
    CORRECT,
    COVERED,
    ENTITY_CATEGORIES,
    ERROR_MODES,
    RELATION_CATEGORIES,
    Judgement,
    classify_example,
)
from ade_distill.evaluation.matching import RelItem
from ade_distill.records import Example, Span, atomic_write_text

__all__ = ["CATEGORY_ORDER", "build_browse_data", "render_browse_html", "write_browse"]

log = logging.getLogger(__name__)

# Every category the page knows, in the order its menus list them; the data refers to them by index.
CATEGORY_ORDER: tuple[str, ...] = (CORRECT, "miss", "spurious", "boundary", "wrong_pairing", "label",
                                   "boundary_label", "ungrounded", COVERED)
_CAT_INDEX = {c: i for i, c in enumerate(CATEGORY_ORDER)}
_DATA_MARKER = "/*__BROWSE_DATA__*/"
FORMAT_VERSION = 1


class _Labels:
    """Label strings → small integers (one table for entity and relation labels)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, label: str) -> int:
        if label not in self._index:
            self._index[label] = len(self.names)
            self.names.append(label)
        return self._index[label]


def _span_row(s: Span, labels: _Labels) -> list[Any]:
    """``[start, end, label]``; an unaligned span is ``[-1, -1, label, text]``."""
    if not s.grounded:
        return [-1, -1, labels(s.label), s.text]
    return [s.start, s.end, labels(s.label)]


def _entity_row(j: Judgement, pidx: Mapping[str, int], gidx: Mapping[str, int]) -> list[int]:
    p, g = j.pred, j.gold
    return [_CAT_INDEX[j.category], pidx[p.id] if isinstance(p, Span) else -1,
            gidx[g.id] if isinstance(g, Span) else -1]


def _rel_part(item: RelItem | None, idx: Mapping[str, int], labels: _Labels) -> list[int]:
    if item is None:
        return [-1, -1, -1]
    r, h, t = item
    return [idx[h.id], idx[t.id], labels(r.label)]


def _relation_row(j: Judgement, pidx: Mapping[str, int], gidx: Mapping[str, int], labels: _Labels) -> list[int]:
    pred = _rel_part(j.pred, pidx, labels)  # type: ignore[arg-type]
    return [_CAT_INDEX[j.category], *pred, *_rel_part(j.gold, gidx, labels)]  # type: ignore[arg-type]


def _signature(ex: Example) -> frozenset[tuple]:
    """What an example asserts at relation level (offsets, or text when unaligned): equal sets agree."""
    spans = ex.span_by_id()

    def arg(s: Span) -> tuple:
        return (s.label, s.start, s.end) if s.grounded else (s.label, s.text)

    return frozenset((r.label, arg(spans[r.head]), arg(spans[r.tail])) for r in ex.relations)


def _system_entry(g: Example, p: Example, mode: str, gidx: Mapping[str, int], labels: _Labels,
                  counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One system's spans and judged rows for one sentence; adds its counted errors to ``counts``."""
    pidx = {s.id: i for i, s in enumerate(p.spans)}
    ent: list[list[int]] = []
    rel: list[list[int]] = []
    for j in classify_example(g, p, mode):
        if j.category != COVERED:
            counts[j.level][j.category] += 1
        if j.level == "entity":
            ent.append(_entity_row(j, pidx, gidx))
        else:
            rel.append(_relation_row(j, pidx, gidx, labels))
    return {"sp": [_span_row(s, labels) for s in p.spans], "e": ent, "r": rel}


def _sentence(g: Example, preds: Sequence[Example], mode: str, labels: _Labels,
              counts: Sequence[dict[str, dict[str, int]]]) -> dict[str, Any]:
    gidx = {s.id: i for i, s in enumerate(g.spans)}
    systems = [_system_entry(g, p, mode, gidx, labels, c) for p, c in zip(preds, counts, strict=True)]
    sigs: dict[frozenset, int] = {_signature(g): 0}
    k = [sigs.setdefault(_signature(p), len(sigs)) for p in preds]
    return {
        "id": g.id,
        "t": g.text,
        "g": [_span_row(s, labels) for s in g.spans],
        "gr": [[gidx[r.head], gidx[r.tail], labels(r.label)] for r in g.relations],
        "s": systems,
        "k": k,  # relation-set signature per system; 0 = the gold's set
    }


def _empty_counts() -> dict[str, dict[str, int]]:
    return {"entity": {c: 0 for c in (CORRECT, *ENTITY_CATEGORIES)},
            "relation": {c: 0 for c in (CORRECT, *RELATION_CATEGORIES)}}


def _aligned(gold: Sequence[Example], systems: Mapping[str, Sequence[Example]],
             missing_as_empty: bool) -> dict[str, list[Example]]:
    from ade_distill.evaluation.metrics import pair_by_id

    return {name: pair_by_id(gold, preds, missing_as_empty=missing_as_empty, name=name)
            for name, preds in systems.items()}


def build_browse_data(
    gold: Sequence[Example],
    systems: Mapping[str, Sequence[Example]],
    mode: str = "strict",
    *,
    title: str = "",
    missing_as_empty: bool = False,
) -> dict[str, Any]:
    """Judge every item of every system on every gold sentence; return the page's data (JSON-able).

    Layout: ``systems`` (names), ``labels`` (label strings; rows refer to them by index), ``categories``
    (:data:`CATEGORY_ORDER`; rows refer by index), ``error_categories`` (per level, as the scorer counts them),
    ``counts[system][level][category]`` (``correct`` plus the counted errors — equal to
    ``analyze_errors(gold, aligned, mode=mode).counts``), and ``sentences``: ``id``, text ``t``, gold spans ``g``
    (``[start, end, label]``, or ``[-1, -1, label, text]`` when unaligned), gold relations ``gr`` (``[head, tail,
    label]`` as indices into ``g``), ``k`` (a relation-set signature per system, 0 = same as gold) and ``s``, per
    system: spans ``sp``, entity rows ``e`` (``[category, pred span, gold span]``) and relation rows ``r``
    (``[category, pred head, pred tail, pred label, gold head, gold tail, gold label]``); -1 stands for none.

    Raises:
        ConfigError: no system, or a mode without error categories (``text``, ``concept``).
        DataError: predictions that do not pair with gold by id (see ``metrics.pair_by_id``).
    """
    if not systems:
        raise ConfigError("nothing to browse: give at least one system's predictions")
    if mode not in ERROR_MODES:
        raise ConfigError(f"the error browser judges offsets: --mode must be one of {list(ERROR_MODES)}, "
                          f"not {mode!r} (text and concept matching have no error categories)")
    aligned = _aligned(gold, systems, missing_as_empty)
    names = list(systems)
    labels = _Labels()
    counts = [_empty_counts() for _ in names]
    sentences = [_sentence(g, [aligned[n][i] for n in names], mode, labels, counts) for i, g in enumerate(gold)]
    return {
        "version": FORMAT_VERSION,
        "title": title or "ade-distill error browser",
        "mode": mode,
        "systems": names,
        "labels": labels.names,
        "categories": list(CATEGORY_ORDER),
        "error_categories": {"entity": list(ENTITY_CATEGORIES), "relation": list(RELATION_CATEGORIES)},
        "counts": dict(zip(names, counts, strict=True)),
        "sentences": sentences,
    }


def _script_safe_json(data: Mapping[str, Any]) -> str:
    """JSON that cannot end or open anything inside a ``<script>`` element: ``<``, ``>`` and ``&`` (and the
    JavaScript line separators) written as ``\\uXXXX`` escapes, which ``JSON.parse`` reads back unchanged."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for ch in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def _template() -> str:
    return resources.files("ade_distill.reports").joinpath("templates/browse.html").read_text(encoding="utf-8")


def render_browse_html(data: Mapping[str, Any]) -> str:
    """The page: the template with ``data`` embedded as an inline JSON script (no other substitution)."""
    page = _template()
    head, sep, tail = page.partition(_DATA_MARKER)
    if not sep:  # pragma: no cover - the shipped template has the marker
        raise RuntimeError(f"browse template lacks the data marker {_DATA_MARKER}")
    return head + _script_safe_json(data) + tail


def write_browse(
    path: str | Path,
    gold: Sequence[Example],
    systems: Mapping[str, Sequence[Example]],
    mode: str = "strict",
    *,
    title: str = "",
    missing_as_empty: bool = False,
) -> Path:
    """Build the data (:func:`build_browse_data`), render the page and write it to ``path``; return the path."""
    out = Path(path)
    html = render_browse_html(build_browse_data(gold, systems, mode, title=title,
                                                missing_as_empty=missing_as_empty))
    atomic_write_text(out, html)  # unique temp name, fsync, rename: a reader never sees half a page
    log.info("wrote %s (%d sentences, %d systems, %.1f MB)", out, len(gold), len(systems), len(html) / 1e6)
    return out
