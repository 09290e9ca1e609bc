#!/usr/bin/env bash
# Side by side: plain GRPO against dynamic sampling, the pass-rate curriculum and both, and trl's own options beside
# dynamic sampling, from make demo's earlier 8-step cold start, same budget, same CPU, the same 200 held-out sums
# (one seed each; CHANGELOG.md, "Keeping GRPO learning"; the repeated measurement is learning_seeds.sh):
#   ARMS="control both" bash benchmarks/learning_sampling.sh [OUT_DIR]    # two arms at once, one thread each
#   ARMS="dynamic curriculum" bash benchmarks/learning_sampling.sh [OUT_DIR]
#   ARMS="clip-higher low-lr" bash benchmarks/learning_sampling.sh [OUT_DIR]
#   ARMS="dynamic fp16-weights" bash benchmarks/learning_sampling.sh [OUT_DIR]   # exact vs fp16 generation weights
#   COLDSTART_STEPS=40 LR=1e-5 ARMS="control dynamic levels top-entropy" bash benchmarks/learning_sampling.sh [OUT_DIR]
#   COLDSTART_STEPS=40 LR=1e-5 ARMS="loss-dapo loss-grpo" bash benchmarks/learning_sampling.sh [OUT_DIR]
# Each arm trains for MINUTES of GRPO (default 45; the cosine schedule spans 2000 steps whatever the budget, so
# arms on different CPUs compare at equal steps), saves a checkpoint every SAVE_STEPS (default 60) and then
# evaluates every checkpoint (the last one is the final model) on 200 held-out sums (greedy, 128 new tokens). COLDSTART is the
# starting adapter (default outputs/demo/coldstart, what make demo writes; made here if missing, with COLDSTART_STEPS
# SFT steps: 8 at lr 5e-4 as the demo's earlier cold start, or the SFT recipe's 40 at its lr). LR is GRPO's learning
# rate (default 2e-5). The arms of one call run at the same time, one thread each, so they share the machine equally. A
# benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/learning-sampling}
ARMS=${ARMS:-control both}
MINUTES=${MINUTES:-45}
SAVE_STEPS=${SAVE_STEPS:-60}
COLDSTART=${COLDSTART:-outputs/demo/coldstart}
COLDSTART_STEPS=${COLDSTART_STEPS:-8}
LR=${LR:-2e-5}
export OMP_NUM_THREADS=1
if [ -z "${TINYR1:-}" ]; then make install; TINYR1=.venv/bin/tinyr1; fi
TASK=(--dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=3 min_digits=1 max_digits=2)
HELD_OUT=("${TASK[@]}" --split test --limit 200 --max_new_tokens 128)
mkdir -p "$OUT"
if [ ! -f "$COLDSTART/adapter_config.json" ]; then
  if [ "$COLDSTART_STEPS" = 8 ]; then SFT_LR=(--learning_rate 5e-4); else SFT_LR=(); fi
  $TINYR1 sft --config recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml --max_steps "$COLDSTART_STEPS" \
    "${SFT_LR[@]}" --output_dir "$COLDSTART"
fi
# make demo's earlier GRPO settings (four rewards; 4 prompts x 4 completions, 64 new tokens, lr 2e-5) on a pool of 300 train sums, small
# enough that a prompt comes round again within the budget, which the curriculum needs to know its pass rate.
GRPO=(--config recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml --model_name_or_path "$COLDSTART"
  --reward_funcs correctness reasoned_format number strict_format --reward_weights 1 1 1 1
  --per_device_train_batch_size 16 --num_generations 4 --max_completion_length 64 --learning_rate "$LR"
  --dataset_limit 300 --max_steps 2000 --max_train_minutes "$MINUTES" --warmup_steps 0 --save_steps "$SAVE_STEPS"
  --sample_every 0 --eval_before_after false)
arm_flags() {
  case $1 in
    control) ;;
    dynamic) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 ;;
    curriculum) echo --curriculum true ;;
    both) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --curriculum true ;;
    # trl's own options, each beside dynamic sampling (the recipe's choice): clip-higher (DAPO's epsilon_high), a
    # halved learning rate, and the loss on the 20% highest-entropy tokens only.
    clip-higher) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --epsilon_high 0.28 ;;
    low-lr) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --learning_rate 1e-5 ;;
    top-entropy) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --top_entropy_quantile 0.2 ;;
    # The recipe with its decode steps on fp16-rounded weights (an fp32 decode: CPUs without native bf16).
    fp16-weights) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --cpu_generation_weights fp16 ;;
    # trl's default loss (dapo: the sum over the batch's tokens, rewards scaled by the group's std) and GRPO's own
    # (each completion's mean, std-scaled), each beside dynamic sampling, against the recipe's dr_grpo without scaling.
    loss-dapo) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --loss_type dapo --scale_rewards group ;;
    loss-grpo) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --loss_type grpo --scale_rewards group ;;
    # Dynamic sampling with the curriculum's difficulty schedule: single-digit pairs, then the held-out task's sums,
    # then longer ones (each level laid over the task's options; the held-out sums stay the task's).
    levels) echo --dynamic_sampling true --dynamic_sampling_max_rounds 2 --curriculum true --curriculum_levels \
      min_terms=2,max_terms=2,max_digits=1 min_terms=2,max_terms=3 min_terms=3,max_terms=4 ;;
    *) echo "unknown arm $1 (control, dynamic, curriculum, both, clip-higher, low-lr, top-entropy, fp16-weights," \
         "loss-dapo, loss-grpo, levels)" >&2
       exit 2 ;;
  esac
}
held_out() {  # held_out MODEL NAME: one held-out evaluation, skipped when done
  [ -f "$OUT/eval-$2/metrics.json" ] || $TINYR1 eval --model_name_or_path "$1" "${HELD_OUT[@]}" \
    --output_dir "$OUT/eval-$2" > "$OUT/eval-$2.log" 2>&1
}
run_arm() {
  local arm=$1 flags
  flags=$(arm_flags "$arm")
  # shellcheck disable=SC2086
  [ -f "$OUT/$arm/run.json" ] && grep -q '"status": "completed"' "$OUT/$arm/run.json" || \
    $TINYR1 train "${GRPO[@]}" $flags --output_dir "$OUT/$arm" --overwrite_output_dir true > "$OUT/$arm.log" 2>&1
  local last
  last=$(python3 -c "import json; print(json.load(open('$OUT/$arm/run.json'))['global_step'])")
  for ckpt in "$OUT/$arm"/checkpoint-*; do  # the checkpoint of the last step is the final model, evaluated below
    [ -d "$ckpt" ] && [ "$(basename "$ckpt")" != "checkpoint-$last" ] && held_out "$ckpt" "$arm-$(basename "$ckpt")"
  done
  held_out "$OUT/$arm" "$arm-final"
}
for arm in $ARMS; do arm_flags "$arm" > /dev/null; done
pids=()
for arm in $ARMS; do run_arm "$arm" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done
held_out "$COLDSTART" coldstart
echo "outputs: $OUT (one folder per arm, eval-<arm>-<checkpoint> per held-out evaluation)"
