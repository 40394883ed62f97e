"""scripts/relation_misses.py: every gold relation lands in exactly one bucket, the first that applies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Aspirin caused rash and aspirin caused severe fever."  # aspirin [0,7) rash [15,19) aspirin [24,31) fever [39,51)


def _ex(ex_id: str, spans: list[tuple[str, str, int, int]], rels: list[tuple[str, str]]) -> dict:
    return {"id": ex_id, "text": TEXT,
            "spans": [{"id": i, "label": lab, "start": s, "end": e, "text": TEXT[s:e]} for i, lab, s, e in spans],
            "relations": [{"head": h, "tail": t, "label": "ADE"} for h, t in rels]}


GOLD_SPANS = [("d1", "DRUG", 0, 7), ("a1", "ADE", 15, 19), ("d2", "DRUG", 24, 31), ("a2", "ADE", 46, 51)]


def test_buckets(tmp_path: Path) -> None:
    gold = [_ex("s1", GOLD_SPANS, [("d1", "a1"), ("d2", "a2"), ("d2", "a1")]),
            _ex("s2", GOLD_SPANS, [("d1", "a1")]),
            _ex("unscored", GOLD_SPANS, [("d1", "a1")])]
    pred = [_ex("s1", [("p1", "DRUG", 0, 7), ("p2", "ADE", 15, 19), ("p3", "DRUG", 24, 31), ("p4", "ADE", 39, 51)],
                [("p1", "p2"), ("p3", "p4")]),  # exact; boundary ('severe fever'); d2->a1: other mention
            _ex("s2", [], [])]  # no relation in the sentence
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(g) + "\n" for g in gold))
    (tmp_path / "pred.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pred))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "relation_misses.py"), str(tmp_path / "gold.jsonl"),
                          f"sys={tmp_path / 'pred.jsonl'}"], capture_output=True, text=True, check=True).stdout
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.splitlines() if line.startswith("| ")}
    assert out.startswith("4 gold relations in 2 sentences")  # the unscored id is left out
    assert rows["exact"] == rows["boundary"] == rows["other mention"] == rows["no relation in the sentence"] == "1"
    assert rows["tail found, head not linked"] == rows["other miss"] == "0"
