"""What sampling can find: pass@k of a model, and how many GRPO groups would carry a signal, before any training.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pass_at_k.py --model outputs/demo/coldstart \\
        --dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=3 min_digits=1 max_digits=2 \\
        --split test --limit 200 --samples 8 --max_new_tokens 64 --json out.json

GRPO learns only from a group whose completions earn different rewards, and it can only make likelier what the
policy already samples. So the starting model's pass@k bounds what a run can find: a question no sample of k answers
right gives no right-answer signal at group size k. This samples ``--samples`` completions per question at the
training temperature and length, scores each with ``tinyr1.tasks.scoring.score_completion`` (the rule ``eval``
and the rewards share), and reports per correctness rule (strict: the ``<answer>`` block; recipe_reward: what the
``correctness`` reward pays for):

- ``pass_at``: the unbiased pass@k (Chen et al., 2021) for k = 1, 2, 4, ... up to ``--samples``;
- ``groups_with_signal``: the chance that a group of ``--group_size`` completions (GRPO's ``num_generations``),
  drawn from a question's samples, is neither all right nor all wrong, averaged over questions; with a
  correctness reward alone, the share of groups that would not be dropped by dynamic sampling;
- ``never_right`` / ``always_right``: questions with no / only right samples.

A benchmark, not a test; results and the command that made them go in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` right answers among ``n`` samples.

    >>> pass_at_k(8, 0, 4), pass_at_k(8, 8, 1), round(pass_at_k(8, 2, 4), 4)
    (0.0, 1.0, 0.7857)
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def group_has_signal(n: int, c: int, size: int) -> float:
    """Chance that ``size`` of the ``n`` samples, drawn without replacement, are neither all right nor all wrong.

    >>> group_has_signal(8, 0, 4), group_has_signal(8, 8, 4), round(group_has_signal(8, 4, 4), 4)
    (0.0, 0.0, 0.9714)
    """
    same = math.comb(c, size) + math.comb(n - c, size)
    return 1.0 - same / math.comb(n, size)


def summarize(right_counts: list[int], n: int, group_size: int) -> dict:
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    questions = len(right_counts)
    return {
        "pass_at": {str(k): round(sum(pass_at_k(n, c, k) for c in right_counts) / questions, 4) for k in ks},
        "groups_with_signal": round(sum(group_has_signal(n, c, group_size) for c in right_counts) / questions, 4)
        if group_size <= n else None,
        "never_right": sum(c == 0 for c in right_counts) / questions,
        "always_right": sum(c == n for c in right_counts) / questions,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model, folder or LoRA adapter folder")
    p.add_argument("--dataset_name", default="reasoning-gym:chain_sum")
    p.add_argument("--dataset_options", nargs="*", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--samples", type=int, default=8, help="completions per question (n)")
    p.add_argument("--group_size", type=int, default=4, help="GRPO's num_generations")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    if args.samples < 1 or args.temperature <= 0:
        p.error("--samples must be at least 1 and --temperature above 0 (pass@k needs sampling)")

    import torch

    from tinyr1.infra.device import configure_cpu
    from tinyr1.models.generation import generate_batch
    from tinyr1.models.loading import load_model_and_tokenizer
    from tinyr1.tasks.answers import SYSTEM_PROMPT
    from tinyr1.tasks.data import load_examples
    from tinyr1.tasks.rows import build_prompt
    from tinyr1.tasks.scoring import score_completion

    threads = configure_cpu()
    torch.manual_seed(args.seed)
    examples, _ = load_examples(args.dataset_name, args.split, args.limit, options=args.dataset_options)
    model, tokenizer = load_model_and_tokenizer(args.model, merge_adapter=True)
    model.eval()
    conversations = [build_prompt(ex["question"], SYSTEM_PROMPT) for ex in examples for _ in range(args.samples)]
    start = time.perf_counter()
    outputs = generate_batch(model, tokenizer, conversations, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, temperature=args.temperature, desc="sampling")
    seconds = time.perf_counter() - start
    scored = [score_completion(out.text, examples[i // args.samples]["answer"]) for i, out in enumerate(outputs)]
    report = {"model": args.model, "dataset": args.dataset_name, "dataset_options": args.dataset_options,
              "split": args.split, "questions": len(examples), "samples": args.samples,
              "temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "group_size": args.group_size,
              "threads": int(threads), "seconds": round(seconds, 1),
              "truncated_fraction": round(sum(o.truncated for o in outputs) / len(outputs), 4),
              "mean_completion_tokens": round(sum(o.num_tokens for o in outputs) / len(outputs), 1)}
    for rule in ("strict", "recipe_reward"):
        flags = [s[f"correct_{rule}"] for s in scored]
        counts = [sum(flags[q * args.samples:(q + 1) * args.samples]) for q in range(len(examples))]
        report[rule] = summarize(counts, args.samples, args.group_size)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
