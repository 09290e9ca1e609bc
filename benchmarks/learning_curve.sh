#!/usr/bin/env bash
# The GSM8K run of CHANGELOG.md ("GSM8K with the tutorial's five rewards"), end to end, offline on a CPU (about an hour):
#   bash benchmarks/learning_curve.sh [OUT_DIR]
# 1. the offline model's baseline on the first 200 GSM8K test questions;
# 2. a 40-step LoRA SFT cold start on GSM8K train solutions in the <reasoning>/<answer> format (~9 min);
# 3. GRPO from the cold start on GSM8K train, evaluated before and after on the same 200 questions, with the report.
# A benchmark, not a test: it takes over an hour. Numbers it printed for an earlier version are in CHANGELOG.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/learning-curve}
GSM8K=${TINYR1_GSM8K_DIR:-../shared/data/gsm8k}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
make install
TINYR1=.venv/bin/tinyr1
mkdir -p "$OUT"
$TINYR1 eval --model_name_or_path smollm2-135m-instruct --dataset_name "$GSM8K" --split test --limit 200 \
  --max_new_tokens 200 --output_dir "$OUT/eval-base"
$TINYR1 sft --config recipes/smollm2-135m-instruct/sft-coldstart-cpu.yaml --dataset_name "$GSM8K" \
  --output_dir "$OUT/coldstart"
$TINYR1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --model_name_or_path "$OUT/coldstart" \
  --dataset_name "$GSM8K" --output_dir "$OUT/grpo-coldstart" --overwrite_output_dir true
echo "report: $OUT/grpo-coldstart/report.md"
