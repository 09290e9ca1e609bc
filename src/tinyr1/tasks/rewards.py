"""The recipe's five GRPO reward functions, in trl's calling convention, plus a registry by short name.

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

import importlib
import inspect
import numbers
import os
from collections.abc import Callable

from tinyr1.infra.errors import TinyR1Error, first_line
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


def _chat(text: str) -> list[dict]:
    # Doctest helper: wrap text the way trl passes a chat completion.
    return [{"role": "assistant", "content": text}]


def correctness_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 when the answer (the recipe's ``extract_xml_answer``) equals the gold after normalising, else 0.0.

    The recipe's rule, kept as the tutorial has it: without tags the whole completion is the answer, so a bare
    right number earns 2.0 too. Strict scoring (``answers.is_correct``, eval's ``accuracy_strict``) needs the
    ``<answer>`` block; eval reports this rule as ``accuracy_recipe_reward``.

    >>> correctness_reward_func([_chat("<answer>\\n$72.0\\n</answer>"), _chat("<answer>71</answer>"), _chat("72")],
    ...                         ["72"] * 3)
    [2.0, 0.0, 2.0]
    """
    return [2.0 if answers.answers_match(answers.extract_xml_answer(t), str(a)) else 0.0
            for t, a in zip(_texts(completions), answer, strict=True)]


def int_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the extracted answer is all digits (the recipe's ``.isdigit()``), else 0.0.

    >>> int_reward_func([_chat("<answer>\\n72\\n</answer>"), _chat("<answer>-3</answer>"), _chat("")])
    [0.5, 0.0, 0.0]
    """
    return [0.5 if answers.extract_xml_answer(t).isdigit() else 0.0 for t in _texts(completions)]


def strict_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the completion is exactly ``<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>``.

    Multi-line reasoning counts; trailing whitespace is ignored.

    >>> strict_format_reward_func([_chat("<reasoning>\\na\\nb\\n</reasoning>\\n<answer>\\n2\\n</answer>"), _chat("2")])
    [0.5, 0.0]
    """
    return [0.5 if answers.is_strict_format(t) else 0.0 for t in _texts(completions)]


def soft_format_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the completion starts with ``<reasoning>...</reasoning>`` then ``<answer>...</answer>``.

    >>> soft_format_reward_func([_chat("<reasoning>a\\nb</reasoning><answer>2</answer>"), _chat("!!!!")])
    [0.5, 0.0]
    """
    return [0.5 if answers.is_soft_format(t) else 0.0 for t in _texts(completions)]


def xmlcount_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's ``count_xml``: 0.125 for each of the four tags seen once, less 0.001 per character after.

    Kept exactly, quirk included: without a newline after ``</answer>`` the ``\\n<answer>\\n`` term subtracts
    0.001 per character of the *whole* completion, so a completion that ends right at ``</answer>`` scores less.

    >>> xmlcount_reward_func([_chat("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n"), _chat("!!!!")])
    [0.5, 0.0]
    >>> ends_at_tag = _chat("<reasoning>\\nr\\n</reasoning>\\n<answer>\\n2\\n</answer>")
    >>> [round(r, 3) for r in xmlcount_reward_func([ends_at_tag])]
    [0.454]
    """
    return [answers.count_xml(t) for t in _texts(completions)]


def correctness_seed_reward_func(completions, answer, **kwargs) -> list[float]:
    """The recipe's correctness exactly: 2.0 only on exact string equality (so ``72.0`` != ``72``).

    >>> correctness_seed_reward_func([_chat("<answer>\\n72\\n</answer>"), _chat("<answer>72.0</answer>")], ["72"] * 2)
    [2.0, 0.0]
    """
    texts = _texts(completions)
    return [2.0 if answers.extract_xml_answer(t) == a else 0.0 for t, a in zip(texts, answer, strict=True)]


def strict_format_seed_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's strict format exactly: no DOTALL, so multi-line reasoning scores 0; needs a final newline.

    >>> strict_format_seed_reward_func([_chat("<reasoning>\\na\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n"),
    ...                                 _chat("<reasoning>\\na\\nb\\n</reasoning>\\n<answer>\\n2\\n</answer>\\n")])
    [0.5, 0.0]
    """
    return [0.5 if answers.STRICT_FORMAT_SEED.match(t) else 0.0 for t in _texts(completions)]


def soft_format_seed_reward_func(completions, **kwargs) -> list[float]:
    """The recipe's soft format exactly: no DOTALL, so a newline inside a block scores 0.

    >>> soft_format_seed_reward_func([_chat("<reasoning>a</reasoning><answer>2</answer>"),
    ...                               _chat("<reasoning>a\\nb</reasoning><answer>2</answer>")])
    [0.5, 0.0]
    """
    return [0.5 if answers.SOFT_FORMAT_SEED.match(t) else 0.0 for t in _texts(completions)]


# ---------------------------------------------------------------- rewards for right-and-reasoned answers
# The recipe's five pay 2.0 of their 4.0 for form alone; a model that rarely answers right learns the form and
# shortens its reasoning to a number (docs/results.md). These pay for the right number, negative or decimal, and
# for a format that holds at least one worked step, so the shortest well-formed answer no longer wins.


def number_reward_func(completions, **kwargs) -> list[float]:
    """0.5 when the answer inside ``<answer>`` is a number, negative and decimal included (``int`` pays 0 for -4).

    >>> number_reward_func([_chat("<answer>\\n-4\\n</answer>"), _chat("<answer>2.5</answer>"),
    ...                     _chat("<answer>x</answer>")])
    [0.5, 0.5, 0.0]
    """
    return [0.5 if answers.is_number(answers.extract_xml_answer(t)) and "<answer>" in t else 0.0
            for t in _texts(completions)]


def correctness_flexible_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 when strict-correct (``answers.is_correct``: the last ``<answer>`` block equals the gold); 1.0 when there
    is no closed answer block and the last number is right (flexible-correct); else 0.0.

    Negative and decimal answers count (``-4`` equals ``-4.0``). The partial credit gives a model that does not
    yet write the tags a signal for being right; a wrong tagged answer earns nothing, whatever numbers follow.

    >>> correctness_flexible_reward_func([_chat("<answer>\\n-4\\n</answer>"), _chat("3 - 7 = -4"),
    ...                                   _chat("<answer>4</answer>"), _chat("no number"), _chat("<answer>\\n-4")],
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

    >>> reasoned_format_reward_func([_chat("<reasoning>\\n3 + 4 = 7\\n</reasoning>\\n<answer>\\n7\\n</answer>"),
    ...                              _chat("<reasoning>\\n7\\n</reasoning>\\n<answer>\\n7\\n</answer>"),
    ...                              _chat("3 + 4 = 7")])
    [0.5, 0.0, 0.0]
    """
    return [0.5 if answers.is_soft_format(t) and answers.has_worked_step(t) else 0.0 for t in _texts(completions)]


def correct_and_reasoned_reward_func(completions, answer, **kwargs) -> list[float]:
    """2.0 only when the tagged answer is right *and* the reasoning shows a worked step, else 0.0.

    >>> correct_and_reasoned_reward_func([_chat("<reasoning>\\n3 - 7 = -4\\n</reasoning>\\n<answer>\\n-4\\n</answer>"),
    ...                                   _chat("<reasoning>\\n-4\\n</reasoning>\\n<answer>-4</answer>")], ["-4"] * 2)
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


def get_reward_func(name: str) -> RewardFunc:
    """A registry name, or ``package.module:function`` for a user's own reward.

    >>> get_reward_func("int").__name__
    'int_reward_func'
    """
    if name in REWARD_FUNCS:
        return REWARD_FUNCS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            func = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as err:
            raise TinyR1Error(f"reward_funcs: cannot import {name!r} ({err}); {_how_to_import(module_name)}") from None
        except (ImportError, AttributeError, ValueError) as err:  # ValueError: an empty module name
            raise TinyR1Error(f"reward_funcs: cannot import {name!r} ({err}); give it as package.module:function, "
                              "a function defined at the top level of an importable module") from None
        if not callable(func):
            raise TinyR1Error(f"reward_funcs: {name!r} is not a function")
        _try_once(name, func)
        return func
    raise TinyR1Error(
        f"reward_funcs: unknown reward {name!r}; use one of {', '.join(REWARD_FUNCS)} or 'package.module:function'"
    )


def _how_to_import(module: str) -> str:
    """How to make ``module`` importable, for a reward named ``package.module:function``."""
    top = module.split(".")[0]
    return (f"Python imports {module} from the folders on sys.path: run tinyr1 from the folder that holds {top}/ "
            f"or {top}.py (now {os.getcwd()}), add that folder to PYTHONPATH (PYTHONPATH=/path/to/folder tinyr1 "
            "...), or pip install your package")


def _try_once(name: str, func) -> None:
    """Call a user's reward once on a sample, the way trl will, so a wrong signature or return value fails now
    rather than at step 1 after the model has loaded."""
    prompt = [{"role": "system", "content": "sample"}, {"role": "user", "content": "What is 1 + 1?"}]
    completion = _chat("<reasoning>\n1 + 1 = 2\n</reasoning>\n<answer>\n2\n</answer>")
    try:
        result = func(prompts=[prompt], completions=[completion], completion_ids=[[0, 1]], answer=["2"],
                      trainer_state=None, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)
    except Exception as err:
        raise TinyR1Error(f"reward_funcs: {name} failed on a sample call ({type(err).__name__}: "
                          f"{first_line(err)}); trl calls it as "
                          "f(prompts=..., completions=..., completion_ids=..., answer=..., **kwargs) and wants one "
                          "float per completion") from None
    if not isinstance(result, (list, tuple)) or len(result) != 1 or not all(
            r is None or (isinstance(r, numbers.Real) and not isinstance(r, bool)) for r in result):
        raise TinyR1Error(f"reward_funcs: {name} returned {str(result)[:60]!r} for one completion; it must return a "
                          "list with one float (or None) per completion")


# What trl passes every reward function, besides the dataset's columns (trl 1.16's ``_calculate_rewards``).
TRL_REWARD_KEYWORDS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


def check_reward_signature(func, argument: str, columns: list[str] | None = None) -> None:
    """One line, naming ``argument`` and the function, when trl could not call ``func`` as a reward:
    ``func(prompts=..., completions=..., completion_ids=..., <each dataset column>=..., trainer_state=..., ...)``.
    ``columns``: the dataset's columns where known (else a required parameter may be any column).

    >>> def good(completions, answer, **kwargs): return [0.0] * len(completions)
    >>> check_reward_signature(good, "reward_funcs", ["prompt", "answer"])
    >>> def bad(text): return [len(text)]
    >>> check_reward_signature(bad, "reward_funcs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tinyr1.infra.errors.TinyR1Error: reward_funcs: bad(text) cannot be called the way trl calls a reward, ...
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read, trl will say
        return
    params = list(signature.parameters.values())
    passed = set(TRL_REWARD_KEYWORDS) | set(columns or []) - {"prompt", "completion", "completion_ids"}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = [p for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD
                and p.kind is not p.VAR_POSITIONAL]
    missing = [p.name for p in required if p.kind is p.POSITIONAL_ONLY
               or (p.name not in passed and columns is not None)]
    unexpected = [] if takes_any else sorted(passed - named)
    if missing or unexpected or "completions" not in named | ({"completions"} if takes_any else set()):
        name = getattr(func, "__name__", type(func).__name__)
        raise TinyR1Error(f"{argument}: {name}{signature} cannot be called the way trl calls a reward, "
                          f"{name}(prompts=..., completions=..., completion_ids=..., <each dataset column>=..., "
                          f"**kwargs); define it as def {name}(completions, **kwargs) returning one float (or None) "
                          "per completion")


def check_reward_funcs(reward_funcs, argument: str = "reward_funcs", columns: list[str] | None = None) -> list:
    """``reward_funcs`` as trl takes them (one, or a list), with tinyr1's registry names and
    ``package.module:function`` resolved and every callable's signature checked (``check_reward_signature``); any
    other string or a model is a reward model, left to trl."""
    items = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    if not items or any(item is None for item in items):
        raise TinyR1Error(f"{argument}: give at least one reward function, e.g. {', '.join(DEFAULT_REWARDS)}")
    resolved = []
    for item in items:
        if isinstance(item, str) and (item in REWARD_FUNCS or ":" in item):
            item = get_reward_func(item)
        elif callable(item) and not hasattr(item, "forward"):  # a model is callable too: trl's to run
            check_reward_signature(item, argument, columns)
        resolved.append(item)
    return resolved


def get_reward_funcs(names: list[str] | str) -> list[RewardFunc]:
    """Resolve a list of names (or one comma-separated string) to reward functions, in order."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise TinyR1Error("reward_funcs: empty; name at least one reward, e.g. " + ",".join(DEFAULT_REWARDS))
    return [get_reward_func(n) for n in names]
