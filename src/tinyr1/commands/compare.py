"""``tinyr1 compare``: the same questions to a base and a trained model, answers side by side.

    tinyr1 compare --base smollm2-135m-instruct --trained outputs/my-run
    tinyr1 compare --base M1 --trained M2 --prompt "What is 12 * 7?" --output compare.md
    tinyr1 compare --evals outputs/eval-before outputs/eval-after     # two tinyr1 eval folders, same questions

With ``--evals`` no model loads: the two folders' verdicts on the same questions are paired (wrong->right and
right->wrong counts, the difference with its 95% interval, the exact McNemar p-value: ``tinyr1.tasks.statistics``).

The recipe tinyr1 reproduces judged its run by asking one question before and after training; that question is
the default here. Greedy decoding and the same system prompt for both models; each answer is shown with what
``tinyr1.tasks.answers`` extracts from it and which format rewards it earns. ``--output`` never replaces a file
tinyr1 did not write (``tinyr1.infra.paths``) and is written atomically.
"""

from __future__ import annotations

import argparse
import sys

from tinyr1.evaluation.compare import DEFAULT_PROMPT, answer_both, compare_evals, to_markdown, verdict, write_output
from tinyr1.infra.errors import TinyR1Error, one_line_errors
from tinyr1.infra.naming import command_line, setting
from tinyr1.infra.options import parse_command
from tinyr1.run_folder import ownership
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.scoring import METRIC_FLAGS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyr1 compare", description="Ask the same questions of two models "
                                "(greedy, same system prompt) and show the answers side by side.")
    p.add_argument("--base", help="the model before training (any form train accepts)")
    p.add_argument("--trained", help="the model after training, e.g. a run's output_dir")
    p.add_argument("--evals", nargs=2, metavar=("BEFORE", "AFTER"), help="instead of two models: two tinyr1 eval "
                   "folders of the same questions, compared question by question (no model loads)")
    p.add_argument("--metric", default="accuracy_strict", choices=tuple(METRIC_FLAGS),
                   help="with --evals: the verdict compared (default accuracy_strict)")
    p.add_argument("--prompt", action="append", help="a question; repeat for several (default: the recipe's "
                   "Xiao Ming apples question)")
    p.add_argument("--max_new_tokens", type=int, default=256, help="generation length (default 256)")
    p.add_argument("--system_prompt", default=SYSTEM_PROMPT, help="system prompt (default: the recipe's)")
    p.add_argument("--output", help="also write the comparison as Markdown to this file")

    return one_line_errors(p, "tinyr1 compare")


def parse_args(argv: list[str] | None = None, *, values: dict | None = None,
               caller: str | None = None) -> argparse.Namespace:
    args = parse_command(build_parser(), argv, values, caller)
    two_models = bool(args.base and args.trained)
    if (args.evals and (args.base or args.trained)) or not (args.evals or two_models):
        raise TinyR1Error(f"give {setting('base')} and {setting('trained')} (two models) or {setting('evals')} "
                          "BEFORE AFTER (two eval folders)")
    if args.output is not None:  # checked before two models generate, not after; never a file of the user's
        ownership.check_file(args.output, "compare", setting("output"))
    if two_models:
        from tinyr1.models.loading import check_context, local_config  # lazy: loads torch; --evals needs none

    for model in (args.base, args.trained) if two_models else ():
        check_context(local_config(model), model, [(setting("max_new_tokens"), args.max_new_tokens)])
    return args


@command_line
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.evals:
        lines = compare_evals(*args.evals, args.metric)
        print("\n".join(lines))
        if args.output:
            write_output(args.output, "\n".join(["# Paired comparison", "", *(f"- {line}" for line in lines), ""]))
            print(f"wrote {args.output}")
        return 0
    from tinyr1.infra.device import configure_cpu  # lazy: loads torch, which --evals needs not

    configure_cpu()
    prompts = args.prompt or [DEFAULT_PROMPT]
    answers = answer_both(args.base, args.trained, prompts, args.max_new_tokens, args.system_prompt)
    show(args.base, args.trained, prompts, *answers)
    if args.output:
        write_output(args.output, to_markdown(args.base, args.trained, prompts, *answers))
        print(f"wrote {args.output}")
    return 0


def show(base: str, trained: str, prompts: list[str], base_answers: list[str], trained_answers: list[str]) -> None:
    """Rich panels side by side in a terminal; plain text when piped."""
    from rich.columns import Columns
    from rich.console import Console
    from rich.panel import Panel

    console = Console()
    for prompt, before, after in zip(prompts, base_answers, trained_answers, strict=True):
        if console.is_terminal:
            console.rule(prompt)
            console.print(Columns([Panel(before.strip(), title=f"base: {base}", subtitle=verdict(before)),
                                   Panel(after.strip(), title=f"trained: {trained}", subtitle=verdict(after))],
                                  equal=True, expand=True))
        else:
            print(f"=== {prompt}")
            for label, text in (("base", before), ("trained", after)):
                print(f"--- {label}: {base if label == 'base' else trained} ({verdict(text)})\n{text.strip()}")


if __name__ == "__main__":
    sys.exit(main())
