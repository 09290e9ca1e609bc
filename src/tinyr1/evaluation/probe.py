"""Does GRPO have a signal here? Sample k completions for N prompts and measure what the advantage needs.

GRPO learns only from groups whose completions score differently. Before spending an hour of CPU on a task, sample
a group per prompt the way training will (same system prompt, temperature, length) and count: mean accuracy of the
samples, pass@k (some sample right), the fraction of groups with any variance in correctness and in the summed
rewards, mean length, truncation and worked-step fraction; plus greedy accuracy on more prompts, which is what
``tinyr1 eval`` will measure. ``benchmarks/probe.py`` is the command line:

    OMP_NUM_THREADS=1 python benchmarks/probe.py --model smollm2-135m-instruct \\
        --dataset_name reasoning-gym:chain_sum --dataset_options min_terms=2 max_terms=2 max_digits=1
"""

from __future__ import annotations

import argparse
import json
import time

from tinyr1.infra.device import configure_cpu
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.paths import make_dirs, mark_written
from tinyr1.infra.validate import GRPO_RULES, at_least, check, flag_source, non_negative
from tinyr1.models.generation import generate_batch
from tinyr1.models.loading import load_model_and_tokenizer
from tinyr1.run_folder import ownership
from tinyr1.tasks import answers
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.data import load_examples, local_source_files
from tinyr1.tasks.reasoning_gym import check_dataset_options
from tinyr1.tasks.reward_lookup import get_reward_funcs
from tinyr1.tasks.rows import build_prompt


def group_stats(groups: list[list[dict]]) -> dict:
    """Summary of sampled groups; each sample is ``{"correct", "reward", "num_tokens", "truncated", "worked_step"}``.

    >>> g = [[{"correct": True, "reward": 2.5, "num_tokens": 10, "truncated": False, "worked_step": True},
    ...       {"correct": False, "reward": 0.5, "num_tokens": 30, "truncated": True, "worked_step": False}],
    ...      [{"correct": False, "reward": 0.0, "num_tokens": 20, "truncated": False, "worked_step": False}] * 2]
    >>> s = group_stats(g)
    >>> s["sampled_accuracy"], s["pass_at_k"], s["groups_with_correctness_variance"], s["groups_with_reward_variance"]
    (0.25, 0.5, 0.5, 0.5)
    >>> s["mean_tokens"], s["truncated_fraction"], s["worked_step_fraction"]
    (20.0, 0.25, 0.25)
    """
    flat = [s for g in groups for s in g]
    n = len(flat)
    return {
        "sampled_accuracy": sum(s["correct"] for s in flat) / n,
        "pass_at_k": sum(any(s["correct"] for s in g) for g in groups) / len(groups),
        "groups_with_correctness_variance": sum(len({s["correct"] for s in g}) > 1 for g in groups) / len(groups),
        "groups_with_reward_variance": sum(len({round(s["reward"], 6) for s in g}) > 1 for g in groups) / len(groups),
        "mean_tokens": sum(s["num_tokens"] for s in flat) / n,
        "truncated_fraction": sum(s["truncated"] for s in flat) / n,
        "worked_step_fraction": sum(s["worked_step"] for s in flat) / n,
    }


def sample_groups(model, tokenizer, examples: list[dict], funcs: list, k: int, max_new_tokens: int,
                  temperature: float, system_prompt: str) -> list[dict]:
    """Each example's prompt sampled ``k`` times, as GRPO samples a group, and scored by each reward function:
    per group ``{"example", "outputs"`` (``tinyr1.models.generation.Generation``), ``"rewards"`` (k rows, one
    value or None per function)``}``."""
    groups = []
    for example in examples:
        conversations = [build_prompt(example["question"], system_prompt)] * k
        outs = generate_batch(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=k,
                              temperature=temperature, progress=False)
        chats = [[{"role": "assistant", "content": o.text}] for o in outs]
        columns = [f(prompts=conversations, completions=chats, answer=[example["answer"]] * k) for f in funcs]
        rows = [list(row) for row in zip(*columns, strict=True)]
        groups.append({"example": example, "outputs": outs, "rewards": rows})
    return groups


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model, run folder or SFT adapter folder")
    p.add_argument("--dataset_name", default="reasoning-gym:chain_sum")
    p.add_argument("--dataset_options", nargs="+", metavar="KEY=VALUE", help="reasoning-gym generator options")
    p.add_argument("--split", default="train")
    p.add_argument("--greedy_questions", type=int, default=48, help="questions answered greedily (0: skip)")
    p.add_argument("--prompts", type=int, default=16, help="prompts sampled k times each")
    p.add_argument("--k", type=int, default=8, help="samples per prompt (GRPO's num_generations)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--scoring", choices=["flexible", "strict"], default="flexible",
                   help="flexible: last number in the text; strict: the last <answer> block "
                   "(tinyr1.tasks.answers.is_correct)")
    p.add_argument("--reward_funcs", default="correctness,reasoned_format,number",
                   help="rewards summed for the reward-variance column (comma-separated registry names)")
    p.add_argument("--reward_weights", type=float, nargs="+", help="weights for --reward_funcs (default 1 each)")
    p.add_argument("--system_prompt", default=SYSTEM_PROMPT)
    p.add_argument("--output", help="also write the result as JSON here")
    return p


def check_args(args) -> None:
    """Ranges and the data's options, before the model loads: one line naming the flag."""
    check(vars(args), flag_source, {**GRPO_RULES, "k": at_least(2), "prompts": at_least(1),
                                    "greedy_questions": non_negative()})
    check_dataset_options(args.dataset_name, args.dataset_options)
    if args.output:  # never a file of the user's, nor the data it reads (tinyr1.infra.paths)

        ownership.check_file(args.output, "probe", setting("output"),
                             inputs=local_source_files(args.dataset_name, args.split))


@command_line
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    check_args(args)
    configure_cpu()
    funcs = get_reward_funcs(args.reward_funcs)
    weights = args.reward_weights or [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise TinyR1Error(f"{setting('reward_weights')}: {len(weights)} weights for {len(funcs)} reward_funcs "
                          f"({args.reward_funcs}); give one weight per reward")
    started = time.time()
    model, tokenizer = load_model_and_tokenizer(args.model)
    model.eval()
    count = max(args.greedy_questions, args.prompts)
    examples, _ = load_examples(args.dataset_name, args.split, count, options=args.dataset_options)
    result = {"model": args.model, "dataset": args.dataset_name, "dataset_options": args.dataset_options,
              "temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "scoring": args.scoring,
              "reward_funcs": args.reward_funcs, "reward_weights": weights}
    if args.greedy_questions:
        chosen = examples[:args.greedy_questions]
        outs = generate_batch(model, tokenizer, [build_prompt(e["question"], args.system_prompt) for e in chosen],
                              max_new_tokens=args.max_new_tokens, progress=False)
        result["greedy_questions"] = len(chosen)
        result["greedy_accuracy"] = sum(answers.is_correct(o.text, e["answer"], scoring=args.scoring)
                                        for o, e in zip(outs, chosen, strict=True)) / len(chosen)
        result["greedy_accuracy_strict"] = sum(answers.is_correct(o.text, e["answer"], scoring="strict")
                                               for o, e in zip(outs, chosen, strict=True)) / len(chosen)
        result["greedy_mean_tokens"] = sum(o.num_tokens for o in outs) / len(outs)
        result["greedy_worked_step_fraction"] = sum(answers.has_worked_step(o.text) for o in outs) / len(outs)
    groups = []
    for group in sample_groups(model, tokenizer, examples[:args.prompts], funcs, args.k, args.max_new_tokens,
                               args.temperature, args.system_prompt):
        gold = group["example"]["answer"]
        totals = [sum(w * (r or 0.0) for w, r in zip(weights, row, strict=True)) for row in group["rewards"]]
        groups.append([{"correct": answers.is_correct(o.text, gold, scoring=args.scoring), "reward": t,
                        "num_tokens": o.num_tokens, "truncated": o.truncated,
                        "worked_step": answers.has_worked_step(o.text), "text": o.text}
                       for o, t in zip(group["outputs"], totals, strict=True)])
    result.update(prompts=len(groups), k=args.k, **group_stats(groups))
    result["mean_reward"] = sum(s["reward"] for g in groups for s in g) / sum(len(g) for g in groups)
    result["example"] = groups[0][0]["text"][:300] if groups else None
    result["seconds"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        from pathlib import Path


        output = Path(args.output).expanduser()
        make_dirs(output.parent, setting("output"))
        write_text(output, text + "\n")
        mark_written(output, "probe")
    return result
