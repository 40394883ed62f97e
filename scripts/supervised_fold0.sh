#!/bin/bash
# Supervised student on gold ADE folds 1-9 (fold index 0 held out), scored on fold 0.
set -euo pipefail
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$(dirname "$0")/.."
R=runs/supervised_fold0
ade-distill data folds --corpus ade -k 10 --seed 13 --out runs/folds_ade_k10_s13.json
ade-distill data export --corpus ade --out runs/ade_all.jsonl
python -c "
from ade_distill.data.folds import Folds
from ade_distill.records import read_examples, write_examples
f = Folds.load('runs/folds_ade_k10_s13.json'); test = f.test_ids(0)
exs = [e for e in read_examples('runs/ade_all.jsonl') if e.id in test]
print(write_examples('$R/test_fold0_all.jsonl', exs), write_examples('$R/test_fold0_positive.jsonl', [e for e in exs if e.relations]))
"
ade-distill -v train --task ade --train runs/ade_all.jsonl --folds runs/folds_ade_k10_s13.json --fold 0 \
  --dev-fraction 0.1 --epochs 2 --lr 1e-4 --head-lr 1e-3 --batch-size 16 --max-length 128 --negative-fraction 0.2 \
  --patience 1 --seed 13 --threads 2 --out $R/model
ade-distill predict --model $R/model --input $R/test_fold0_all.jsonl --out $R/pred_fold0_all.jsonl --threads 2
python -c "
from ade_distill.records import read_examples, write_examples
ids = {e.id for e in read_examples('$R/test_fold0_positive.jsonl')}
write_examples('$R/pred_fold0_positive.jsonl', [e for e in read_examples('$R/pred_fold0_all.jsonl') if e.id in ids])
"
ade-distill score --gold $R/test_fold0_positive.jsonl --pred student=$R/pred_fold0_positive.jsonl --n-boot 200 --out $R/score_positive
ade-distill score --gold $R/test_fold0_all.jsonl --pred student=$R/pred_fold0_all.jsonl --n-boot 200 --out $R/score_all
echo DONE
