"""Two models' answers to the same questions, side by side (what ``tinyr1 compare`` and train's closing comparison
run), and two evaluations of the same questions paired question by question (``tinyr1 compare --evals``)."""

from __future__ import annotations

from pathlib import Path

from tinyr1.infra.files import write_text
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import make_dirs, mark_written
from tinyr1.tasks.answers import SYSTEM_PROMPT, is_soft_format, is_strict_format, strict_answer
from tinyr1.tasks.scoring import METRIC_FLAGS, paired_evals
from tinyr1.tasks.statistics import describe_paired

DEFAULT_PROMPT = "Xiao Ming bought 4 apples, ate 1, and gave 1 to his sister. How many apples were left?"


def _answers(model_name, prompts: list[str], system_prompt: str, max_new_tokens: int) -> list[str]:
    from tinyr1.models.generation import generate_batch  # lazy: loads torch; scoring files needs none
    from tinyr1.models.loading import load_model_and_tokenizer  # lazy: loads torch; scoring files needs none
    from tinyr1.tasks.rows import build_prompt

    model, tokenizer = load_model_and_tokenizer(model_name)
    model.eval()
    outputs = generate_batch(model, tokenizer, [build_prompt(p, system_prompt) for p in prompts],
                             max_new_tokens=max_new_tokens, progress=False)
    return [o.text for o in outputs]


def verdict(text: str) -> str:
    """One line: the answer eval would score (inside a closed ``<answer>`` block, ``tasks.answers.strict_answer``)
    and the format rewards earned. Prose without the tags has no answer, rather than being shown as one.

    >>> verdict("<reasoning>\\n4-1-1=2\\n</reasoning>\\n<answer>\\n2\\n</answer>")
    'extracted: 2 | strict format: yes | soft format: yes'
    >>> verdict("Xiao Ming has 2 apples left.")
    'extracted: none (no <answer>...</answer> block) | strict format: no | soft format: no'
    """
    yes = {True: "yes", False: "no"}
    answer = strict_answer(text)
    shown = "none (no <answer>...</answer> block)" if answer is None else answer[:60]
    return (f"extracted: {shown} | strict format: {yes[is_strict_format(text)]} | "
            f"soft format: {yes[is_soft_format(text)]}")


def to_markdown(base: str, trained: str, prompts: list[str], base_answers: list[str],
                trained_answers: list[str]) -> str:
    lines = [f"# Before and after: `{base}` vs `{trained}`", ""]
    for prompt, before, after in zip(prompts, base_answers, trained_answers, strict=True):
        lines += [f"## {prompt}", ""]
        for label, text in ((f"base: `{base}`", before), (f"trained: `{trained}`", after)):
            lines += [f"**{label}** — {verdict(text)}", "", "```text", text.strip(), "```", ""]
    return "\n".join(lines)


def answer_both(base: str, trained: str, prompts: list[str], max_new_tokens: int = 256,
                system_prompt: str = SYSTEM_PROMPT) -> tuple[list[str], list[str]]:
    """Each prompt asked of both models, greedy: the base model's answers and the trained one's."""
    from tinyr1.models.loading import resolve_model  # lazy: loads torch; scoring files needs none

    resolved = [resolve_model(base), resolve_model(trained)]  # a missing model fails before the other one loads
    return (_answers(resolved[0], prompts, system_prompt, max_new_tokens),
            _answers(resolved[1], prompts, system_prompt, max_new_tokens))


def compare(base: str, trained: str, prompts: list[str] | None = None, *, output: str | Path | None = None,
            max_new_tokens: int = 256, system_prompt: str = SYSTEM_PROMPT) -> str:
    """Ask each prompt of both models; return (and optionally write) the Markdown."""
    prompts = prompts or [DEFAULT_PROMPT]
    markdown = to_markdown(base, trained, prompts, *answer_both(base, trained, prompts, max_new_tokens, system_prompt))
    if output is not None:
        write_output(output, markdown)
    return markdown


def write_output(output: str | Path, markdown: str) -> None:
    make_dirs(Path(output).parent, setting("output"))
    write_text(output, markdown)  # atomically: a full disk leaves the old file or none, never half of one
    mark_written(Path(output).expanduser(), "compare")  # so a later compare may replace it, and nothing else


def compare_evals(before: str, after: str, metric: str = "accuracy_strict") -> list[str]:
    """The paired comparison of two eval folders, as lines of text."""
    return [f"before: {before}", f"after:  {after}",
            *describe_paired(paired_evals(before, after, METRIC_FLAGS[metric]), metric)]
