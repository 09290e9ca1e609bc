"""Does bf16 speed up GRPO's sampling on this CPU? Tokens per second of the same sampled generation in fp32 and bf16.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generation_dtype.py [--prompts 4] [--max_new_tokens 128]

The offline SmolLM2-135M-Instruct, loaded once in each dtype, samples 8 completions per GSM8K train prompt at
temperature 1 (seed 0), 8 at a time, as a GRPO step does. Results go in docs/cpu-fast-path.md.
"""

import argparse
import json
import time

import torch

from tinyr1.infra.device import configure_cpu
from tinyr1.models.generation import generate_batch
from tinyr1.models.loading import load_model_and_tokenizer
from tinyr1.tasks.data import default_gsm8k_dir, load_prompt_rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--max_new_tokens", type=int, default=128)
    args = p.parse_args()
    threads = configure_cpu()
    rows = load_prompt_rows(str(default_gsm8k_dir()), "train", limit=args.prompts)
    conversations = [r["prompt"] for r in rows for _ in range(8)]
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct", dtype=dtype)
        model.eval()
        torch.manual_seed(0)
        start = time.perf_counter()
        outputs = generate_batch(model, tokenizer, conversations, max_new_tokens=args.max_new_tokens, batch_size=8,
                                 temperature=1.0, progress=False)
        seconds = time.perf_counter() - start
        tokens = sum(o.num_tokens for o in outputs)
        results[str(dtype).replace("torch.", "")] = {"seconds": round(seconds, 1), "tokens": tokens,
                                                     "tokens_per_second": round(tokens / seconds, 1)}
    print(json.dumps({"threads": threads, "prompts": args.prompts, "completions_per_prompt": 8,
                      "max_new_tokens": args.max_new_tokens, **results}, indent=2))


if __name__ == "__main__":
    main()
