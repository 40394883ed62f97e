#!/usr/bin/env bash
# Held-out check of the fast torch prediction settings on one fold of a reproduction: the fold's model predicts the
# fold's scored test sentences (fold.json's gold_ids) in fp32, bf16 and bf16 + torch.compile, and each is scored
# against gold beside the fold's committed predictions (paired bootstrap deltas included):
#   bash scripts/check_fast_settings.sh REPORT_NAME FOLD SYSTEM MODEL_DIR OUT_DIR [CHECK_FOLD]
#   bash scripts/check_fast_settings.sh ade_mpnet_compressed 1 compressed runs/models/<key> reports/compression/bench/fast_settings_fold1 9
# REPORT_NAME: the folder under reports/ holding folds/foldK/result; SYSTEM: the system whose predictions MODEL_DIR
# made there (the "fp32" row must equal them). CHECK_FOLD (optional): another fold of the same report whose gold
# sentences are the int8 accuracy guard's check set (`ade-distill quantize` on a scratch copy of MODEL_DIR); when
# the guard accepts, an "int8" row (`predict --quantize`) is scored too, and the verdict goes to OUT_DIR/int8.json
# (INT8_MAX_F1_LOSS: the guard's --max-f1-loss, default 0.5; INT8_FLAGS: further options of `ade-distill quantize`,
# e.g. "--compile" for the compiled int8 kernel, named in the row).
# Writes OUT_DIR/scores.md and OUT_DIR/scores/; the gold records and predictions go to a temporary folder that is
# removed (the gold texts are the corpus's, not to be copied).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 5 && $# -ne 6 ]]; then
  echo "usage: bash scripts/check_fast_settings.sh REPORT_NAME FOLD SYSTEM MODEL_DIR OUT_DIR [CHECK_FOLD]" >&2
  exit 2
fi
name=$1; fold=$2; system=$3; model=$4; out=$5; check_fold=${6:-}
result="reports/$name/folds/fold$fold/result"
[[ -f "$result/fold.json" ]] || { echo "check_fast_settings: no $result/fold.json" >&2; exit 2; }
[[ -f "$result/predictions/$system.jsonl" ]] || { echo "check_fast_settings: no $result/predictions/$system.jsonl" >&2; exit 2; }
[[ -f "$model/student.json" ]] || { echo "check_fast_settings: $model is not a student folder" >&2; exit 2; }
check_json="reports/$name/folds/fold$check_fold/result/fold.json"
if [[ -n "$check_fold" ]]; then
  [[ "$check_fold" != "$fold" ]] || { echo "check_fast_settings: CHECK_FOLD must differ from FOLD" >&2; exit 2; }
  [[ -f "$check_json" ]] || { echo "check_fast_settings: no $check_json" >&2; exit 2; }
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python - "$result/fold.json" "$work" "${check_fold:+$check_json}" <<'PY'
import json
import sys

from ade_distill.data.corpora import load_corpus
from ade_distill.records import Example, write_examples

fold_json, work, check_json = sys.argv[1], sys.argv[2], sys.argv[3]


def gold_of(path):
    with open(path, encoding="utf-8") as f:
        fold = json.load(f)
    by_id = {e.id: e for e in load_corpus(fold.get("corpus", "ade"))}
    return [by_id[i] for i in fold["gold_ids"]]


gold = gold_of(fold_json)
write_examples(f"{work}/gold.jsonl", gold)
write_examples(f"{work}/texts.jsonl", [Example(id=e.id, text=e.text) for e in gold])
if check_json:
    write_examples(f"{work}/check.jsonl", gold_of(check_json))
PY
for setting in "fp32:" "bf16:--precision bf16" "bf16-compiled:--precision bf16 --compile"; do
  label=${setting%%:*}; flags=${setting#*:}
  # shellcheck disable=SC2086  # flags is a word list
  ade-distill predict --model "$model" --input "$work/texts.jsonl" --out "$work/$label.jsonl" $flags
done
preds=(--pred "fp32=$work/fp32.jsonl" --pred "bf16=$work/bf16.jsonl" --pred "bf16+compile=$work/bf16-compiled.jsonl")
if [[ -n "$check_fold" ]]; then
  cp -r "$model" "$work/int8-model"  # the guard records its verdict in the folder: a scratch copy
  rm -rf "$work/int8-model/onnx" "$work/int8-model"/predict-*
  rc=0
  # shellcheck disable=SC2086  # INT8_FLAGS is a word list
  ade-distill quantize --model "$work/int8-model" --check-gold "$work/check.jsonl" \
    --max-f1-loss "${INT8_MAX_F1_LOSS:-0.5}" ${INT8_FLAGS:-} || rc=$?
  if [[ $rc -eq 0 ]]; then
    ade-distill predict --model "$work/int8-model" --input "$work/texts.jsonl" --out "$work/int8.jsonl" --quantize
    preds+=(--pred "int8${INT8_FLAGS:+ ($INT8_FLAGS)}=$work/int8.jsonl")
  elif [[ $rc -eq 3 ]]; then  # measured and refused by the accuracy guard
    echo "check_fast_settings: int8 refused by its guard on fold $check_fold (no int8 row)" >&2
  else
    exit "$rc"
  fi
  cp "$work/int8-model/int8.json" "$out/int8.json"
fi
ade-distill score --gold "$work/gold.jsonl" --pred "reproduce ($system)=$result/predictions/$system.jsonl" \
  "${preds[@]}" --mode strict --mode lenient --format markdown --out "$out/scores" > "$out/scores.md"
cat "$out/scores.md"
