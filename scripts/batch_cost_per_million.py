"""Teacher cost per million PubMed abstracts at Batch API prices, from recorded token usage.

    python scripts/batch_cost_per_million.py [--data DIR] [--models gpt-4o-mini,gpt-4o,gpt-4-1106-preview]

Two ways of labelling an abstract, each priced from real recorded responses (../shared/data/teacher_outputs):

* sentence by sentence (the ADE task's unit): the mean prompt and completion tokens of the 4,271 recorded
  ADE-sentence calls (GPT-4, JSON mode) times the mean number of sentences per abstract, measured by the
  project's own splitter (``to_sentences``) on the shared MEDLINE baseline file;
* one call per abstract (title + abstract, a document-level task): the mean tokens of the 500 recorded BC5CDR
  abstract calls.

Prices are the shipped table's batch prices (``PriceTable.for_batch``: half the synchronous price). The
recorded tokens are GPT-4's (cl100k_base); other models tokenize differently (GPT-4o's o200k_base needs a few per
cent fewer tokens for English), and the project's own prompt differs from the recorded one — ``label --dry-run``
counts it exactly for any input.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ade_distill.data.unlabeled import iter_medline_xml, to_sentences
from ade_distill.paths import data_dir
from ade_distill.teacher.cost import PriceTable


def mean_usage(path: Path) -> tuple[float, float, int]:
    """Mean prompt and completion tokens of a recorded-responses file, and its number of responses."""
    prompt, completion = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            u = json.loads(line)["usage"]
            prompt.append(u["prompt_tokens"])
            completion.append(u["completion_tokens"])
    return statistics.fmean(prompt), statistics.fmean(completion), len(prompt)


def sentences_per_abstract(medline: Path) -> tuple[float, int]:
    docs = list(iter_medline_xml(medline))
    n = sum(1 for _ in to_sentences(docs))
    return n / len(docs), len(docs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--models", default="gpt-4o-mini,gpt-4o,gpt-4-1106-preview")
    args = ap.parse_args()
    root = args.data or data_dir()
    out = root / "teacher_outputs"
    sp, sc, ns = mean_usage(out / "ade_gpt-4-1106-preview_json.jsonl")
    dp, dc, nd = mean_usage(out / "cdr_gpt-4-1106-preview_json.jsonl")
    spa, ndocs = sentences_per_abstract(root / "pubmed_unlabeled" / "medline16n0902.xml.gz")
    print(f"recorded ADE sentence calls: {ns:,}; mean {sp:.1f} prompt + {sc:.1f} completion tokens")
    print(f"recorded BC5CDR abstract calls: {nd:,}; mean {dp:.1f} prompt + {dc:.1f} completion tokens")
    print(f"sentences per abstract (medline16n0902, {ndocs:,} abstracts): {spa:.2f}")
    sync, batch = PriceTable.load(), PriceTable.load().for_batch()
    per_m = 1_000_000
    print("\nUSD per 1M abstracts    sentence-level (ADE)    abstract-level (one call)    [synchronous]")
    for model in args.models.split(","):
        b, s = batch.lookup(model), sync.lookup(model)
        if b is None or s is None:
            print(f"{model}: not in the price table")
            continue
        sent = per_m * spa * b.cost(sp, sc)
        doc = per_m * b.cost(dp, dc)
        sent_sync = per_m * spa * s.cost(sp, sc)
        doc_sync = per_m * s.cost(dp, dc)
        print(f"{model:<22} ${sent:>12,.0f}            ${doc:>12,.0f}             "
              f"[${sent_sync:,.0f} / ${doc_sync:,.0f}]")
    tok_sent = per_m * spa * (sp + sc)
    tok_doc = per_m * (dp + dc)
    print(f"\ntokens per 1M abstracts: sentence-level {tok_sent / 1e9:.2f} B, abstract-level {tok_doc / 1e9:.2f} B")


if __name__ == "__main__":
    main()
