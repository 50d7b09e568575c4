#!/usr/bin/env bash
# Ablation on real sketches: the baseline and each competition technique alone, a few seeds each, scored on
# quickdraw100's solution.csv, then tabulated by scripts/ablation_table.py (markdown in $OUT/ablation.md).
#
#   scripts/ablation.sh                                    # every row, seeds 0 and 1, into runs/ablation
#   SEEDS="0 1 2" EPOCHS=20 OUT=runs/ablation20 scripts/ablation.sh
#   ROWS="baseline tta_hflip" scripts/ablation.sh --num_train_epochs 1   # some rows; extra flags go to every run
#   DRY_RUN=1 scripts/ablation.sh                          # print the commands instead of running them
#
# Every run uses training_args/ablation_quickdraw100.yaml: convnext_atto from scratch at 64 px in fp32 (bf16 is
# slower for a model this small on a CPU), the quickdraw100 recipe without label smoothing, and --seed k.
# Rows (folder $OUT/<row>_seed<k>):
#   baseline             the preset as it is
#   label_smoothing      --label_smoothing_factor 0.1
#   mixup_cutmix         timm Mixup: half the batches mixed, mixup (alpha 0.2) or CutMix (alpha 1.0)
#   ema                  EMA of the weights; in a run this short timm's warmup, 1 - (1 + step)^(-2/3), sets the
#                        decay (~0.99 at the end), not the 0.999 cap
#   sketch_autoaugment   the seed team's sketch auto-augment policy on top of the baseline's augmentation
#   vflip                vertical flips with p 0.5
#   light_geometry       milder random affine: rotate 10 degrees, translate 0.1, scale 0.1 (baseline: 15, 0.15, 0.2)
#   tta_hflip            no training: baseline_seed<k>'s model predicts with --tta hflip
#   tta_hflip_vflip      the same with --tta hflip vflip
#   kfold5               scripts/train_kfold.py, 5 folds soft-voted ($OUT/kfold5_seed<k>/run_fold{0..4},
#                        run_ensemble)
# A row whose submission.csv exists is skipped, so rerunning the same command continues an interrupted
# ablation (an interrupted run resumes from its last checkpoint). OUT and DATA (the data set, default
# ../shared/data/quickdraw100 beside the repository) are relative to the folder the script is started from.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${OUT:-runs/ablation}")  # before the cd below, so that relative paths mean the caller's folder
data=$(realpath -m "${DATA:-$repo/../shared/data/quickdraw100}")
cd "$repo"

python=${PYTHON:-python}
seeds=${SEEDS:-0 1}
preset=training_args/ablation_quickdraw100.yaml
all_rows="baseline label_smoothing mixup_cutmix ema sketch_autoaugment vflip light_geometry tta_hflip tta_hflip_vflip kfold5"
rows=${ROWS:-$all_rows}

common=(--data_dir "$data" --preresize_cache "$out/preresize_cache")  # the 64 px images, decoded once for all runs
if [ -n "${EPOCHS:-}" ]; then common+=(--num_train_epochs "$EPOCHS"); fi
common+=("$@")

row_flags() {
  case $1 in
    baseline) ;;
    label_smoothing) echo --label_smoothing_factor 0.1 ;;
    mixup_cutmix) echo --mixup_alpha 0.2 --cutmix_alpha 1.0 --mixup_prob 0.5 --mixup_switch_prob 0.5 ;;
    ema) echo --ema_decay 0.999 ;;
    sketch_autoaugment) echo --augment sketch_autoaugment ;;
    vflip) echo --vflip 0.5 ;;
    light_geometry) echo --rotate_degrees 10 --translate 0.1 --scale 0.1 ;;
    tta_hflip) echo --tta hflip ;;
    tta_hflip_vflip) echo --tta hflip vflip ;;
    kfold5) ;;
    *) echo "error: unknown row '$1' in ROWS; use some of: $all_rows" >&2; return 2 ;;
  esac
}

# Print the command (shell-quoted, one line) under DRY_RUN=1, else run it.
run() {
  if [ -n "${DRY_RUN:-}" ]; then
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }"
  else
    "$@"
  fi
}

for row in $rows; do row_flags "$row" >/dev/null; done  # a typo in ROWS stops before any training

for seed in $seeds; do
  for row in $rows; do
    dir=$out/${row}_seed$seed
    read -r -a flags <<<"$(row_flags "$row")"
    seeded=("${common[@]}" "${flags[@]}" --seed "$seed")
    case $row in
      kfold5) done_file=$dir/run_ensemble/submission.csv ;;
      *) done_file=$dir/submission.csv ;;
    esac
    if [ -f "$done_file" ]; then
      echo "# $row seed $seed: $done_file exists, skipping."
      continue
    fi
    echo "# $row seed $seed -> $dir"
    case $row in
      tta_*)  # (it also evaluates the baseline's model again, without TTA: the preset's eval_strategy sets do_eval)
        run "$python" run_classification.py "$preset" "${seeded[@]}" --model_name_or_path "$out/baseline_seed$seed" \
          --do_train false --do_predict true --output_dir "$dir" ;;
      kfold5)
        run "$python" scripts/train_kfold.py "$preset" 5 "${seeded[@]}" --output_dir "$dir/run" ;;
      *)
        run "$python" run_classification.py "$preset" "${seeded[@]}" --output_dir "$dir" ;;
    esac
  done
done

run "$python" scripts/ablation_table.py --dir "$out" --solution "$data/solution.csv"
