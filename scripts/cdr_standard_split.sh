#!/usr/bin/env bash
# BC5CDR on its standard split (issue 19): the supervised pair_classifier student trained on the 1,000 training +
# development abstracts (10% of them, by PubMed ID, held out for early stopping) and scored on the 500 test
# abstracts in concept and text mode, with gold entity mentions given at training and test time (the setting of
# the published CDR results it is compared with), with the student options of configs/cdr_pair.yaml. Run from the
# repository root:
#   bash scripts/cdr_standard_split.sh [OUT]      # OUT: default reports/cdr_pair/standard_split
# Writes OUT/results.json, OUT/report.md (score --out), OUT/train_metrics.json and OUT/command.txt. The model stays
# in runs/cdr_standard_split/model; a rerun with the same training options and data reuses it, whatever the code
# (delete that folder to retrain). tests/test_cdr_scripts.py keeps the options equal to configs/cdr_pair.yaml's.
set -euo pipefail
out="${1:-reports/cdr_pair/standard_split}"
work=runs/cdr_standard_split
opts=(--encoder minilm --epochs 12 --lr 3e-5 --head-lr 1e-4 --batch-size 4 --max-length 512 --patience 3
      --precision bf16 --calibrate-thresholds --threads 2 --dev-fraction 0.1 --seed 13)
mkdir -p "$work" "$out"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
ade-distill data export --corpus cdr-train --out "$work/train.jsonl"
ade-distill data export --corpus cdr-dev --out "$work/dev.jsonl"
ade-distill data export --corpus cdr-test --out "$work/test.jsonl"
cat "$work/train.jsonl" "$work/dev.jsonl" > "$work/train_dev.jsonl"
want="$(echo "${opts[*]}" | cat - "$work/train_dev.jsonl" | sha256sum | cut -c1-16)"
if [ ! -f "$work/model/student.json" ] || [ "$(cat "$work/model.key" 2>/dev/null)" != "$want" ]; then
  ade-distill train --task cdr --architecture pair_classifier --train "$work/train_dev.jsonl" --out "$work/model" \
    "${opts[@]}"
  echo "$want" > "$work/model.key"
fi
ade-distill predict --model "$work/model" --input "$work/test.jsonl" --out "$work/pred.jsonl"
ade-distill score --gold "$work/test.jsonl" --pred "supervised (train+dev)=$work/pred.jsonl" --mode concept,text \
  --n-boot 1000 --seed 0 --out "$out"
cp "$work/model/metrics.json" "$out/train_metrics.json"
echo "bash scripts/cdr_standard_split.sh $out  # training options: ${opts[*]}" > "$out/command.txt"
