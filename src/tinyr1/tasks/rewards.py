"""The recipe's five GRPO reward functions, in trl's calling convention, plus a registry by short name.
Looking a reward up by name or path and checking a user's function: ``tinyr1.tasks.reward_lookup``.

trl calls each function as ``f(prompts=..., completions=..., answer=[...], **other_columns)`` and logs its mean
as ``rewards/<__name__>/mean``; every function here keeps the recipe's name so the logs read exactly as the
recipe's did. ``completions`` is a list of ``[{"role": "assistant", "content": text}]`` for chat prompts or of
plain strings for text prompts; both are accepted. Parsing lives in ``tinyr1.tasks.answers`` (shared with eval).

    python -m pytest --doctest-modules src/tinyr1/tasks/rewards.py

The defaults differ from the recipe in two documented ways (the recipe's versions are kept as ``*_seed``):
format patterns match multi-line reasoning (``re.DOTALL``) and ignore trailing whitespace, and correctness
compares numbers after normalising (``72.0``, ``$72`` and ``72`` are equal).

``correctness`` keeps the recipe's answer rule (a bare right number without tags earns 2.0, as in the tutorial);
every other place that asks "is this answer right?" (eval, the probe, the summaries, ``correctness_flexible``)
uses ``answers.is_correct``, which needs the ``<answer>`` block for strict scoring.
"""

from __future__ import annotations

from collections.abc import Callable

from tinyr1.tasks import answers

RewardFunc = Callable[..., list[float]]


def completion_text(completion) -> str:
    """The text of one completion, whether trl passed chat messages or a plain string.

    >>> completion_text([{"role": "assistant", "content": "hi"}]), completion_text("hi")
    ('hi', 'hi')
    """
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"] if completion else ""


def _texts(completions) -> list[str]:
    return [completion_text(c) for c in completions]


def chat(text: str) -> list[dict]:
    """Text wrapped the way trl passes a chat completion to a reward (doctests and sample calls)."""
    return [{"role": "assistant", "content": text}]


def correctness_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 when the answer (the recipe's ``extract_xml_answer``) equals the gold after normalising, else 0.0.

    The recipe's rule, kept as the tutorial has it: without tags the whole completion is the answer, so a bare
    right number earns 2.0 too. Strict scoring (``answers.is_correct``, eval's ``accuracy_strict``) needs the
    ``<answer>`` block; eval reports this rule as ``accuracy_recipe_reward``.

    >>> correctness_reward_func([chat("<answer>\\n$72.0\\n</answer>"), chat("<answer>71</answer>"), chat("72")],
    ...                         ["72"] * 3)
    [2.0, 0.0, 2.0]
    """
    return [2.0 if answers.answers_match(answers.extract_xml_answer(t), str(a)) else 0.0
            for t, a in zip(_texts(completions), answer, strict=True)]


def int_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the extracted answer is all digits (the recipe's ``.isdigit()``), else 0.0.

    >>> int_reward_func([chat("<answer>\\n72\\n</answer>"), chat("<answer>-3</answer>"), chat("")])
    [0.5, 0.0, 0.0]
    """
    return [0.5 if answers.extract_xml_answer(t).isdigit() else 0.0 for t in _texts(completions)]


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the completion is exactly ``<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>``.

    Multi-line reasoning counts; trailing whitespace is ignored.

    >>> strict_format_reward_func([chat("<reasoning>\\na\\nb\\n</reasoning>\\n<answer>\\n2\\n</answer>"), chat("2")])
    [0.5, 0.0]
    """
    return [0.5 if answers.is_strict_format(t) else 0.0 for t in _texts(completions)]


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the completion starts with ``<reasoning>...</reasoning>`` then ``<answer>...</answer>``.

    >>> soft_format_reward_func([chat("<reasoning>a\\nb</reasoning><answer>2</answer>"), chat("!!!!")])
    [0.5, 0.0]
    """
    return [0.5 if answers.is_soft_format(t) else 0.0 for t in _texts(completions)]


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's ``count_xml``: 0.125 for each of the four tags seen once, less 0.001 per character after.

    Kept exactly, quirk included: without a newline after ``</answer>`` the ``\\n<answer>\\n`` term subtracts
    0.001 per character of the *whole* completion, so a completion that ends right at ``</answer>`` scores less.

    >>> xmlcount_reward_func([chat("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n"), chat("!!!!")])
    [0.5, 0.0]
    >>> ends_at_tag = chat("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n2\\n</answer>")
    >>> [round(r, 3) for r in xmlcount_reward_func([ends_at_tag])]
    [0.454]
    """
    return [answers.count_xml(t) for t in _texts(completions)]


def correctness_seed_reward_func(completions, answer, **kwargs) -> list[float]:
    """The recipe's correctness exactly: 2.0 only on exact string equality (so ``72.0`` != ``72``).

    >>> correctness_seed_reward_func([chat("<answer>\\n72\\n</answer>"), chat("<answer>72.0</answer>")], ["72"] * 2)
    [2.0, 0.0]
    """
    texts = _texts(completions)
    return [2.0 if answers.extract_xml_answer(t) == a else 0.0 for t, a in zip(texts, answer, strict=True)]


def strict_format_seed_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's strict format exactly: no DOTALL, so multi-line reasoning scores 0; needs a final newline.

    >>> strict_format_seed_reward_func([chat("<reasoning>\\na\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n"),
    ...                                 chat("<reasoning>\\na\\nb\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n")])
    [0.5, 0.0]
    """
    return [0.5 if answers.STRICT_FORMAT_SEED.match(t) else 0.0 for t in _texts(completions)]


def soft_format_seed_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's soft format exactly: no DOTALL, so a newline inside a block scores 0.

    >>> soft_format_seed_reward_func([chat("<reasoning>a</reasoning><answer>2</answer>"),
    ...                               chat("<reasoning>a\\nb</reasoning><answer>2</answer>")])
    [0.5, 0.0]
    """
    return [0.5 if answers.SOFT_FORMAT_SEED.match(t) else 0.0 for t in _texts(completions)]


# ---------------------------------------------------------------- rewards for right-and-reasoned answers
# The recipe's five pay 2.0 of their 4.0 for form alone; a model that rarely answers right learns the form and
# shortens its reasoning to a number (docs/results.md). These pay for the right number, negative or decimal, and
# for a format that holds at least one worked step, so the shortest well-formed answer no longer wins.


def number_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the answer inside ``<answer>`` is a number, negative and decimal included (``int`` pays 0 for -4).

    >>> number_reward_func([chat("<answer>\\n-4\\n</answer>"), chat("<answer>2.5</answer>"),
    ...                     chat("<answer>x</answer>")])
    [0.5, 0.5, 0.0]
    """
    return [0.5 if answers.is_number(answers.extract_xml_answer(t)) and "<answer>" in t else 0.0
            for t in _texts(completions)]


def correctness_flexible_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 when strict-correct (``answers.is_correct``: the last ``<answer>`` block equals the gold); 1.0 when there
    is no closed answer block and the last number is right (flexible-correct); else 0.0.

    Negative and decimal answers count (``-4`` equals ``-4.0``). The partial credit gives a model that does not
    yet write the tags a signal for being right; a wrong tagged answer earns nothing, whatever numbers follow.

    >>> correctness_flexible_reward_func([chat("<answer>\\n-4\\n</answer>"), chat("3 - 7 = -4"),
    ...                                   chat("<answer>4</answer>"), chat("no number"), chat("<answer>\\n-4")],
    ...                                  ["-4"] * 5)
    [2.0, 1.0, 0.0, 0.0, 1.0]
    """
    scores = []
    for text, gold in zip(_texts(completions), answer, strict=True):
        if answers.strict_answer(text) is not None:
            scores.append(2.0 if answers.is_correct(text, str(gold), scoring="strict") else 0.0)
        else:
            scores.append(1.0 if answers.is_correct(text, str(gold), scoring="flexible") else 0.0)
    return scores


def reasoned_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the completion has the reasoning-then-answer form *and* its reasoning shows a worked step.

    A step is an arithmetic expression with its result (``answers.has_worked_step``), so the collapsed answer
    ``<reasoning>1</reasoning><answer>1</answer>`` earns nothing here.

    >>> reasoned_format_reward_func([chat("<reasoning>\\n3 + 4 = 7\\n</reasoning>\\n<answer>\\n7\\n</answer>"),
    ...                              chat("<reasoning>\\n7\\n</reasoning>\\n<answer>\\n7\\n</answer>"),
    ...                              chat("3 + 4 = 7")])
    [0.5, 0.0, 0.0]
    """
    return [0.5 if answers.is_soft_format(t) and answers.has_worked_step(t) else 0.0 for t in _texts(completions)]


def correct_and_reasoned_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 only when the tagged answer is right *and* the reasoning shows a worked step, else 0.0.

    >>> correct_and_reasoned_reward_func([chat("<reasoning>\\n3 - 7 = -4\\n</reasoning>\\n<answer>\\n-4\\n</answer>"),
    ...                                   chat("<reasoning>\\n-4\\n</reasoning>\\n<answer>-4</answer>")], ["-4"] * 2)
    [2.0, 0.0]
    """
    return [2.0 if answers.has_worked_step(t) and answers.answers_match(answers.extract_xml_answer(t), str(a))
            else 0.0 for t, a in zip(_texts(completions), answer, strict=True)]


REWARD_FUNCS: dict[str, RewardFunc] = {
    "xmlcount": xmlcount_reward_func,
    "soft_format": soft_format_reward_func,
    "strict_format": strict_format_reward_func,
    "int": int_reward_func,
    "correctness": correctness_reward_func,
    "correctness_seed": correctness_seed_reward_func,
    "strict_format_seed": strict_format_seed_reward_func,
    "soft_format_seed": soft_format_seed_reward_func,
    "number": number_reward_func,
    "correctness_flexible": correctness_flexible_reward_func,
    "reasoned_format": reasoned_format_reward_func,
    "correct_and_reasoned": correct_and_reasoned_reward_func,
}
# The recipe's five, in the recipe's order (its logs list them in this order).
DEFAULT_REWARDS = ["xmlcount", "soft_format", "strict_format", "int", "correctness"]
# Right and reasoned: correctness that takes negative/decimal numbers, a format that needs a worked step.
REASONED_REWARDS = ["correctness", "reasoned_format", "number"]


def correctness_index(names: list[str]) -> int | None:
    """Which of a run's rewards says a completion is right (the first whose name starts with ``correct``), for
    every place that needs "right" from training rewards: dynamic sampling's all-right / all-wrong counts and the
    curriculum's pass rates. None where no reward does.

    >>> correctness_index(["xmlcount_reward_func", "correctness_reward_func"]), correctness_index(["int"])
    (1, None)
    """
    return next((i for i, name in enumerate(names) if name.startswith("correct")), None)
