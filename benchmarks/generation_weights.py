"""Fewer bytes per fp32 decode step: fp16 generation weights (``cpu_generation_weights: fp16``) and int8 against exact.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generation_weights.py --json out.json

Where a CPU has no native bf16 (AVX2), generation runs in fp32 and each decode step reads 4 bytes per weight.

1. ``products``: each 8-row product of a SmolLM2-135M decode step (fused q/k/v, o, fused gate/up, down, LM head) by
   fp32 weights packed by oneDNN (what an fp32 decode uses today), by fp16 weights widened inside fbgemm's kernel
   (``tinyr1.cpu.packing.fp16_linear``), by int8 weights with activations quantized per call (fbgemm's dynamic
   int8 linear, per-channel weights; not offered) and by bf16 weights (torch's own linear). Milliseconds, and the
   sum over one decode step (30 layers + LM head).
2. ``generation``: a 128-token generation of 8 rows (one GSM8K prompt x 8, as ``grpo_step.py``) through
   ``tinyr1.cpu.decode_loop`` with exact and fp16 weights, alternated 3 times; median seconds.
3. ``mismatch``: how far the sampler's policy is from the trained one. ``--prompts`` GSM8K training prompts, each
   completed (T=1, up to 128 tokens) by each sampler: fp16-rounded linear weights (what fbgemm's fp16 product
   computes) and the int8 dynamic model. On the sampler's tokens, its log-probs against the fp32 model's: mean and
   99th percentile of |d log p| of the sampled tokens, KL(sampler || trained) per token over the whole vocabulary,
   the share of tokens whose ratio p_trained / p_sampler leaves [0.8, 1.25], and how often the argmax agrees.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
from fast_path_pieces import _ms  # the sibling script's timer (benchmarks/ is on the path when run as a script)

LAYERS_SHAPES = {"qkv": (960, 576), "o": (576, 576), "gate_up": (3072, 576), "down": (576, 1536)}
LM_HEAD = (49152, 576)


def int8_linear(weight: torch.Tensor):
    """fbgemm's dynamic int8 product: per-channel int8 weights, activations quantized at every call."""
    lin = torch.nn.Linear(weight.size(1), weight.size(0), bias=False)
    lin.weight.data = weight
    lin.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return torch.ao.nn.quantized.dynamic.Linear.from_float(lin)


def products(rows: int = 8) -> dict:
    from tinyr1.cpu import packing

    out = {}
    for name, (n, k) in {**LAYERS_SHAPES, "lm_head": LM_HEAD}.items():
        torch.manual_seed(0)
        w, x = torch.randn(n, k) * 0.02, torch.randn(rows, k)
        fp32 = packing.packed_linear(w, None, rows, torch.float32)
        fp16, int8 = packing.fp16_linear(w, None), int8_linear(w)
        wb, xb = w.bfloat16(), x.bfloat16()
        out[name] = {"fp32_packed": _ms(lambda: fp32(x), 30), "fp16": _ms(lambda: fp16(x), 30),  # noqa: B023
                     "int8_dynamic": _ms(lambda: int8(x), 30), "bf16": _ms(lambda: F.linear(xb, wb), 5)}  # noqa: B023
        print(name, {k: round(v, 3) for k, v in out[name].items()}, flush=True)
    step = {kind: 30 * sum(out[name][kind] for name in LAYERS_SHAPES) + out["lm_head"][kind]
            for kind in out["lm_head"]}
    print("one decode step's products (ms):", {k: round(v, 2) for k, v in step.items()}, flush=True)
    return {"per_product_ms": out, "decode_step_ms": step}


def generation(model, prompt: list[int]) -> dict:
    from transformers import GenerationConfig

    from tinyr1.cpu.attention import cpu_attention
    from tinyr1.cpu.shared_prompts import generate_shared_prompts

    config = GenerationConfig(max_new_tokens=128, min_new_tokens=128, do_sample=True, temperature=1.0, top_k=0,
                              pad_token_id=2, eos_token_id=[2])
    seconds = {"exact": [], "fp16": []}
    for weights in ["exact", "fp16"] * 3:
        start = time.perf_counter()
        with torch.no_grad(), cpu_attention(model):
            generate_shared_prompts(model, [prompt] * 8, 2, config, fast_sampling=True,
                                    generation_weights=weights)
        seconds[weights].append(time.perf_counter() - start)
    out = {k: statistics.median(v) for k, v in seconds.items()}
    print(f"128-token generation of 8 rows, median of 3: exact {out['exact']:.2f} s, fp16 {out['fp16']:.2f} s "
          f"({out['exact'] / out['fp16']:.2f}x)", flush=True)
    return out


def _logits(model, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids[None]).logits[0, prompt_len - 1:-1].float()


def mismatch(model, prompts: list[list[int]], seed: int = 0) -> dict:
    from transformers import GenerationConfig

    fp16 = copy.deepcopy(model)
    fp16.lm_head = torch.nn.Linear(*reversed(LM_HEAD), bias=False)  # untie: the loop rounds the head alone
    fp16.lm_head.weight.data = model.lm_head.weight.data.clone()
    for module in fp16.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data = module.weight.data.half().float()
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear: torch.ao.quantization.
                                                                          per_channel_dynamic_qconfig})
    config = GenerationConfig(max_new_tokens=128, do_sample=True, temperature=1.0, top_k=0, pad_token_id=2,
                              eos_token_id=[2])
    stats = {"fp16": [], "int8_dynamic": []}
    for name, sampler in (("fp16", fp16), ("int8_dynamic", int8)):
        torch.manual_seed(seed)
        for prompt in prompts:  # the sampler's own completions, scored by both policies
            ids = torch.tensor(prompt)
            with torch.no_grad():
                full = sampler.generate(input_ids=ids[None], generation_config=config,
                                        attention_mask=torch.ones(1, len(prompt), dtype=torch.long))[0]
            targets = full[len(prompt):]
            exact = F.log_softmax(_logits(model, full, len(prompt)), -1)
            other = F.log_softmax(_logits(sampler, full, len(prompt)), -1)
            delta = (exact - other).gather(-1, targets[:, None]).squeeze(-1)  # log p_trained - log p_sampler
            kl = (other.exp() * (other - exact)).sum(-1)
            stats[name].append((delta, kl, exact.argmax(-1) == other.argmax(-1)))
    out = {}
    for name, rows in stats.items():
        delta = torch.cat([d for d, _, _ in rows])
        kl, agree = torch.cat([k for _, k, _ in rows]), torch.cat([a for _, _, a in rows]).float()
        out[name] = {"tokens": delta.numel(), "mean_abs_dlogp": delta.abs().mean().item(),
                     "p99_abs_dlogp": delta.abs().quantile(0.99).item(), "max_abs_dlogp": delta.abs().max().item(),
                     "kl_per_token": kl.mean().item(),
                     "ratio_outside_0.8_1.25": ((delta.exp() < 0.8) | (delta.exp() > 1.25)).float().mean().item(),
                     "argmax_agrees": agree.mean().item()}
        print(name, {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out[name].items()}, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=16, help="GSM8K prompts for the mismatch")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--parts", nargs="+", default=["products", "generation", "mismatch"],
                   choices=["products", "generation", "mismatch"], help="which measurements to run (default all)")
    args = p.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinyr1.infra.cpu_features import cpu_name
    from tinyr1.infra.device import configure_cpu
    from tinyr1.models.loading import resolve_model
    from tinyr1.tasks.data import default_gsm8k_dir, load_prompt_rows

    threads = configure_cpu()
    print(f"{cpu_name()}, capability {torch.backends.cpu.get_cpu_capability()}, {int(threads)} thread(s)")
    path = resolve_model("smollm2-135m-instruct").path
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
               for r in load_prompt_rows(str(default_gsm8k_dir()), "train", limit=args.prompts)]
    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    result = {"cpu": cpu_name(), "capability": torch.backends.cpu.get_cpu_capability(), "threads": int(threads),
              "torch": torch.__version__}
    for part in args.parts:
        result[part] = (products() if part == "products" else generation(model, prompts[0]) if part == "generation"
                        else mismatch(model, prompts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
