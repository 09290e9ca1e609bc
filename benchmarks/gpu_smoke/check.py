"""tinyr1's GPU check: one call on any machine with a GPU, offline, from a fresh clone with the packages installed.

    .venv/bin/python benchmarks/gpu_smoke/check.py                 # a table; exit 1 on any unexpected result
    .venv/bin/python benchmarks/gpu_smoke/check.py --work /tmp/gpu-check --keep

Models are generated (random weights) and data comes from reasoning-gym's generator, so nothing is downloaded.
Rows, each ``ok``, ``FAIL`` or ``skipped: <why>``:

- ``versions``: torch, CUDA, transformers, trl, peft, accelerate, bitsandbytes, deepspeed; bf16 on the GPU.
- ``doctor``: ``tinyr1 doctor`` on the Qwen2.5-0.5B recipe with a Qwen2.5-0.5B-shaped model: its generation check
  runs on the GPU, and its memory estimate is kept for the GRPO row.
- ``eval on the GPU``: ``tinyr1.evaluate`` of a tiny model: the model it loads sits on ``cuda``.
- ``GRPO, Qwen2.5-0.5B shape``: two steps of the recipe (its batch, its lengths) on a model of Qwen2.5-0.5B-Instruct's
  exact shape with random weights: seconds per step, and peak GPU memory against doctor's estimate (FAIL above it).
- ``SFT, 4-bit``: two LoRA steps of ``tinyr1 sft --load_in_4bit true`` (bitsandbytes), then ``generate`` from the
  adapter; runs on a CPU too.
- ``DDP, 2 processes``: one GRPO step of a tiny model under ``accelerate launch`` on two GPUs.

Under 10 minutes on one GPU (not yet run on one); on a CPU the GPU rows say "skipped: no GPU" and the script
still runs to its end; ``--rehearse`` runs the one-GPU rows on the CPU with a small model instead, so their code is
tested without a GPU (``tests/test_gpu_smoke.py`` runs both).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # this tree's tinyr1, and tests.train_helpers' length reward
TINY = REPO / "tests" / "assets" / "tiny-qwen2"
QWEN_RECIPE = REPO / "recipes" / "qwen2.5-0.5b-instruct" / "grpo-gsm8k.yaml"
# Qwen2.5-0.5B-Instruct's config.json, the fields that set its shape.
QWEN_SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                  tie_word_embeddings=True, rms_norm_eps=1e-6)
# widths bitsandbytes' CPU backend takes (multiples of 64); a GPU takes them too
SMALL_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=1, vocab_size=1024, max_position_embeddings=2048, tie_word_embeddings=True,
                   initializer_range=0.3)
DATA = ["--dataset_name", "reasoning-gym:chain_sum"]
NO_GPU = "skipped: no GPU"


def random_qwen2(folder: Path, dtype=torch.float32, **shape) -> Path:
    """A Qwen2 model of ``shape`` with random weights and tiny-qwen2's tokenizer (its ids fit any larger vocabulary;
    ids past it decode to nothing)."""
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    torch.manual_seed(0)
    config = Qwen2Config(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, **shape)
    model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tinyr1(*args: str, timeout: int = 300, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, *(launcher or []), "-m", "tinyr1", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def failed(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return f"exit {result.returncode}: {lines[-1][:160] if lines else 'no output'}"


def versions(gpu: bool) -> tuple[str, str]:
    names = ["torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "deepspeed"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    if not gpu:
        return "ok", ", ".join(found) + "; no CUDA GPU"
    bf16 = torch.cuda.is_bf16_supported()
    gpus = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
    return ("ok" if bf16 else "FAIL"), ", ".join(found) + f"; {gpus}; bf16 {'yes' if bf16 else 'NO'}"


def qwen_recipe(work: Path, model: Path) -> Path:
    """The Qwen2.5-0.5B GRPO recipe pointed at a model of its shape and at generated data."""
    recipe = work / "qwen-shape.yaml"
    text = QWEN_RECIPE.read_text()
    text = re.sub(r"(?m)^model_name_or_path:.*$", f"model_name_or_path: {model}", text)
    text = re.sub(r"(?m)^dataset_name:.*$", "dataset_name: reasoning-gym:chain_sum", text)
    recipe.write_text(text)
    return recipe


def doctor(recipe: Path, state: dict) -> tuple[str, str]:
    result = tinyr1("doctor", "--config", str(recipe), timeout=300)
    estimate = re.search(r"~([\d.]+) GiB needed here", result.stdout)
    generation = next((line for line in result.stdout.splitlines() if re.search(r"\]\s+generation\b", line)), "")
    if result.returncode != 0 or "logits finite" not in generation or not estimate:
        return "FAIL", failed(result) + f" | {generation.strip()[:120]}"
    state["estimate_gib"] = float(estimate.group(1))
    return "ok", f"generation: logits finite; memory estimate ~{state['estimate_gib']:.1f} GiB"


def eval_on_gpu(work: Path, expected: str) -> tuple[str, str]:
    from tinyr1.models.loading import load_model

    model = load_model(str(TINY))
    where = next(model.parameters()).device
    if where.type != expected:
        return "FAIL", f"tinyr1's loader put the model on {where}"
    import tinyr1

    result = tinyr1.evaluate(str(TINY), dataset_name="reasoning-gym:chain_sum", limit=4, max_new_tokens=8,
                             output_dir=str(work / "eval"))
    return "ok", f"model on {where}; {result['n']} questions evaluated"


def grpo_qwen_shape(recipe: Path, work: Path, state: dict, rehearse: bool) -> tuple[str, str]:
    import tinyr1
    from tests.train_helpers import length_reward  # random weights earn no recipe reward; this one varies

    out = work / "grpo-qwen-shape"
    # a rehearsal on a CPU: the same code with a small batch of short completions
    small = dict(num_generations=4, per_device_train_batch_size=4, gradient_accumulation_steps=1,
                 max_completion_length=16) if rehearse else {}
    if not rehearse:
        torch.cuda.reset_peak_memory_stats()
    run = tinyr1.train(str(recipe), max_steps=2, output_dir=str(out), reward_funcs=["correctness", length_reward],
                       save_strategy="no", eval_before_after=False, **small)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["step_time"] for r in rows if "step_time" in r]
    if run.exit_code != 0 or len(times) != 2:
        return "FAIL", f"exit {run.exit_code}, {len(times)} steps logged"
    estimate = state.get("estimate_gib")
    if rehearse:
        return "ok", f"{sum(times) / 2:.1f} s/step (rehearsal on the CPU: no GPU memory to compare)"
    peak = torch.cuda.max_memory_allocated() / 2**30
    detail = f"{sum(times) / 2:.1f} s/step; peak {peak:.1f} GiB against doctor's ~{estimate} GiB"
    return ("ok" if estimate is not None and peak <= estimate else "FAIL"), detail


def sft_4bit(work: Path) -> tuple[str, str]:
    if importlib.util.find_spec("bitsandbytes") is None:
        return "FAIL", 'bitsandbytes missing: pip install -c constraints.txt -e ".[qlora]"'
    model = random_qwen2(work / "tiny-64", **SMALL_SHAPE)
    out = work / "sft-4bit"
    start = time.perf_counter()
    result = tinyr1("sft", "--model_name_or_path", str(model), "--dataset_name", "tests/assets/alpaca_tiny.json",
                    "--load_in_4bit", "true", "--max_steps", "2", "--max_length", "128", "--save_strategy", "no",
                    "--output_dir", str(out), "--optim", "adamw_torch")
    seconds = time.perf_counter() - start
    if result.returncode != 0 or "weights 4-bit nf4" not in result.stdout:
        return "FAIL", failed(result)
    reply = tinyr1("generate", "--model_name_or_path", str(out), "--prompt", "Add 2 and 3.", "--max_new_tokens", "4")
    if reply.returncode != 0:
        return "FAIL", "generate from the adapter: " + failed(reply)
    precision = next(line for line in result.stdout.splitlines() if "weights 4-bit" in line)
    return "ok", f"2 steps + generate in {seconds:.0f} s; {precision.split(';')[-1].strip()}"


def ddp_two_gpus(work: Path) -> tuple[str, str]:
    out = work / "ddp"
    launcher = ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/ddp.yaml",
                "--num_processes", "2"]
    result = tinyr1("train", "--model_name_or_path", str(TINY), *DATA, "--max_steps", "1", "--num_generations", "4",
                    "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                    "--max_completion_length", "16", "--reward_funcs", "tests.train_helpers:length_reward",
                    "--save_strategy", "no", "--output_dir", str(out), launcher=launcher, timeout=400)
    if result.returncode != 0:
        return "FAIL", failed(result)
    run = json.loads((out / "run.json").read_text())
    ok = run.get("world_size") == 2 and run.get("global_step") == 1
    return ("ok" if ok else "FAIL"), f"world_size {run.get('world_size')}, step {run.get('global_step')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder for the generated models and runs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep --work afterwards")
    parser.add_argument("--rehearse", action="store_true",
                        help="without a GPU, run the one-GPU rows on the CPU with a small model (tests the script)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="tinyr1-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if gpu else 0
    state: dict = {}
    rows: list[tuple[str, str, str]] = []

    def row(name: str, check, *check_args, needs: str | None = None) -> None:
        started = time.perf_counter()
        if needs is not None:
            status, detail = needs, ""
        else:
            try:
                status, detail = check(*check_args)
            except Exception as err:  # a check that crashes is an unexpected result, reported in its row
                status, detail = "FAIL", f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        rows.append((name, status, f"{detail} ({time.perf_counter() - started:.0f} s)" if detail else ""))
        print(f"{name}: {status} {detail}", flush=True)

    row("versions", versions, gpu)
    qwen = recipe = None
    single = None if gpu or args.rehearse else NO_GPU  # the one-GPU rows: run, or skipped
    if gpu:
        qwen = random_qwen2(work / "qwen2.5-0.5b-shape", dtype=torch.bfloat16, **QWEN_SHAPE)
    elif args.rehearse:
        qwen = random_qwen2(work / "small-qwen2", **SMALL_SHAPE)
    if qwen is not None:
        recipe = qwen_recipe(work, qwen)
    device = "cuda" if gpu else "cpu"
    row("doctor", doctor, recipe, state, needs=single)
    row("eval on the GPU", eval_on_gpu, work, device, needs=single)
    row("GRPO, Qwen2.5-0.5B shape", grpo_qwen_shape, recipe, work, state, not gpu, needs=single)
    row("SFT, 4-bit", sft_4bit, work)
    row("DDP, 2 processes", ddp_two_gpus, work,
        needs=None if gpus >= 2 else (NO_GPU if not gpu else "skipped: one GPU"))
    print("\n| check | result | detail |\n|---|---|---|")
    for name, status, detail in rows:
        print(f"| {name} | {status} | {detail} |")
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    bad = [name for name, status, _ in rows if status == "FAIL"]
    print(f"\n{len(bad)} unexpected result(s): {', '.join(bad)}" if bad else "\nall as expected")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
