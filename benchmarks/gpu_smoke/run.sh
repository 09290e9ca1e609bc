#!/bin/bash
# tinyr1's GPU smoke check: every command once on a CUDA GPU with the tiny test model, offline, in ~2 minutes.
#   DATA=path/to/gsm8k bash benchmarks/gpu_smoke/run.sh      # DATA: a folder with train.jsonl/test.jsonl (GSM8K rows)
# Results land in $OUT (default /tmp/gpu-smoke-out); summary.txt has each step's exit code and seconds.
# Checks: the GPU recipe's doctor; GRPO with trl's own trainer (bf16 autocast over fp32 master weights) and the
# fraction of weights it changed; GRPO with LoRA + merge; eval, generate, sft (LoRA) and generate from the adapter;
# --load_in_4bit without bitsandbytes (expected: exit 2, one line); accelerate launch with the DDP config, 1 process.
# The random tiny model scores 0 on the recipe's five rewards, so a length reward is added to get gradients.
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-/tmp/gpu-smoke-out}; W=${WORK:-/tmp/gpu-smoke}; PY=${PY:-python3}; DATA=${DATA:-../shared/data/gsm8k}
mkdir -p "$OUT"; rm -rf "$W"; mkdir -p "$W"; SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
export PYTHONPATH=$PWD/src:$PWD/benchmarks/gpu_smoke${PYTHONPATH:+:$PYTHONPATH}
step() {  # step NAME TIMEOUT CMD...
  local name=$1 tmo=$2; shift 2; echo; echo "================ STEP $name"; local t0=$(date +%s)
  timeout "$tmo" "$@"; local rc=$?; echo "---- STEP $name rc=$rc s=$(( $(date +%s) - t0 ))"
  printf '%-14s rc=%-4s %4ss  %s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$*" >> "$SUMMARY"; }
R=recipes/qwen2.5-0.5b-instruct/grpo-gsm8k.yaml; M=tests/assets/tiny-qwen2
TRAIN=(--config $R --model_name_or_path $M --dataset_name "$DATA" --dataset_limit 64 --max_steps 4
  --per_device_train_batch_size 8 --num_generations 4 --gradient_accumulation_steps 2 --max_completion_length 32
  --eval_limit 8 --eval_max_new_tokens 32 --sample_every 2
  --reward_funcs xmlcount soft_format strict_format int correctness length_reward:length_reward)
SFT=(--model_name_or_path $M --dataset_name tests/assets/alpaca_tiny.json --max_steps 4 --max_length 256
  --per_device_train_batch_size 2 --save_steps 100)
step nvidia-smi 30 nvidia-smi
step doctor 120 $PY -m tinyr1 doctor --command train --config $R --skip_generation
step train 240 $PY -m tinyr1 train "${TRAIN[@]}" --output_dir $W/train
step weights 60 $PY benchmarks/gpu_smoke/weights_changed.py $W/train
step train-lora 240 $PY -m tinyr1 train "${TRAIN[@]}" --use_peft true --lora_r 4 --lora_alpha 8 --merge_lora true \
  --eval_before_after false --output_dir $W/train_lora
step eval 120 $PY -m tinyr1 eval --model_name_or_path $W/train --dataset_name "$DATA" --limit 16 \
  --max_new_tokens 32 --output_dir $W/eval
step generate 120 $PY -m tinyr1 generate --model_name_or_path $M --prompt "What is 2 + 3?" --max_new_tokens 16
step sft 180 $PY -m tinyr1 sft "${SFT[@]}" --output_dir $W/sft
step generate-sft 120 $PY -m tinyr1 generate --model_name_or_path $W/sft --prompt "Add 2 and 3." --max_new_tokens 16
step sft-4bit 120 $PY -m tinyr1 sft "${SFT[@]}" --load_in_4bit true --output_dir $W/sft4
step accelerate 240 $PY -m accelerate.commands.launch --config_file recipes/accelerate/ddp.yaml --num_processes 1 \
  -m tinyr1 train "${TRAIN[@]}" --max_steps 2 --eval_before_after false --output_dir $W/ddp
cp $W/train/run.json $W/train/metrics.jsonl "$OUT/" 2>/dev/null
cat "$SUMMARY"
