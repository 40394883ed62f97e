"""Per-fold relation F1 of a system against a teacher, from the fold results committed under a report folder
(``reports/<name>/folds/foldK/result/fold.json``) — where a fold-by-fold run stands before its pooled report.

    python scripts/fold_margins.py reports/ade_mpnet_soft [--system student] [--teacher teacher:gpt-4-json] [--dev-fold 9]

Prints a Markdown table: per fold, the system's and the teacher's strict and lenient F1 (and strict P), the
difference, and the mean difference over the folds listed other than ``--dev-fold`` (the fold methods were chosen
on; shown, not averaged). A mean of per-fold differences is not a pooled score: the pooled, bootstrapped claim is
the ablation report's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def micro(fold: dict, system: str, mode: str) -> dict:
    return fold["scores"]["results"][system][mode]["relation"]["micro"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--system", default="student")
    ap.add_argument("--teacher", default="teacher:gpt-4-json")
    ap.add_argument("--dev-fold", type=int, default=None, help="the fold methods were chosen on: not averaged")
    args = ap.parse_args()
    files = sorted(args.report.glob("folds/fold*/result/fold.json"), key=lambda p: int(p.parts[-3][4:]))
    if not files:
        raise SystemExit(f"no fold results under {args.report}/folds/")
    print(f"| fold | {args.system} strict / lenient (P) | {args.teacher} strict / lenient (P) | difference |")
    print("|---|---|---|---|")
    diffs = []
    for f in files:
        fold = json.loads(f.read_text(encoding="utf-8"))
        s = [micro(fold, args.system, m) for m in ("strict", "lenient")]
        t = [micro(fold, args.teacher, m) for m in ("strict", "lenient")]
        d = [100 * (a["f1"] - b["f1"]) for a, b in zip(s, t, strict=True)]
        dev = fold["fold"] == args.dev_fold
        if not dev:
            diffs.append(d)
        print(f"| {fold['fold']}{' (dev)' if dev else ''} | {100 * s[0]['f1']:.1f} / {100 * s[1]['f1']:.1f} ({100 * s[0]['precision']:.1f}) | "
              f"{100 * t[0]['f1']:.1f} / {100 * t[1]['f1']:.1f} ({100 * t[0]['precision']:.1f}) | "
              f"{d[0]:+.1f} / {d[1]:+.1f} |")
    n = len(diffs)
    if n:
        print(f"| mean of {n} | | | {sum(d[0] for d in diffs) / n:+.1f} / {sum(d[1] for d in diffs) / n:+.1f} |")


if __name__ == "__main__":
    main()
