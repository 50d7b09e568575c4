#!/usr/bin/env bash
# Fine-tuning recipe study: the shared ImageNet-pretrained tf_efficientnet_lite0 on quickdraw100, one technique
# changed per row against training_args/quickdraw100_finetune.yaml, a few seeds each, scored on solution.csv and
# tabulated by scripts/ablation_table.py (markdown in $OUT/ablation.md; its "baseline" row is the preset itself).
#
#   scripts/finetune_study.sh                          # every row, seeds 0 and 1, into runs/finetune_study
#   EPOCHS=3 scripts/finetune_study.sh                 # a shorter per-row budget than the preset's
#   ROWS="baseline full_lr2e-3" SEEDS=0 scripts/finetune_study.sh
#   DRY_RUN=1 scripts/finetune_study.sh                # print the commands instead of running them
#
# JOBS (default 2) runs go side by side, each with OMP_NUM_THREADS=1: on 2 cores, two one-thread processes train
# more images per second in all than one two-thread process (and far more when other work shares the machine).
# Rows (folder $OUT/<row>_seed<k>):
#   baseline        the preset (the last 9 blocks and the head train)
#   full_lr1e-3 full_lr2e-3 full_lr4e-3   every layer trains, at these learning rates (the preset: 2e-3)
#   full_layer_decay  every layer, --layer_decay 0.8: each block towards the stem at 0.8x the next one's rate
#   frozen_linear   frozen backbone, linear head, 30 epochs at lr 5e-3 on the feature cache (4 augmented views)
#   unfreeze_last6  only the last 6 blocks (of 17) and the head train (the preset: 9)
#   res128 res224   input size (the preset, the baseline row: 160)
#   crop_0875       --crop_pct 0.875 (a checkpoint's usual eval crop: resize to 183 px, keep the central 160) instead
#                   of the preset's 1.0 (the whole drawing); frozen_linear_crop0875: the same for frozen_linear
#   warmup_none warmup_long  --warmup_steps 0 / 0.3 of the steps (the preset: 0.1)
#   ema             --ema_decay 0.998 (no evaluation, so the final model is the EMA)
#   mixup_cutmix    timm Mixup: half the batches mixed, mixup 0.2 or CutMix 1.0
#   tta_hflip       no training: baseline_seed<k>'s model predicts with --tta hflip
# (--head mlp is not a row: timm's EfficientNet constructor has no head_hidden_size.)
# A row whose submission.csv exists is skipped, so rerunning the same command continues an interrupted study (an
# interrupted run resumes from its last checkpoint). OUT and DATA are relative to the folder the script starts from.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${OUT:-runs/finetune_study}")
data=$(realpath -m "${DATA:-$repo/../shared/data/quickdraw100}")
cd "$repo"

python=${PYTHON:-python}
seeds=${SEEDS:-0 1}
jobs=${JOBS:-2}
preset=training_args/quickdraw100_finetune.yaml
all_rows="baseline full_lr1e-3 full_lr2e-3 full_lr4e-3 full_layer_decay frozen_linear unfreeze_last6 res128 res224 crop_0875 frozen_linear_crop0875 warmup_none warmup_long ema mixup_cutmix tta_hflip"
rows=${ROWS:-$all_rows}

common=(--data_dir "$data" --preresize_cache "$out/preresize_cache" --disable_tqdm true)
if [ -n "${EPOCHS:-}" ]; then common+=(--num_train_epochs "$EPOCHS"); fi
common+=("$@")

row_flags() {
  case $1 in
    baseline) ;;
    full_lr*) echo --freeze_backbone false --unfreeze_last_n_blocks 0 --learning_rate "${1#full_lr}" ;;
    full_layer_decay) echo --freeze_backbone false --unfreeze_last_n_blocks 0 --layer_decay 0.8 ;;
    frozen_linear) echo --freeze_backbone true --unfreeze_last_n_blocks 0 --learning_rate 5e-3 --feature_cache_views 4 --num_train_epochs 30 ;;
    frozen_linear_crop0875) echo "$(row_flags frozen_linear) --crop_pct 0.875" ;;
    crop_0875) echo --crop_pct 0.875 ;;
    unfreeze_last6) echo --unfreeze_last_n_blocks 6 ;;
    res128) echo --image_size 128 ;;
    res224) echo --image_size 224 ;;
    warmup_none) echo --warmup_steps 0 ;;
    warmup_long) echo --warmup_steps 0.3 ;;
    ema) echo --ema_decay 0.998 ;;
    mixup_cutmix) echo --mixup_alpha 0.2 --cutmix_alpha 1.0 --mixup_prob 0.5 --mixup_switch_prob 0.5 ;;
    tta_hflip) echo --tta hflip ;;
    *) echo "error: unknown row '$1' in ROWS; use some of: $all_rows" >&2; return 2 ;;
  esac
}

# Print the command (shell-quoted, one line) under DRY_RUN=1, else run it with one thread, its output in $log.
run() {
  local log=$1
  shift
  if [ -n "${DRY_RUN:-}" ]; then
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }"
  else
    OMP_NUM_THREADS=1 "$@" >"$log" 2>&1
  fi
}

for row in $rows; do row_flags "$row" >/dev/null; done  # a typo in ROWS stops before any training

mkdir -p "$out"
failed=0
# TTA rows need their baseline's model: they run after every training row.
for pass in train tta; do
  running=0
  for seed in $seeds; do
    for row in $rows; do
      case $row in tta_*) [ "$pass" = tta ] || continue ;; *) [ "$pass" = train ] || continue ;; esac
      dir=$out/${row}_seed$seed
      if [ -f "$dir/submission.csv" ]; then
        echo "# $row seed $seed: $dir/submission.csv exists, skipping."
        continue
      fi
      read -r -a flags <<<"$(row_flags "$row")"
      cmd=("$python" run_classification.py "$preset" "${common[@]}" "${flags[@]}" --seed "$seed" --output_dir "$dir")
      if [ "$pass" = tta ]; then
        cmd+=(--model_name_or_path "$out/baseline_seed$seed" --do_train false --do_predict true)
      fi
      echo "# $row seed $seed -> $dir (log: $dir.log)"
      run "$dir.log" "${cmd[@]}" &
      running=$((running + 1))
      if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
      fi
    done
  done
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
done
if [ "$failed" -ne 0 ]; then
  echo "error: some runs failed; see the *.log files in $out. Rerun the same command to retry them." >&2
  exit 1
fi

if [ -n "${DRY_RUN:-}" ]; then
  echo "$python scripts/ablation_table.py --dir $out --solution $data/solution.csv"
else
  "$python" scripts/ablation_table.py --dir "$out" --solution "$data/solution.csv"
fi
