#!/usr/bin/env bash
# Train the K folds of a preset into sibling folders, then ensemble them:
#
#   scripts/train_kfold.sh training_args/eva02_large_448_5fold_frozen.yaml 5 [--flag value ...]
#   LAUNCHER="accelerate launch" scripts/train_kfold.sh PRESET 5        # each fold on every GPU of the machine
#
# Fold k runs `run_classification.py PRESET [flags] --num_folds K --fold k --output_dir <output_dir>_fold{k}`,
# where <output_dir> is the preset's (or --output_dir's). The folds are stratified with the same --split_seed,
# so their validation sets partition train.csv. A fold whose folder already holds all_results.json and
# test_logits.npy is skipped (delete the folder to retrain it); an interrupted fold resumes from its last
# checkpoint. When every fold has test logits, scripts/ensemble.py writes <output_dir>_ensemble/submission.csv
# and reports the out-of-fold accuracy.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PRESET K [--flag value ...]" >&2
  exit 2
fi
preset=$1 folds=$2
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
launcher=${LAUNCHER:-$python}

# The run's own parser reads the preset and flags, so the folder names match what the runs will use.
output_dir=$(PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" - "$preset" "$@" <<'PY'
import sys
from run_classification import parse
try:
    print(parse(sys.argv[1:])[2].output_dir)
except (ValueError, FileNotFoundError) as error:
    sys.exit(f"error: {error}")
PY
)

runs=()
for ((fold = 0; fold < folds; fold++)); do
  out="${output_dir}_fold${fold}"
  runs+=("$out")
  if [ -f "$out/all_results.json" ] && [ -f "$out/test_logits.npy" ]; then
    echo "Fold $fold: $out is complete, skipping it."
    continue
  fi
  echo "Fold $fold of $folds -> $out"
  $launcher "$repo/run_classification.py" "$preset" "$@" --num_folds "$folds" --fold "$fold" --output_dir "$out"
done

for run in "${runs[@]}"; do
  [ -f "$run/test_logits.npy" ] || { echo "No test_logits.npy in $run (no --do_predict?): not ensembling."; exit 0; }
done
"$python" "$repo/scripts/ensemble.py" --runs "${runs[@]}" --output_dir "${output_dir}_ensemble"
