#!/usr/bin/env bash
# BC5CDR on its official splits (issue 19): the supervised pair_classifier student, trained with the student
# options of configs/cdr_gpt4_replay.yaml (10% of its training abstracts, by PubMed ID, held out for early stopping) and
# scored in concept and text mode with gold entity mentions given at training and test time (the setting of the
# published CDR results it is compared with). Two uses, run from the repository root:
#
#   bash scripts/cdr_split.sh standard [OUT]
#       the standard split: train on the 1,000 training + development abstracts, score on the 500 test abstracts.
#       Writes OUT (default reports/cdr_gpt4_replay/standard_split); the model stays in runs/cdr_standard_split/model.
#   bash scripts/cdr_split.sh dev NAME [train options...]
#       a method choice on the development split, never on the test abstracts the reported comparisons score:
#       train on the 500 training abstracts, score on the 500 development abstracts. NAME labels the variant;
#       extra `ade-distill train` options are added to (or, given again, override) the config's, e.g.
#       `bash scripts/cdr_split.sh dev base --no-pair-structure`. Writes reports/cdr_gpt4_replay/dev_probes/NAME; the
#       model stays in runs/cdr_dev_probe/NAME/model.
#
# Each writes results.json and report.md (score --out), train_metrics.json and command.txt. A rerun with the same
# training options and data reuses the model, whatever the code (delete its folder to retrain).
# tests/test_cdr_scripts.py keeps `opts` equal to configs/cdr_gpt4_replay.yaml's student options.
set -euo pipefail
usage="usage: bash scripts/cdr_split.sh standard [OUT] | bash scripts/cdr_split.sh dev NAME [train options...]"
mode="${1:?$usage}"
shift
opts=(--encoder minilm --epochs 12 --lr 3e-5 --head-lr 1e-4 --batch-size 4 --max-length 512 --patience 3
      --precision bf16 --calibrate-thresholds --threads 2 --dev-fraction 0.1 --seed 13 --pair-structure)
case "$mode" in
  standard)
    out="${1:-reports/cdr_gpt4_replay/standard_split}"
    work=runs/cdr_standard_split
    model_dir="$work"
    label="supervised (train+dev)"
    train_corpora=(cdr-train cdr-dev)
    test_corpus=cdr-test
    command="bash scripts/cdr_split.sh standard $out"
    ;;
  dev)
    name="${1:?$usage}"
    shift
    opts+=("$@")
    out="reports/cdr_gpt4_replay/dev_probes/$name"
    work=runs/cdr_dev_probe
    model_dir="$work/$name"
    label="$name"
    train_corpora=(cdr-train)
    test_corpus=cdr-dev
    command="bash scripts/cdr_split.sh dev $name${*:+ $*}"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
mkdir -p "$model_dir" "$out"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
train="$model_dir/train.jsonl"
: > "$train.tmp"
for corpus in "${train_corpora[@]}"; do
  ade-distill data export --corpus "$corpus" --out "$work/$corpus.jsonl"
  cat "$work/$corpus.jsonl" >> "$train.tmp"
done
mv "$train.tmp" "$train"
ade-distill data export --corpus "$test_corpus" --out "$work/$test_corpus.jsonl"
want="$(echo "${opts[*]}" | cat - "$train" | sha256sum | cut -c1-16)"
model="$model_dir/model"
if [ ! -f "$model/student.json" ] || [ "$(cat "$model_dir/model.key" 2>/dev/null)" != "$want" ]; then
  ade-distill train --task cdr --architecture pair_classifier --train "$train" --out "$model" "${opts[@]}"
  echo "$want" > "$model_dir/model.key"
fi
ade-distill predict --model "$model" --input "$work/$test_corpus.jsonl" --out "$model_dir/pred.jsonl"
ade-distill score --gold "$work/$test_corpus.jsonl" --pred "$label=$model_dir/pred.jsonl" --mode concept,text \
  --n-boot 1000 --seed 0 --out "$out"
cp "$model/metrics.json" "$out/train_metrics.json"
echo "$command  # training options: ${opts[*]}" > "$out/command.txt"
