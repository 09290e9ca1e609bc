"""Evaluation throughput: batched generation vs one question at a time, on the offline SmolLM2-135M-Instruct.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_throughput.py [--questions 16] [--max_new_tokens 128]

Both runs use tinyr1.models.generation.generate_batch (greedy, the recipe's system prompt, the first N GSM8K test
questions); only the batch size differs. Tokens per second count real completion tokens (up to each question's
end-of-turn token), never padding. Results go in docs/benchmarks.md.
"""

import argparse
import json
import time

import torch

from tinyr1.infra.device import configure_cpu
from tinyr1.models.generation import generate_batch
from tinyr1.models.loading import load_model_and_tokenizer
from tinyr1.tasks.data import default_gsm8k_dir, load_examples
from tinyr1.tasks.rows import build_prompt


def run(model, tokenizer, conversations, batch_size, max_new_tokens):
    start = time.perf_counter()
    outputs = generate_batch(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             progress=False)
    seconds = time.perf_counter() - start
    tokens = sum(o.num_tokens for o in outputs)
    return {"batch_size": batch_size, "seconds": round(seconds, 2), "tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--questions", type=int, default=16)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    args = p.parse_args()
    threads = configure_cpu()
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct")
    model.eval()
    examples, _ = load_examples(str(default_gsm8k_dir()), "test", limit=args.questions)
    conversations = [build_prompt(ex["question"]) for ex in examples]
    run(model, tokenizer, conversations[:2], 2, 8)  # warm-up
    single = run(model, tokenizer, conversations, 1, args.max_new_tokens)
    batched = run(model, tokenizer, conversations, args.batch_size, args.max_new_tokens)
    print(json.dumps({"questions": args.questions, "max_new_tokens": args.max_new_tokens, "threads": threads,
                      "torch": torch.__version__, "one_at_a_time": single, "batched": batched,
                      "speedup": round(batched["tokens_per_second"] / single["tokens_per_second"], 2)}, indent=2))


if __name__ == "__main__":
    main()
