"""Rewards by name or object: the registry's short names, ``package.module:function`` for a user's own, and the
checks that a function can be called the way trl calls a reward, before any model loads.

    python -m pytest --doctest-modules src/tinyr1/tasks/reward_lookup.py
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import numbers
import os
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error, TinyR1ValueError, first_line
from tinyr1.tasks.rewards import DEFAULT_REWARDS, REWARD_FUNCS, RewardFunc, chat


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
    if is_async_callable(func):  # awaited on trl's event loop; a sample call here could clash with a notebook's
        check_reward_signature(func, "reward_funcs")
        return
    prompt = [{"role": "system", "content": "sample"}, {"role": "user", "content": "What is 1 + 1?"}]
    completion = chat("<reasoning>\n1 + 1 = 2\n</reasoning>\n<answer>\n2\n</answer>")
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
        name = callable_name(func)
        raise TinyR1Error(f"{argument}: {name}{signature} cannot be called the way trl calls a reward, "
                          f"{name}(prompts=..., completions=..., completion_ids=..., <each dataset column>=..., "
                          f"**kwargs); define it as def {name}(completions, **kwargs) returning one float (or None) "
                          "per completion")


def callable_name(func) -> str:
    """The name trl gives a reward function (and logs as ``rewards/<name>/mean``): a ``functools.partial``'s
    function's, a callable object's class's.

    >>> callable_name(functools.partial(int, base=2)), callable_name(callable_name)
    ('int', 'callable_name')
    """
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


def is_async_callable(func) -> bool:
    """Whether calling ``func`` gives a coroutine (trl then awaits it): an ``async def``, a partial of one, or an
    object whose ``__call__`` is one."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or (callable(func) and inspect.iscoroutinefunction(type(func).__call__))


def check_reward_funcs(reward_funcs, argument: str = "reward_funcs", columns: list[str] | None = None,
                       optional: bool = False) -> list:
    """``reward_funcs`` as trl takes them (one, or a list), with tinyr1's registry names and
    ``package.module:function`` resolved and every callable's signature checked (``check_reward_signature``); a
    hub id (``org/name``) or a local folder is a reward model, left to trl; any other word is a misspelt name.
    None (or none, with ``optional``: trl's environments bring their own rewards) is left to trl, whose
    ``ValueError`` says what to pass."""
    if reward_funcs is None or (optional and not reward_funcs):  # trl's own check says what to pass
        return []
    items = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    if not items or any(item is None for item in items):
        raise TinyR1ValueError(f"{argument}: give at least one reward function, e.g. {', '.join(DEFAULT_REWARDS)}")
    resolved = []
    for item in items:
        if isinstance(item, str) and (item in REWARD_FUNCS or ":" in item):
            item = get_reward_func(item)
        elif isinstance(item, str):
            _check_reward_model_name(item, argument)
        elif callable(item) and not hasattr(item, "forward"):  # a model is callable too: trl's to run
            check_reward_signature(item, argument, columns)
        resolved.append(item)
    return resolved


def _check_reward_model_name(name: str, argument: str) -> None:
    """A string that names no reward of the registry is a reward model for trl: a hub id (``org/name``) or a local
    folder. A bare word that is neither is a misspelt reward name: one line, before trl tries the hub."""
    if "/" in name or Path(name).expanduser().exists():
        return
    close = difflib.get_close_matches(name, list(REWARD_FUNCS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise TinyR1ValueError(f"{argument}: unknown reward {name!r}; {hint}the rewards by name are "
                           f"{', '.join(REWARD_FUNCS)}; a reward model is a hub id (org/name) or a local folder")


def get_reward_funcs(names: list[str] | str) -> list[RewardFunc]:
    """Resolve a list of names (or one comma-separated string) to reward functions, in order."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise TinyR1Error("reward_funcs: empty; name at least one reward, e.g. " + ",".join(DEFAULT_REWARDS))
    return [get_reward_func(n) for n in names]
