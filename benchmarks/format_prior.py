"""How likely is a model to start its answer in the recipe's format? The evidence behind "GRPO alone cannot start".

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/format_prior.py [--model smollm2-135m-instruct] [--questions 50]

GRPO learns only from differences between the completions of one prompt. The strict and soft format rewards need a
completion that *starts* with ``<reasoning>``; if the model practically never samples that opening, every group
scores the same, every advantage is zero, and no step changes the weights. This script teacher-forces the opening
``<reasoning>\\n`` right after the chat template's assistant header for the first N GSM8K train prompts (the
recipe's system prompt) and reports the probability of sampling it at temperature 1: per prompt, its median and
maximum, and how many completions one would have to sample to see it once, at each ``--temperatures``
value. Results of an earlier version: CHANGELOG.md.
"""

import argparse
import json
import math

import torch

from tinyr1.infra.device import configure_cpu
from tinyr1.models.loading import load_model_and_tokenizer
from tinyr1.tasks.data import default_gsm8k_dir, load_prompt_rows

OPENING = "<reasoning>\n"


def opening_logprob(model, tokenizer, conversation: list[dict], opening: str = OPENING,
                    temperatures: tuple[float, ...] = (1.0,)) -> list[float]:
    """Natural-log probability, per sampling temperature, that the model's reply begins with ``opening``."""
    prompt = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    opening_ids = tokenizer(opening, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + opening_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1].float()
    targets = ids[0, len(prompt_ids):, None]
    return [torch.log_softmax(logits / t, dim=-1).gather(-1, targets).sum().item() for t in temperatures]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--questions", type=int, default=50)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 1.2, 1.5])
    args = p.parse_args()
    configure_cpu()
    model, tokenizer = load_model_and_tokenizer(args.model)
    model.eval()
    rows = load_prompt_rows(str(default_gsm8k_dir()), "train", limit=args.questions)
    per_prompt = [opening_logprob(model, tokenizer, r["prompt"], temperatures=tuple(args.temperatures)) for r in rows]
    report = {}
    for k, temperature in enumerate(args.temperatures):
        logps = sorted(lp[k] for lp in per_prompt)
        median = logps[len(logps) // 2]
        report[f"temperature {temperature}"] = {
            "median_probability": f"{math.exp(median):.2e}", "max_probability": f"{math.exp(logps[-1]):.2e}",
            "samples_to_see_it_once_at_median": f"{math.exp(-median):.2e}"}
    print(json.dumps({"model": args.model, "opening": OPENING, "questions": len(rows),
                      "opening_tokens": len(tokenizer(OPENING, add_special_tokens=False)["input_ids"]), **report},
                     indent=2))


if __name__ == "__main__":
    main()
