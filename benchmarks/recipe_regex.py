"""How many completions would the recipe's own format regexes have rewarded? tinyr1's rewards vs the recipe's.

    .venv/bin/python benchmarks/recipe_regex.py outputs/grpo-coldstart/eval/after/samples.jsonl [more.jsonl ...]

Reads ``samples.jsonl`` files written by ``tinyr1 eval`` (or a run's ``eval/before|after``) and scores each
completion with tinyr1's format and correctness rewards and with the recipe's originals (``*_seed``: no
``re.DOTALL``, a trailing newline demanded, exact string equality). No model is loaded. Results of an
earlier version: CHANGELOG.md.
"""

import argparse
import json

from tinyr1.infra.files import read_jsonl
from tinyr1.tasks.rewards import REWARD_FUNCS

PAIRS = [("strict_format", "strict_format_seed"), ("soft_format", "soft_format_seed"),
         ("correctness", "correctness_seed")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("samples", nargs="+", help="samples.jsonl files from tinyr1 eval")
    args = p.parse_args()
    for path in args.samples:
        rows = read_jsonl(path)
        completions = [[{"role": "assistant", "content": r["completion"]}] for r in rows]
        answers = [r["answer"] for r in rows]
        rates = {}
        for name in (n for pair in PAIRS for n in pair):
            rewards = REWARD_FUNCS[name](completions=completions, answer=answers)
            rates[name] = round(sum(r > 0 for r in rewards) / len(rows), 3)
        print(json.dumps({"samples": path, "n": len(rows), "fraction_rewarded": rates}))


if __name__ == "__main__":
    main()
