#!/usr/bin/env bash
# BC5CDR method choices (issue 19) on the official development split, never on the test abstracts the reported
# comparisons score: the supervised pair_classifier student trained on the 500 training abstracts (10% of them, by
# PubMed ID, held out for early stopping) and scored on the 500 development abstracts in concept mode, gold entity
# mentions given. NAME labels the variant; extra arguments are `ade-distill train` options added to (or, given
# again, overriding) the options of configs/cdr_pair.yaml. Run from the repository root:
#   bash scripts/cdr_dev_probe.sh base
#   bash scripts/cdr_dev_probe.sh structure --pair-structure
# Writes reports/cdr_pair/dev_probes/NAME/{results.json,report.md,train_metrics.json,command.txt}; the model stays
# in runs/cdr_dev_probe/NAME (a rerun with the same options and data reuses it, whatever the code: delete that
# folder to retrain). tests/test_cdr_scripts.py keeps the base options equal to configs/cdr_pair.yaml's.
set -euo pipefail
name="${1:?usage: bash scripts/cdr_dev_probe.sh NAME [train options...]}"
shift
out="reports/cdr_pair/dev_probes/$name"
work=runs/cdr_dev_probe
opts=(--encoder minilm --epochs 12 --lr 3e-5 --head-lr 1e-4 --batch-size 4 --max-length 512 --patience 3
      --precision bf16 --calibrate-thresholds --threads 2 --dev-fraction 0.1 --seed 13 "$@")
mkdir -p "$work/$name" "$out"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
[ -f "$work/train.jsonl" ] || ade-distill data export --corpus cdr-train --out "$work/train.jsonl"
[ -f "$work/dev.jsonl" ] || ade-distill data export --corpus cdr-dev --out "$work/dev.jsonl"
want="$(echo "${opts[*]}" | cat - "$work/train.jsonl" | sha256sum | cut -c1-16)"
model="$work/$name/model"
if [ ! -f "$model/student.json" ] || [ "$(cat "$work/$name/model.key" 2>/dev/null)" != "$want" ]; then
  ade-distill train --task cdr --architecture pair_classifier --train "$work/train.jsonl" --out "$model" \
    "${opts[@]}"
  echo "$want" > "$work/$name/model.key"
fi
ade-distill predict --model "$model" --input "$work/dev.jsonl" --out "$work/$name/pred.jsonl"
ade-distill score --gold "$work/dev.jsonl" --pred "$name=$work/$name/pred.jsonl" --mode concept,text \
  --n-boot 1000 --seed 0 --out "$out"
cp "$model/metrics.json" "$out/train_metrics.json"
echo "bash scripts/cdr_dev_probe.sh $name $*  # training options: ${opts[*]}" > "$out/command.txt"
