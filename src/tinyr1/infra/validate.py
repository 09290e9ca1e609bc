"""Range checks for every numeric option, made when the command line and recipe are parsed, before anything loads.

trl and transformers accept many out-of-range values silently (``--max_steps -5`` trains a whole epoch) or reject
them late with a traceback (``--num_generations 0`` inside the trainer). One table here covers every command; a
failure is one line naming the field and where the value came from (the flag, or the YAML file).

    check(values, source=lambda field: "--" + field)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting

Rule = tuple[Callable[[float], bool], str]


# Rule builders: public, so a command with options of its own (tinyr1.evaluation.probe) checks them by the same rules.
def at_least(n: int) -> Rule:
    return (lambda v: v >= n), f"must be at least {n}"


def positive() -> Rule:
    return (lambda v: v > 0), "must be greater than 0"


def non_negative() -> Rule:
    return (lambda v: v >= 0), "must be 0 or more"


def between(low: int, high: int) -> Rule:
    """A count with a bound of its own, far below ``MAX_VALUE``: past it a loop would run for hours or days."""
    return (lambda v: low <= v <= high), f"must be between {low} and {high:,}"


def fraction(upper_inclusive: bool = True) -> Rule:
    if upper_inclusive:
        return (lambda v: 0 <= v <= 1), "must be between 0 and 1"
    return (lambda v: 0 <= v < 1), "must be at least 0 and below 1"


# field -> rule, for every command: a field absent from a command's options is simply not checked. None is always
# allowed (it means "not set"); booleans are never numbers here.
RULES: dict[str, Rule] = {
    "max_steps": ((lambda v: v == -1 or v >= 1), "must be -1 (train for num_train_epochs) or at least 1"),
    "num_train_epochs": positive(),
    "learning_rate": positive(),
    "per_device_train_batch_size": at_least(1),
    "per_device_eval_batch_size": at_least(1),
    "gradient_accumulation_steps": at_least(1),
    "batch_size": at_least(1),
    "num_generations": at_least(2),  # GRPO compares completions within a group: one alone has no advantage
    "generation_batch_size": at_least(1),
    "steps_per_generation": at_least(1),
    "num_iterations": at_least(1),
    "max_completion_length": at_least(1),
    "max_prompt_length": at_least(1),
    "max_prompt_tokens": at_least(1),
    "max_length": at_least(1),
    "max_new_tokens": at_least(1),
    "eval_max_new_tokens": at_least(1),
    "dataset_limit": at_least(1),
    "eval_limit": at_least(1),
    "limit": at_least(1),
    "temperature": non_negative(),
    "top_p": ((lambda v: 0 < v <= 1), "must be greater than 0 and at most 1"),
    "top_k": non_negative(),
    "beta": non_negative(),
    "epsilon": positive(),
    "weight_decay": non_negative(),
    "max_grad_norm": non_negative(),
    "warmup_steps": non_negative(),
    "warmup_ratio": fraction(),
    "adam_beta1": fraction(upper_inclusive=False),
    "adam_beta2": fraction(upper_inclusive=False),
    "adam_epsilon": positive(),
    "logging_steps": positive(),
    "save_steps": positive(),
    "eval_steps": positive(),
    "save_total_limit": at_least(1),
    "sample_every": non_negative(),
    "collapse_patience": at_least(1),
    "degenerate_threshold": fraction(),
    "max_train_minutes": positive(),
    "num_threads": at_least(1),
    "lora_r": at_least(1),
    "lora_alpha": positive(),
    "lora_dropout": fraction(upper_inclusive=False),
    "dataloader_num_workers": non_negative(),
}

# GRPO samples its completions: temperature 0 would divide the logits by zero.
# Counts that a step or a window loops over get bounds of their own: 100 refill rounds are 100 extra generations in
# one step; a pass rate over more than 10,000 groups, or a verdict after more than 1,000 of them, never moves.
GRPO_RULES: dict[str, Rule] = {"temperature": positive(), "dynamic_sampling_max_rounds": between(0, 100),
                               "dynamic_sampling_tolerance": non_negative(), "curriculum_min_groups": between(1, 1000),
                               "curriculum_revisit": fraction(), "curriculum_level_threshold": fraction(),
                               "curriculum_level_window": between(1, 10_000), "no_signal_patience": between(0, 10_000)}


# Every number in RULES is also at most this: above any real step count, batch, length, rate or time budget, and
# below what the Trainer's arithmetic survives (``max_steps: 1e26`` passed the lower bound alone).
MAX_VALUE = 10**9
# Every other number (a seed, a trl option without a rule) must be finite and fit a signed 64-bit integer, which is
# what torch and the Trainer store it in.
MAX_ANY = 2**63 - 1


def _said(where: str, item) -> str:
    """How a message names a value: ``--max_steps 0``, ``recipe.yaml: max_steps 0``, or in a Python call
    (``source`` returns ``tinyr1.train(max_steps={value})``) ``tinyr1.train(max_steps=0)``."""
    return where.replace("{value}", repr(item)) if "{value}" in where else f"{where} {item!r}"


def check(values: dict, source: Callable[[str], str], overrides: dict[str, Rule] | None = None) -> None:
    """Raise one line for the first value outside its range; ``source(field)`` says where it came from.

    >>> check({"max_steps": 1e26}, flag_source)
    Traceback (most recent call last):
    tinyr1.infra.errors.TinyR1Error: --max_steps 1e+26: must be at most 1,000,000,000
    """
    rules = {**RULES, **(overrides or {})}
    for field, value in values.items():
        rule = rules.get(field)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is None or isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise TinyR1Error(f"{_said(source(field), item)}: must be a finite number")
            if rule is None:
                if abs(item) > MAX_ANY:
                    raise TinyR1Error(f"{_said(source(field), item)}: too large; must be at most {MAX_ANY:,} in size")
                continue
            ok, reason = rule
            if not ok(item):
                raise TinyR1Error(f"{_said(source(field), item)}: {reason}")
            if item > MAX_VALUE:
                raise TinyR1Error(f"{_said(source(field), item)}: must be at most {MAX_VALUE:,}")


def flag_source(field: str) -> str:
    """How a field is named on a plain argparse command line."""
    return f"--{field}"


# Logging integrations whose Python module is not named like the integration.
_INTEGRATION_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "comet_ml": ("comet_ml",),
                        "azure_ml": ("azureml",), "dvclive": ("dvclive",), "clearml": ("clearml",)}


def check_trainer_settings(training, has_eval_dataset: bool = False) -> None:
    """Trainer settings that transformers rejects only once the model is loaded: a logging integration or an
    8-bit optimizer whose package is missing, and evaluation without an evaluation set."""
    import importlib.util

    for name in training.report_to or []:
        if name in ("none", "all"):
            continue
        modules = _INTEGRATION_MODULES.get(name, (name,))
        if not any(importlib.util.find_spec(m) for m in modules):
            raise TinyR1Error(f"{setting('report_to')} {name}: the {modules[0]} package is not installed "
                              f"(pip install {modules[0]}), or use {setting('report_to', 'none')}")
    optim = str(getattr(training.optim, "value", training.optim))
    if any(word in optim for word in ("8bit", "bnb", "paged")) and not importlib.util.find_spec("bitsandbytes"):
        raise TinyR1Error(f"{setting('optim')} {optim}: needs bitsandbytes (pip install -c constraints.txt -e "
                          f"\".[qlora]\"); use {setting('optim', 'adamw_torch')}")
    strategy = str(getattr(training.eval_strategy, "value", training.eval_strategy))
    if strategy != "no" and not has_eval_dataset:
        also = (f" (and {setting('eval_before_after', True)} for the before/after evaluation)"
                if hasattr(training, "num_generations") else "")
        raise TinyR1Error(f"{setting('eval_strategy')} {strategy}: this command has no evaluation set during "
                          f"training; use {setting('eval_strategy', 'no')}{also}")
