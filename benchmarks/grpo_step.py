"""Seconds per GRPO step on this CPU: trl's defaults, the best plain-trl setting, and tinyr1's fast path.

    .venv/bin/python benchmarks/grpo_step.py --variants trl-defaults trl-best tinyr1 --steps 4 --json out.json

Every variant trains SmolLM2-135M-Instruct (offline alias) on the same GSM8K prompts: one prompt x 8 completions
x exactly 128 tokens per step (``min_new_tokens``, so every variant does the same work whatever it samples),
temperature 1, seed 0, each variant in its own process, at each thread count of ``--threads`` (default 1 and 2).
Reported per variant: the median seconds per step after the first (warm-up) step at its best thread count, the
generation and update seconds of a step (trl's own generate timer), and peak RSS.

Variants:
- ``trl-defaults``: ``GRPOConfig(use_cpu=True)``, what the tutorial's code does on a CPU (bf16 autocast and
  activation checkpointing by trl's defaults, whatever the CPU).
- ``trl-best``: the faster, measured in this run, of ``trl-fp32`` and ``trl-bf16`` (activation checkpointing off,
  fp32 or bf16 autocast): the best a careful user reaches through ``GRPOConfig`` fields alone.
- ``tinyr1``: what ``tinyr1 train`` does by default: ``tinyr1.GRPOTrainer`` on its CPU fast path, precision
  chosen by ``tinyr1.models.precision``, no activation checkpointing, freed memory kept for reuse
  (``tinyr1.infra.device.keep_freed_memory``; ``--trl-keep-freed-memory`` gives trl's variants the same), the
  command's OpenMP wait policy (``tinyr1.infra.threads.openmp_defaults``; trl's variants keep libgomp's default) and,
  with no thread setting, the thread governor (``tinyr1.infra.thread_governor``; its changes are in
  ``thread_changes``).
- ``tinyr1-fp16-weights``: ``tinyr1`` with ``cpu_generation_weights: fp16`` (decode steps on fp16-rounded weights;
  applies only where generation runs in fp32).

``floor_s``: the step's minimal matrix work — generation 2 x params per token with each prompt prefilled once,
the update 6 x params per token with the prompt once and the 8 completions — divided by this CPU's matmul
throughput in tinyr1's dtype, measured here on the same threads. ``decode_floor_s``: what the FLOP floor leaves out —
each of the 128 decode steps reads every weight once, so generation alone needs 128 x weight bytes / this
machine's measured read bandwidth, however few FLOPs it does. ``roofline_s``: the two together, decode weight reads
at the measured bandwidth plus the FLOPs at the measured matmul rate, the floor the step is held against.

``--threads`` takes counts and ``default``: the variant runs with no thread setting at all (no
``OMP_NUM_THREADS``), as a user's first run does; tinyr1 then picks its threads itself (``tinyr1.infra.threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

COMPLETIONS, NEW_TOKENS = 8, 128
SETTINGS = {
    "trl-defaults": {},
    "trl-fp32": {"bf16": False, "activation_checkpointing": False},
    "trl-bf16": {"bf16": True, "activation_checkpointing": False},
    "tinyr1": {},  # tinyr1.GRPOConfig's machine defaults (bf16 where native, no checkpointing on a CPU)
    "tinyr1-fp16-weights": {},  # the same, with cpu_generation_weights: fp16
}
CHOICES = ["trl-defaults", "trl-best", "tinyr1", "trl-fp32", "trl-bf16", "tinyr1-fp16-weights"]


def matmul_gflops(dtype: torch.dtype, shape=(1024, 576, 1536), seconds: float = 1.0) -> float:
    """Throughput of a matmul at a small model's shapes (tokens x hidden x mlp), best of repeats."""
    m, k, n = shape
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def read_bandwidth_gbs(mib: int = 512, seconds: float = 1.0) -> float:
    """Bytes read per second by a large tensor copy (it writes as many), best of repeats."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return src.numel() * 4 / best / 1e9


def floor_flops(params: int, prompt_tokens: int) -> float:
    generation = 2 * params * (prompt_tokens + COMPLETIONS * NEW_TOKENS)
    update = 6 * params * (prompt_tokens + COMPLETIONS * NEW_TOKENS)
    return generation + update


def run_variant(name: str, steps: int, rows) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from tinyr1.models.loading import ensure_pad_token, resolve_model
    from tinyr1.tasks.reward_lookup import get_reward_funcs
    from tinyr1.tasks.rewards import DEFAULT_REWARDS

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

    settings, trainer_class, callbacks = dict(SETTINGS[name]), GRPOTrainer, [StepTimer()]
    config_class = GRPOConfig
    if name.startswith("tinyr1"):
        import tinyr1

        # bf16 and checkpointing: the machine's defaults; the thread governor as tinyr1 train adds it (only where
        # tinyr1 chose the count); a fresh run folder each time
        trainer_class, config_class = tinyr1.GRPOTrainer, tinyr1.GRPOConfig
        settings.update(overwrite_output_dir=True)
        if name == "tinyr1-fp16-weights":
            settings.update(cpu_generation_weights="fp16")
    config = config_class(output_dir=f"/tmp/grpo_step_{name}", use_cpu=True, max_steps=steps,
                          per_device_train_batch_size=COMPLETIONS, num_generations=COMPLETIONS,
                          max_completion_length=NEW_TOKENS, generation_kwargs={"min_new_tokens": NEW_TOKENS},
                          logging_steps=1, report_to="none", save_strategy="no", seed=0, disable_tqdm=True,
                          log_level="error", **settings)
    model_path = resolve_model("smollm2-135m-instruct").path
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    ensure_pad_token(tokenizer, model)
    trainer = trainer_class(model=model, args=config, reward_funcs=get_reward_funcs(DEFAULT_REWARDS),
                            train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                            callbacks=callbacks)
    trainer.train()
    profiling.ProfilingContext._log_metrics = original
    run = getattr(trainer, "_run", None)
    governor = run.governor if run is not None else None
    median = statistics.median(step_seconds[1:] or step_seconds)
    generation = statistics.median(generate_seconds[1:] or generate_seconds)
    prompt_tokens = statistics.mean(len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True,
                                                                      tokenize=True, return_dict=False))
                                    for r in rows[:steps])
    return {"bf16": config.bf16, "activation_checkpointing": config.activation_checkpointing,
            "trainer": trainer_class.__name__, "threads": torch.get_num_threads(),
            "step_seconds": [round(s, 2) for s in step_seconds], "median_s_per_step": round(median, 2),
            "generation_s": round(generation, 2), "update_s": round(median - generation, 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "params": model.num_parameters(), "prompt_tokens": round(prompt_tokens, 1),
            "thread_changes": [list(c) for c in governor.governor.changes] if governor else [],
            "generation_weights": trainer.fast_path.generation_weights if hasattr(trainer, "fast_path") else "exact"}


def run_in_own_process(name: str, steps: int, threads: str, trl_keep_freed_memory: bool) -> dict:
    """Each variant in a fresh process, so peak RSS and allocator state belong to that variant alone; ``threads``
    a count, or ``default`` for no setting at all."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if name.startswith("tinyr1"):  # the command's OpenMP wait policy, set before torch loads (tinyr1.infra.threads)
        from tinyr1.infra.threads import openmp_defaults

        env.update(openmp_defaults(env))
    if threads != "default":
        env["OMP_NUM_THREADS"] = threads
    extra = ["--trl-keep-freed-memory"] if trl_keep_freed_memory else []
    out = subprocess.run([sys.executable, __file__, "--variants", name, "--steps", str(steps), "--one", *extra],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"variant {name} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "threads_setting": threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["trl-defaults", "trl-best", "tinyr1"], choices=CHOICES)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", nargs="+", default=["1", "2"],
                   help="thread counts to try (best one counts), or default: no setting, tinyr1 picks")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--trl-keep-freed-memory", action="store_true",
                   help="give trl's variants tinyr1's allocator setting too (tinyr1.infra.device.keep_freed_memory)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be at least 2: the first step is warm-up")
    if any(t != "default" and not (t.isdigit() and int(t) > 0) for t in args.threads):
        p.error("--threads takes positive counts or default")
    from tinyr1.infra.cpu_features import cpu_bf16
    from tinyr1.infra.device import cpu_threads, keep_freed_memory
    from tinyr1.tasks.data import default_gsm8k_dir, load_prompt_rows

    if args.one:
        name = args.variants[0]
        cpu_threads()
        # tinyr1 train's configure_cpu also keeps freed memory; trl's variants get that only when asked.
        kept = keep_freed_memory() if name.startswith("tinyr1") or args.trl_keep_freed_memory else False
        rows = [{"prompt": r["prompt"], "answer": r["answer"]}
                for r in load_prompt_rows(str(default_gsm8k_dir()), "train", limit=64)]
        print(json.dumps({**run_variant(name, args.steps, rows), "keep_freed_memory": kept}))
        return
    wanted = [v for name in args.variants for v in (["trl-fp32", "trl-bf16"] if name == "trl-best" else [name])]
    runs: dict[str, list[dict]] = {}
    for name in dict.fromkeys(wanted):
        for threads in args.threads:
            result = run_in_own_process(name, args.steps, threads, args.trl_keep_freed_memory)
            print(f"{name} ({threads}: {result['threads']} thread(s)): {result['median_s_per_step']} s/step "
                  f"(generation {result['generation_s']} s)", file=sys.stderr, flush=True)
            runs.setdefault(name, []).append(result)
    variants = {name: min(results, key=lambda r: r["median_s_per_step"]) for name, results in runs.items()}
    for name, result in variants.items():
        result["all_threads"] = {r["threads_setting"]: r["median_s_per_step"] for r in runs[name]}
        result["all_step_seconds"] = {r["threads_setting"]: r["step_seconds"] for r in runs[name]}
    if "trl-best" in args.variants:
        best = min(("trl-fp32", "trl-bf16"), key=lambda n: variants[n]["median_s_per_step"])
        variants["trl-best"] = {**variants[best], "chosen": best}
    cpu = cpu_bf16()
    reference = variants.get("tinyr1") or next(iter(variants.values()))
    cpu_threads(int(reference["threads"]))
    dtype = torch.bfloat16 if cpu.native else torch.float32
    throughput = matmul_gflops(dtype)
    floor = floor_flops(reference["params"], reference["prompt_tokens"]) / throughput / 1e9
    bandwidth = read_bandwidth_gbs()
    decode_floor = NEW_TOKENS * reference["params"] * (2 if cpu.native else 4) / bandwidth / 1e9
    report = {"cpu": {**cpu.as_dict(), "cores": os.cpu_count()}, "torch": torch.__version__,
              "matmul_gflops": {"dtype": str(dtype).replace("torch.", ""), "threads": reference["threads"],
                                "value": round(throughput, 1)},
              "floor_s": round(floor, 2), "read_bandwidth_gbs": round(bandwidth, 1),
              "decode_floor_s": round(decode_floor, 2), "roofline_s": round(floor + decode_floor, 2),
              "variants": variants}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if "tinyr1" in variants:
        fast = variants["tinyr1"]["median_s_per_step"]
        for other in ("trl-defaults", "trl-best"):
            if other in variants:
                print(f"{other} / tinyr1: {variants[other]['median_s_per_step'] / fast:.2f}x", file=sys.stderr)
        print(f"tinyr1 / FLOP floor: {fast / floor:.2f}x, / roofline: {fast / (floor + decode_floor):.2f}x",
              file=sys.stderr)
        chosen = variants["tinyr1"]["all_threads"]
        if "default" in chosen:
            fixed = [v for k, v in chosen.items() if k != "default"]
            if fixed:
                print(f"tinyr1, default threads / best fixed count: {chosen['default'] / min(fixed):.2f}x",
                      file=sys.stderr)


if __name__ == "__main__":
    main()
