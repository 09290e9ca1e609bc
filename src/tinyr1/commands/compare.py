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
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.tasks.answers import SYSTEM_PROMPT, extract_xml_answer, is_soft_format, is_strict_format
from tinyr1.tasks.scoring import METRIC_FLAGS

DEFAULT_PROMPT = "Xiao Ming bought 4 apples, ate 1, and gave 1 to his sister. How many apples were left?"


def _answers(model_name, prompts: list[str], system_prompt: str, max_new_tokens: int) -> list[str]:
    from tinyr1.models.generation import generate_batch
    from tinyr1.models.loading import load_model_and_tokenizer
    from tinyr1.tasks.data import build_prompt

    model, tokenizer = load_model_and_tokenizer(model_name)
    model.eval()
    outputs = generate_batch(model, tokenizer, [build_prompt(p, system_prompt) for p in prompts],
                             max_new_tokens=max_new_tokens, progress=False)
    return [o.text for o in outputs]


def verdict(text: str) -> str:
    """One line: the extracted answer and the format rewards earned.

    >>> verdict("<reasoning>\\n4-1-1=2\\n</reasoning>\\n<answer>\\n2\\n</answer>")
    'extracted: 2 | strict format: yes | soft format: yes'
    """
    yes = {True: "yes", False: "no"}
    return (f"extracted: {extract_xml_answer(text)[:60]} | strict format: {yes[is_strict_format(text)]} | "
            f"soft format: {yes[is_soft_format(text)]}")


def to_markdown(base: str, trained: str, prompts: list[str], base_answers: list[str],
                trained_answers: list[str]) -> str:
    lines = [f"# Before and after: `{base}` vs `{trained}`", ""]
    for prompt, before, after in zip(prompts, base_answers, trained_answers, strict=True):
        lines += [f"## {prompt}", ""]
        for label, text in ((f"base: `{base}`", before), (f"trained: `{trained}`", after)):
            lines += [f"**{label}** — {verdict(text)}", "", "```text", text.strip(), "```", ""]
    return "\n".join(lines)


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


def compare(base: str, trained: str, prompts: list[str] | None = None, *, output: str | Path | None = None,
            max_new_tokens: int = 256, system_prompt: str = SYSTEM_PROMPT, display: bool = False) -> str:
    """Ask each prompt of both models; return (and optionally write) the Markdown."""
    from tinyr1.models.loading import resolve_model

    prompts = prompts or [DEFAULT_PROMPT]
    resolved = [resolve_model(base), resolve_model(trained)]  # a missing model fails before the other one loads
    base_answers = _answers(resolved[0], prompts, system_prompt, max_new_tokens)
    trained_answers = _answers(resolved[1], prompts, system_prompt, max_new_tokens)
    markdown = to_markdown(base, trained, prompts, base_answers, trained_answers)
    if display:
        show(base, trained, prompts, base_answers, trained_answers)
    if output is not None:
        _write_output(output, markdown)
    return markdown


def _write_output(output: str | Path, markdown: str) -> None:
    from tinyr1.infra.files import write_text
    from tinyr1.infra.paths import make_dirs, mark_written

    make_dirs(Path(output).parent, "--output")
    write_text(output, markdown)  # atomically: a full disk leaves the old file or none, never half of one
    mark_written(Path(output).expanduser(), "compare")  # so a later compare may replace it, and nothing else


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
    from tinyr1.infra.errors import one_line_errors

    return one_line_errors(p, "tinyr1 compare")


def parse_args(argv: list[str] | None = None, *, values: dict | None = None,
               caller: str | None = None) -> argparse.Namespace:
    from tinyr1.infra.options import parse_command
    from tinyr1.infra.paths import check_output_file

    args = parse_command(build_parser(), argv, values, caller)
    two_models = bool(args.base and args.trained)
    if (args.evals and (args.base or args.trained)) or not (args.evals or two_models):
        raise TinyR1Error("give --base and --trained (two models) or --evals BEFORE AFTER (two eval folders)")
    if args.output is not None:  # checked before two models generate, not after; never a file of the user's
        check_output_file(args.output, "--output", owner="compare")
    return args


def compare_evals(before: str, after: str, metric: str = "accuracy_strict") -> list[str]:
    """The paired comparison of two eval folders, as lines of text."""
    from tinyr1.tasks.statistics import describe_paired, paired_evals

    return [f"before: {before}", f"after:  {after}",
            *describe_paired(paired_evals(before, after, METRIC_FLAGS[metric]), metric)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.evals:
        lines = compare_evals(*args.evals, args.metric)
        print("\n".join(lines))
        if args.output:
            _write_output(args.output, "\n".join(["# Paired comparison", "", *(f"- {line}" for line in lines), ""]))
            print(f"wrote {args.output}")
        return 0
    from tinyr1.infra.device import configure_cpu

    configure_cpu()
    compare(args.base, args.trained, args.prompt, output=args.output, max_new_tokens=args.max_new_tokens,
            system_prompt=args.system_prompt, display=True)
    if args.output:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
