#!/usr/bin/env bash
# Run a long reproduction a fold at a time, so each finished fold can be committed before a session ends:
#   bash scripts/run_folds.sh CONFIG K [K ...]
# For each K it runs `ade-distill reproduce CONFIG --only-fold K` (stage cache under runs/, resumable per epoch on
# the same machine), then copies the fold's self-contained result into reports/<name>/folds/foldK/result, where
# `git add -f` picks it up and `ade-distill reproduce CONFIG --reuse-reported-folds` (on any machine) reuses it.
# A fold already under reports/<name>/folds is skipped. A failing fold is reported and the next one starts.
# Environment: PYTHON (default python); OMP_WAIT_POLICY=PASSIVE is set so parallel jobs share the cores politely.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ $# -lt 2 ]]; then
  echo "usage: bash scripts/run_folds.sh CONFIG K [K ...]" >&2
  exit 2
fi
config=$1
shift
[[ -f "$config" ]] || { echo "run_folds: no config file $config" >&2; exit 2; }
name=$("$PY" -c "import sys; from ade_distill.experiments.config import load_config; print(load_config(sys.argv[1]).name)" "$config") || exit 2
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
status=0
for k in "$@"; do
  dest="reports/$name/folds/fold$k/result"
  if [[ -f "$dest/stage.json" ]]; then
    echo "fold $k: already in $dest, skipped"
    continue
  fi
  partial="runs/$name/report-partial-$k"
  echo "fold $k: started $(date -u +%H:%M:%S)"
  if "$PY" -m ade_distill reproduce "$config" --only-fold "$k" --report-dir "$partial" --quiet; then
    rm -rf "$dest"  # a half-copied folder from an interrupted copy would nest the new one inside it
    mkdir -p "$(dirname "$dest")"
    cp -r "$partial/folds/fold$k/result" "$dest"
    echo "fold $k: done $(date -u +%H:%M:%S) -> $dest (commit it: git add -f $dest)"
  else
    echo "fold $k: failed (rerun the same command to resume)" >&2
    status=1
  fi
done
exit $status
