#!/usr/bin/env bash
# The learning tables of docs/results.md (the demo arm; the from-SFT arms), end to end, offline:
#   bash benchmarks/learning_seeds.sh [OUT_DIR]           # default outputs/seeds; two processes at a time
#   .venv/bin/python benchmarks/seeds_table.py [OUT_DIR]  # the Markdown tables
# Every model is evaluated on the same 1,000 held-out sums (chain_sum's test stream, the task's options, greedy,
# HELD_OUT_TOKENS new tokens); the held-out set is fixed, the training seed (--seed) varies. Models:
#   base              SmolLM2-135M-Instruct
#   start             the SFT recipe's 40-step LoRA cold start (sft-arith-coldstart-cpu.yaml, its own seed)
#   recipe-s<k>       start + grpo-arith-from-sft-cpu.yaml (dapo loss, dynamic sampling), STEPS GRPO steps
#   control-s<k>      start + plain GRPO: the same recipe without its two choices (dynamic sampling off, the dr_grpo
#                     loss without reward scaling of grpo-arith-cpu.yaml), STEPS steps
#   sft-s<k>          start + SFT_STEPS more SFT steps (the SFT recipe, a fresh LoRA on the merged start) on the
#                     GRPO arms' 300-sum pool, about the recipe arm's minutes: imitation for the same time
#   demo-coldstart    make demo's 12-step cold start (lr 5e-4, no warmup, the SFT recipe's seed)
#   demo-s<k>         demo-coldstart + make demo's GRPO settings for DEMO_STEPS steps (fixed, not the 2-minute budget)
# for k in SEEDS. Fixed step counts, so results do not depend on the machine's load; each stage's wall seconds go
# to OUT/wall.tsv. Stages whose output exists are skipped, so a stopped run resumes where it stopped. JOBS (default
# 2) stages run at once, each on one thread. STAGES="recipe-s1 eval-base ..." runs just those, in that order (the
# cold starts must exist). A benchmark, not a test.
# Where a number holds: PRECISION=auto (default: the machine's choice, bf16 autocast on a CPU with native bf16,
# fp32 elsewhere), bf16 or fp32 sets --bf16 for every training stage (evaluation generates in fp32 on a CPU).
# OUT/setup.tsv records the CPU, PRECISION and the commit; each stage's run.json and metrics.json its own CPU and
# precision, which seeds_table.py reads back and prints under the table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/seeds}
SEEDS=${SEEDS:-1 2 3}
STEPS=${STEPS:-40}
# 140 SFT steps: recipe-s1 trained for 22.0 minutes; the 40-step start took 9.3 s an SFT step on the same CPU.
SFT_STEPS=${SFT_STEPS:-140}
DEMO_STEPS=${DEMO_STEPS:-10}
HELD_OUT_LIMIT=${HELD_OUT_LIMIT:-1000}
HELD_OUT_TOKENS=${HELD_OUT_TOKENS:-128}
JOBS=${JOBS:-2}
PRECISION=${PRECISION:-auto}
case $PRECISION in
  auto) BF16=() ;;
  bf16) BF16=(--bf16 true) ;;
  fp32) BF16=(--bf16 false) ;;
  *) echo "PRECISION=$PRECISION: use auto, bf16 or fp32" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=1
if [ -z "${TINYR1:-}" ]; then make install; TINYR1=.venv/bin/tinyr1; fi
R=recipes/smollm2-135m-instruct
TASK=(--dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=3 min_digits=1 max_digits=2)
SFT=(--config $R/sft-arith-coldstart-cpu.yaml --save_steps 100000 "${BF16[@]}")
GRPO_OFF=(--eval_before_after false --sample_every 0 --save_steps 100000 "${BF16[@]}")
DEMO=(--config $R/grpo-arith-cpu.yaml --model_name_or_path "$OUT/demo-coldstart"
  --reward_funcs correctness --reward_weights 1 --loss_type dapo --scale_rewards group
  --dynamic_sampling true --dynamic_sampling_max_rounds 2
  --per_device_train_batch_size 16 --num_generations 4 --max_completion_length 64 --learning_rate 1e-5
  --max_steps "$DEMO_STEPS" --warmup_steps 0)
mkdir -p "$OUT"
printf 'cpu\t%s\nprecision\t%s\ncommit\t%s\nstarted\t%s\n' \
  "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || uname -m)" "$PRECISION" \
  "$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(date -u +%FT%TZ)" >> "$OUT/setup.tsv"

timed() {  # timed NAME COMMAND...: run it, log to OUT/NAME.log, append its wall seconds to OUT/wall.tsv
  local name=$1 started
  shift
  started=$(date +%s)
  "$@" > "$OUT/$name.log" 2>&1 || { echo "$name failed: see $OUT/$name.log" >&2; return 1; }
  printf '%s\t%s\n' "$name" $(( $(date +%s) - started )) >> "$OUT/wall.tsv"
}
completed() { [ -f "$1/run.json" ] && grep -q '"status": "completed"' "$1/run.json"; }
held_out() {  # held_out MODEL NAME
  [ -f "$OUT/eval-$2/metrics.json" ] || timed "eval-$2" $TINYR1 eval --model_name_or_path "$1" "${TASK[@]}" \
    --split test --limit "$HELD_OUT_LIMIT" --max_new_tokens "$HELD_OUT_TOKENS" --output_dir "$OUT/eval-$2"
}
stage() {  # stage NAME: train one model (unless done), then its held-out evaluation
  local name=$1 seed=${1##*-s}
  case $name in
    # The cold starts' evaluations are stages of their own, so the arms need not wait for them.
    start) completed "$OUT/start" || timed start $TINYR1 sft "${SFT[@]}" --output_dir "$OUT/start" \
             --overwrite_output_dir true ;;
    demo-coldstart) completed "$OUT/demo-coldstart" || timed demo-coldstart $TINYR1 sft "${SFT[@]}" --max_steps 12 \
                      --warmup_steps 0 --learning_rate 5e-4 --output_dir "$OUT/demo-coldstart" \
                      --overwrite_output_dir true ;;
    eval-start) held_out "$OUT/start" start ;;
    eval-demo-coldstart) held_out "$OUT/demo-coldstart" demo-coldstart ;;
    eval-base) held_out smollm2-135m-instruct base ;;
    recipe-s*) completed "$OUT/$name" || timed "$name" $TINYR1 train --config $R/grpo-arith-from-sft-cpu.yaml \
                 --model_name_or_path "$OUT/start" --max_steps "$STEPS" --seed "$seed" "${GRPO_OFF[@]}" \
                 --output_dir "$OUT/$name" --overwrite_output_dir true
               held_out "$OUT/$name" "$name" ;;
    control-s*) completed "$OUT/$name" || timed "$name" $TINYR1 train --config $R/grpo-arith-from-sft-cpu.yaml \
                  --model_name_or_path "$OUT/start" --max_steps "$STEPS" --seed "$seed" "${GRPO_OFF[@]}" \
                  --dynamic_sampling false --loss_type dr_grpo --scale_rewards none \
                  --output_dir "$OUT/$name" --overwrite_output_dir true
                held_out "$OUT/$name" "$name" ;;
    # --merge_lora: the new adapter's base is the start, itself an adapter; the merged copy holds both.
    sft-s*) completed "$OUT/$name" || timed "$name" $TINYR1 sft "${SFT[@]}" --model_name_or_path "$OUT/start" \
              --dataset_seed 1 --dataset_limit 300 --max_steps "$SFT_STEPS" --seed "$seed" --merge_lora true \
              --output_dir "$OUT/$name" --overwrite_output_dir true
            held_out "$OUT/$name/merged" "$name" ;;
    demo-s*) completed "$OUT/$name" || timed "$name" $TINYR1 train "${DEMO[@]}" --seed "$seed" "${GRPO_OFF[@]}" \
               --output_dir "$OUT/$name" --overwrite_output_dir true
             held_out "$OUT/$name" "$name" ;;
    *) echo "unknown stage $name" >&2; return 2 ;;
  esac
}

pool() {  # pool STAGE...: JOBS stages at a time; fails at the end if any failed
  local failed=0 running=0
  for name in "$@"; do
    if [ "$running" -ge "$JOBS" ]; then wait -n || failed=1; running=$((running - 1)); fi
    stage "$name" & running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  return $failed
}

if [ -n "${STAGES:-}" ]; then
  # shellcheck disable=SC2086
  pool $STAGES
else  # the two cold starts first (every other model starts from one of them), then the rest, longest first
  pool start demo-coldstart
  stages=()
  for k in $SEEDS; do stages+=("recipe-s$k" "control-s$k" "sft-s$k"); done
  for k in $SEEDS; do stages+=("demo-s$k"); done
  pool "${stages[@]}" eval-start eval-demo-coldstart eval-base
fi
echo "outputs: $OUT; table: .venv/bin/python benchmarks/seeds_table.py $OUT"
