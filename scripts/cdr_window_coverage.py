"""How many BC5CDR CID relations have a mention pair inside one sentence window of the student (the number quoted
in configs/cdr_tagger.yaml).

    python scripts/cdr_window_coverage.py [--max-length 256] [--split test]
"""

from __future__ import annotations

import argparse

from ade_distill.data.corpora import load_corpus
from ade_distill.student.encoders import resolve_encoder
from ade_distill.student.windows import text_windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--split", default="test", choices=["train", "dev", "test"])
    ap.add_argument("--encoder", default="minilm")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_encoder(args.encoder))
    docs = load_corpus(f"cdr-{args.split}")
    total = covered = 0
    for doc, wins in zip(docs, text_windows(tok, [d.text for d in docs], args.max_length), strict=True):
        for r in doc.relations:
            hc, tc = r.meta.get("head_concept"), r.meta.get("tail_concept")
            heads = [s for s in doc.spans if hc in (s.meta.get("concepts") or [])]
            tails = [s for s in doc.spans if tc in (s.meta.get("concepts") or [])]
            total += 1
            covered += any(ws <= min(h.start, t.start) and max(h.end, t.end) <= we
                           for h in heads for t in tails for ws, we in wins)
    print(f"cdr-{args.split}, windows of <= {args.max_length} tokens ({args.encoder}): {covered:,} of {total:,} CID "
          f"relations ({covered / total:.1%}) have a mention pair inside one window")


if __name__ == "__main__":
    main()
