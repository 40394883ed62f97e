#!/usr/bin/env bash
# Held-out check of the fast torch prediction settings on one fold of a reproduction: the fold's model predicts the
# fold's scored test sentences (fold.json's gold_ids) in fp32, bf16 and bf16 + torch.compile, and each is scored
# against gold beside the fold's committed predictions (paired bootstrap deltas included):
#   bash scripts/check_fast_settings.sh REPORT_NAME FOLD SYSTEM MODEL_DIR OUT_DIR
#   bash scripts/check_fast_settings.sh ade_mpnet_compressed 1 compressed runs/models/<key> reports/compression/bench/fast_settings_fold1
# REPORT_NAME: the folder under reports/ holding folds/foldK/result; SYSTEM: the system whose predictions MODEL_DIR
# made there (the "fp32" row must equal them). Writes OUT_DIR/scores.md and OUT_DIR/scores/; the gold records and
# predictions go to a temporary folder that is removed (the gold texts are the corpus's, not to be copied).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 5 ]]; then
  echo "usage: bash scripts/check_fast_settings.sh REPORT_NAME FOLD SYSTEM MODEL_DIR OUT_DIR" >&2
  exit 2
fi
name=$1; fold=$2; system=$3; model=$4; out=$5
result="reports/$name/folds/fold$fold/result"
[[ -f "$result/fold.json" ]] || { echo "check_fast_settings: no $result/fold.json" >&2; exit 2; }
[[ -f "$result/predictions/$system.jsonl" ]] || { echo "check_fast_settings: no $result/predictions/$system.jsonl" >&2; exit 2; }
[[ -f "$model/student.json" ]] || { echo "check_fast_settings: $model is not a student folder" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python - "$result/fold.json" "$work" <<'PY'
import json
import sys

from ade_distill.data.corpora import load_corpus
from ade_distill.records import Example, write_examples

fold_json, work = sys.argv[1], sys.argv[2]
with open(fold_json, encoding="utf-8") as f:
    fold = json.load(f)
by_id = {e.id: e for e in load_corpus(fold.get("corpus", "ade"))}
ids = fold["gold_ids"]
gold = [by_id[i] for i in ids]
write_examples(f"{work}/gold.jsonl", gold)
write_examples(f"{work}/texts.jsonl", [Example(id=e.id, text=e.text) for e in gold])
PY
for setting in "fp32:" "bf16:--precision bf16" "bf16-compiled:--precision bf16 --compile"; do
  label=${setting%%:*}; flags=${setting#*:}
  # shellcheck disable=SC2086  # flags is a word list
  ade-distill predict --model "$model" --input "$work/texts.jsonl" --out "$work/$label.jsonl" $flags
done
ade-distill score --gold "$work/gold.jsonl" --pred "reproduce ($system)=$result/predictions/$system.jsonl" \
  --pred "fp32=$work/fp32.jsonl" --pred "bf16=$work/bf16.jsonl" --pred "bf16+compile=$work/bf16-compiled.jsonl" \
  --mode strict --mode lenient --format markdown --out "$out/scores" > "$out/scores.md"
cat "$out/scores.md"
