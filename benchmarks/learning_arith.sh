#!/usr/bin/env bash
# The arithmetic runs of an earlier version (CHANGELOG.md, "Arithmetic: 200 held-out sums"), end to end, offline:
#   bash benchmarks/learning_arith.sh [OUT_DIR]
# 1. base:        the offline model on 200 held-out generated sums (test seed stream), greedy, 128 new tokens;
# 2. sft:         the LoRA cold start on 400 generated train sums with one-step-a-line solutions (~3.5 min);
# 3. grpo:        GRPO from the cold start (recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml), evaluated before
#                 and after on the same 200 sums, checkpoints every 25 steps;
# 4. checkpoints: each checkpoint evaluated the same way;
# 5. gsm8k:       the transfer check, GSM8K test first 200, greedy, 200 new tokens, base model and final model;
# 6. control:     the same GRPO run with the tutorial's five rewards, same schedule and checkpoints, for
#                 CONTROL_MINUTES of training (default 35, the main run's budget); its checkpoints are evaluated too.
# STAGES="base sft grpo checkpoints gsm8k control" picks stages (a stage whose output exists is skipped);
# TINYR1 is the command (default: make install, then .venv/bin/tinyr1). A benchmark, not a test: ~1.5 hours.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/learning-arith}
STAGES=${STAGES:-base sft grpo checkpoints gsm8k control}
GSM8K=${TINYR1_GSM8K_DIR:-../shared/data/gsm8k}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ -z "${TINYR1:-}" ]; then make install; TINYR1=.venv/bin/tinyr1; fi
TASK=(--dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=3 min_digits=1 max_digits=2)
HELD_OUT=("${TASK[@]}" --split test --limit 200 --max_new_tokens 128)
GRPO_RECIPE=recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml
mkdir -p "$OUT"
has() { [[ " $STAGES " == *" $1 "* ]]; }
if has base && [ ! -f "$OUT/eval-base/metrics.json" ]; then
  $TINYR1 eval --model_name_or_path smollm2-135m-instruct "${HELD_OUT[@]}" --output_dir "$OUT/eval-base"
fi
if has sft && [ ! -f "$OUT/coldstart/adapter_config.json" ]; then
  $TINYR1 sft --config recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml --output_dir "$OUT/coldstart" \
    --overwrite_output_dir true
fi
if has grpo && [ ! -f "$OUT/grpo/eval/after/metrics.json" ]; then
  $TINYR1 train --config "$GRPO_RECIPE" --model_name_or_path "$OUT/coldstart" --output_dir "$OUT/grpo" \
    --overwrite_output_dir true
fi
eval_checkpoints() {  # every checkpoint of a run, on the same 200 held-out sums
  for ckpt in "$1"/checkpoint-*; do
    [ -d "$ckpt" ] || continue
    name=$(basename "$1")-$(basename "$ckpt")
    [ -f "$OUT/eval-$name/metrics.json" ] || \
      $TINYR1 eval --model_name_or_path "$ckpt" "${HELD_OUT[@]}" --output_dir "$OUT/eval-$name"
  done
}
if has checkpoints; then eval_checkpoints "$OUT/grpo"; fi
if has gsm8k; then
  for model in smollm2-135m-instruct "$OUT/grpo"; do
    name=$([ "$model" = smollm2-135m-instruct ] && echo base || echo grpo)
    [ -f "$OUT/gsm8k-$name/metrics.json" ] || $TINYR1 eval --model_name_or_path "$model" --dataset_name "$GSM8K" \
      --split test --limit 200 --max_new_tokens 200 --output_dir "$OUT/gsm8k-$name"
  done
fi
if has control && [ ! -f "$OUT/grpo-five/run.json" ]; then
  $TINYR1 train --config "$GRPO_RECIPE" --model_name_or_path "$OUT/coldstart" --output_dir "$OUT/grpo-five" \
    --reward_funcs xmlcount soft_format strict_format int correctness --reward_weights 1 1 1 1 1 \
    --max_train_minutes "${CONTROL_MINUTES:-35}" --overwrite_output_dir true
fi
if has control; then eval_checkpoints "$OUT/grpo-five"; fi
echo "outputs: $OUT (reports: $OUT/grpo/report.md, $OUT/grpo-five/report.md)"
