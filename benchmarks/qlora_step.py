"""A LoRA SFT step on 4-bit weights (QLoRA, bitsandbytes) against the same step on 16-bit weights (the numbers
behind docs/benchmarks.md#qlora-against-16-bit-lora).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qlora_step.py                       # SmolLM2-135M-Instruct
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qlora_step.py --steps 3 --tokens 128

Both models load as ``tinyr1 sft`` loads them (``tinyr1.models.quantization``, the precision plan of this machine),
get the recipe's LoRA (r 16 on every linear layer) and take ``--steps`` AdamW steps of the same batch (``--rows`` x
``--tokens``, labels = inputs) under the plan's autocast; the first step of each is a warm-up and is not counted. The
two alternate ``--rounds`` times in one process. Printed: median seconds per step, the base model's size in memory
(``get_memory_footprint``) and the loss after the last step (close for both: the same data, nearly the same
weights).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from types import SimpleNamespace

import torch


def load(name: str, four_bit: bool):
    from peft import LoraConfig, get_peft_model

    from tinyr1.models import loading, precision, quantization

    plan = precision.choose_precision(None, lora=True)
    model_args = SimpleNamespace(load_in_4bit=four_bit, load_in_8bit=False, bnb_4bit_quant_type="nf4",
                                 use_bnb_nested_quant=False, bnb_4bit_quant_storage=None)
    # 16-bit: the LoRA base in the plan's 16-bit type where it has one (as on a GPU); 4-bit: nf4 computed in it.
    dtype = quantization.compute_dtype(plan)
    model = loading.load_model(name, dtype=dtype, device=None, **quantization.load_kwargs(model_args, plan))
    quantization.prepare_for_training(model)
    footprint = model.get_memory_footprint() / 2**20
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)
    for param in model.parameters():  # adapters train in fp32 (AdamW steps below bf16's resolution otherwise)
        if param.requires_grad:
            param.data = param.data.float()
    said = quantization.describe(model_args, plan) or f"; weights {str(dtype).replace('torch.', '')}"
    return model, plan, said, footprint


def steps(model, plan, ids, count: int) -> tuple[list[float], float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if plan.bf16 else contextlib.nullcontext()
    model.train()
    times, loss = [], float("nan")
    for _ in range(count + 1):
        start = time.perf_counter()
        with autocast:
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        loss = float(out.loss.detach())
    return times[1:], loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()

    from tinyr1.infra.device import configure_cpu
    from tinyr1.models.loading import load_tokenizer

    threads = configure_cpu()
    tokenizer = load_tokenizer(args.model)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, len(tokenizer) - 100, (args.rows, args.tokens), generator=generator)
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for four_bit in (False, True):
            model, plan, said, footprint = load(args.model, four_bit)
            seconds, loss = steps(model, plan, ids, args.steps)
            row = results.setdefault("4-bit nf4" if four_bit else "16-bit", {"times": [], "said": said})
            row["times"] += seconds
            row.update(loss=loss, footprint=footprint)
            del model
    print(f"{args.model}, {args.rows} x {args.tokens} tokens, LoRA r 16 on every linear layer, "
          f"{threads} thread(s); {plan.reason}")
    print("| base weights | s/step (median) | loss after the last step | model in memory (MiB) |")
    print("|---|---:|---:|---:|")
    for name, row in results.items():
        print(f"| {name}{row['said'].replace(';', ' —')} | {statistics.median(row['times']):.2f} | "
              f"{row['loss']:.3f} | {row['footprint']:.0f} |")


if __name__ == "__main__":
    main()
