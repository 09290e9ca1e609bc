"""The Python objects ``tinyr1.train`` takes besides recipe fields, checked before anything is written or loaded:
a model already loaded (or ``(model, tokenizer)``, or any name ``tinyr1 train`` takes), reward functions defined in
Python mixed with registry names, and training rows (a list of dicts, a ``datasets.Dataset`` or ``IterableDataset``).
A wrong object is one ``TinyR1Error`` naming the argument: ``tinyr1.train(model=...): ...``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from tinyr1.api_results import Run
from tinyr1.infra.errors import TinyR1Error


@dataclass
class ModelArgument:
    name: str  # what config.yaml and run.json record
    model: object | None = None  # a loaded model, or None: load ``name``
    tokenizer: object | None = None


def model_argument(model, caller: str) -> ModelArgument:
    """``model=``: a name or path (str, Path, a ``Run``), a transformers model, or ``(model, tokenizer)``."""
    where = f"{caller}(model=...)"
    if isinstance(model, Run):
        return ModelArgument(model.model_path)
    if isinstance(model, (str, Path)):
        return ModelArgument(str(model))
    tokenizer = None
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TinyR1Error(f"{where}: a tuple must be (model, tokenizer); got {len(model)} items")
        model, tokenizer = model
        if not hasattr(tokenizer, "apply_chat_template"):
            raise TinyR1Error(f"{where}: the second item must be the model's tokenizer, got "
                              f"{type(tokenizer).__name__}")
    if not (hasattr(model, "config") and hasattr(model, "generate") and hasattr(model, "parameters")):
        raise TinyR1Error(f"{where}: expected a model name or path, a transformers model, or (model, tokenizer); got "
                          f"{type(model).__name__}")
    name = str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
    if tokenizer is None:
        tokenizer = _tokenizer_of(name, where)
    return ModelArgument(name, model, tokenizer)


def _tokenizer_of(name: str, where: str):
    from tinyr1.models.loading import load_tokenizer  # lazy: loads transformers only for a model object

    try:
        return load_tokenizer(name)
    except TinyR1Error:
        raise TinyR1Error(f"{where}: this model's tokenizer cannot be found from its name {name!r}; pass "
                          "(model, tokenizer)") from None


def reward_argument(reward_funcs, caller: str) -> tuple[list, list[str]]:
    """``reward_funcs=``: functions and registry names, in order; returns them and the names config.yaml records
    (``package.module:function`` where the function can be imported again, else its name)."""
    items = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif callable(item):
            names.append(_importable_name(item))
        else:
            raise TinyR1Error(f"{caller}(reward_funcs=...): {item!r:.40} is neither a function nor a reward name")
    return items, names


def _importable_name(func) -> str:
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if module and name and module != "__main__" and "<" not in name:
        try:
            if getattr(importlib.import_module(module), name, None) is func:
                return f"{module}:{name}"
        except ImportError:
            pass
    return getattr(func, "__name__", type(func).__name__)


def dataset_argument(dataset, fields: dict):
    """``dataset=``: a source name becomes the recipe's ``dataset_name`` (in ``fields``); rows are returned, to be
    checked once the recipe's system prompt and limit are known (``tinyr1.tasks.data.prompt_rows_from``)."""
    if isinstance(dataset, (str, Path)):
        fields["dataset_name"] = str(dataset)
        return None
    return dataset


def check_rows_with(script, fields: dict, config, caller: str) -> None:
    """Rows given in Python train; a before/after evaluation still needs a named source for its test split."""
    if script.eval_before_after and "dataset_name" not in fields and config is None:
        raise TinyR1Error(f"{caller}(dataset=...): eval_before_after evaluates on a named source's test split; give "
                          "dataset_name= as well, or eval_before_after=False")
