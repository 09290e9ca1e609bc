"""Seconds per GRPO step on this CPU: plain trl with its defaults vs CPU settings, on the same model and data.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/grpo_step.py --variants trl-defaults tinyr1-cpu --steps 4

Every variant trains SmolLM2-135M-Instruct (offline alias) on the same GSM8K prompts, one prompt x 8 completions x
128 tokens per step, sampling at temperature 1, seed 0. Reported per variant: the median seconds per step after the
first (warm-up) step, the share spent in generation (trl's own `transformers.generate` timer), peak RSS, and a
floor: the step's matrix-multiply work divided by this CPU's measured bf16 and fp32 matmul throughput.

Variants:
- ``trl-defaults``: what a user following the tutorial writes today on a CPU: ``GRPOConfig(use_cpu=True)``, so
  trl's defaults (bf16 autocast, gradient checkpointing) apply.
- ``tinyr1-cpu``: tinyr1's CPU defaults (bf16 autocast over fp32 weights, no activation checkpointing).
- ``fp32-no-checkpointing`` (tinyr1's earlier default), ``fp32-checkpointing``: the two levers separately.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

VARIANTS = {
    "trl-defaults": {},
    "tinyr1-cpu": {"bf16": True, "activation_checkpointing": False},
    "fp32-no-checkpointing": {"bf16": False, "activation_checkpointing": False},
    "fp32-checkpointing": {"bf16": False, "activation_checkpointing": True},
}


def matmul_gflops(dtype: torch.dtype, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(params: int, prompt_tokens: int, completion_tokens: int, completions: int) -> float:
    """Generation (2 x params per new token; prompt prefill 2 x params per token) plus the update's forward and
    backward over prompt + completion (6 x params per token; trl recomputes log-probs in the loss pass)."""
    generation = 2 * params * (prompt_tokens + completion_tokens) * completions
    update = 6 * params * (prompt_tokens + completion_tokens) * completions
    return generation + update


def profiler_callback(step: int):
    """A callback that profiles one optimizer step with torch.profiler and prints the top operators to stderr."""
    import sys

    from torch.profiler import profile
    from transformers import TrainerCallback

    class StepProfiler(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step - 1:
                self.profiler = profile()
                self.profiler.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                self.profiler.__exit__(None, None, None)
                print(self.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20),
                      file=sys.stderr)

    return StepProfiler()


def run_variant(name: str, steps: int, model_path: str, rows, profile_step: int | None = None) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from tinyr1.models import ensure_pad_token
    from tinyr1.rewards import DEFAULT_REWARDS, get_reward_funcs

    generate_seconds: list[float] = []
    original = profiling.ProfilingContext._log_metrics

    def record(self, duration):  # benchmark-only instrumentation of trl's own timers
        if self.name.endswith("transformers.generate"):
            generate_seconds.append(duration)
        original(self, duration)

    profiling.ProfilingContext._log_metrics = record
    step_seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_seconds.append(time.perf_counter() - self.start)

    config = GRPOConfig(output_dir=f"/tmp/grpo_step_{name}", use_cpu=True, max_steps=steps,
                        per_device_train_batch_size=8, num_generations=8, max_completion_length=128,
                        logging_steps=1, report_to="none", save_strategy="no", seed=0, disable_tqdm=True,
                        log_level="error",
                        **VARIANTS[name])
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    ensure_pad_token(tokenizer, model)
    trainer = GRPOTrainer(model=model, args=config, reward_funcs=get_reward_funcs(DEFAULT_REWARDS),
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          callbacks=[StepTimer()] + ([profiler_callback(profile_step)] if profile_step else []))
    trainer.train()
    profiling.ProfilingContext._log_metrics = original
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    median = statistics.median(step_seconds[1:] or step_seconds)
    return {"variant": name, "bf16": config.bf16, "activation_checkpointing": config.activation_checkpointing,
            "step_seconds": [round(s, 1) for s in step_seconds], "median_step_seconds": round(median, 1),
            "generation_share": round(statistics.median(generate_seconds[1:] or generate_seconds) / median, 2),
            "mean_completion_tokens": round(statistics.mean(lengths), 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "params": model.num_parameters()}


def run_in_own_process(name: str, steps: int) -> dict:
    """Each variant in a fresh process, so peak RSS and allocator state belong to that variant alone."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--variants", name, "--steps", str(steps), "--one"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["trl-defaults", "tinyr1-cpu"], choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--profile_step", type=int, help="with one variant: print a torch.profiler table of this step "
                   "to stderr (profiling slows the step)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = p.parse_args()
    if args.profile_step and len(args.variants) > 1:
        p.error("--profile_step profiles one variant; name exactly one with --variants")
    from tinyr1.data import default_gsm8k_dir, load_prompt_rows
    from tinyr1.models import configure_cpu_threads, resolve_model

    threads = configure_cpu_threads()
    if args.one or args.profile_step:
        model_path = resolve_model("smollm2-135m-instruct").path
        rows = [{"prompt": r["prompt"], "answer": r["answer"]}
                for r in load_prompt_rows(str(default_gsm8k_dir()), "train", limit=64)]
        print(json.dumps(run_variant(args.variants[0], args.steps, model_path, rows, args.profile_step)))
        return
    results = [run_in_own_process(name, args.steps) for name in args.variants]
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    flops = step_flops(results[0]["params"], 150, 128, 8)
    print(json.dumps({"threads": threads, "torch": torch.__version__, "matmul_gflops": {"fp32": round(fp32),
                      "bf16": round(bf16)}, "floor_seconds": {"fp32": round(flops / fp32 / 1e9, 1),
                      "bf16": round(flops / bf16 / 1e9, 1)}, "results": results}, indent=2))
    if len(results) >= 2:
        print(f"ratio {results[0]['variant']} / {results[1]['variant']}: "
              f"{results[0]['median_step_seconds'] / results[1]['median_step_seconds']:.2f}")


if __name__ == "__main__":
    main()
