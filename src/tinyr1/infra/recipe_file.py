"""One recipe file read: flat YAML through PyYAML's safe loader with a key given twice refused, and its ``env:``
block checked like flags. ``tinyr1.infra.recipe`` turns the mapping into trl's dataclasses.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_text
from tinyr1.infra.naming import setting


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently, so a
    recipe's second ``learning_rate:`` would quietly win). Keys merged in with ``<<:`` may be overridden, as YAML
    intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first != key_node.start_mark.line + 1:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_recipe_file(path: str) -> dict:
    """One recipe file as a mapping: missing, unreadable, not YAML, nested too deeply or a key given twice is one
    line naming the file."""
    file = Path(path)
    if not file.is_file():
        raise TinyR1Error(f"{setting('config')} {path}: no such file")
    try:
        data = yaml.load(read_text(file), Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise TinyR1Error(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    except RecursionError:
        raise TinyR1Error(f"{path}: nested too deeply to read; a recipe is a flat mapping of field: value") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TinyR1Error(f"{path}: a recipe must be a YAML mapping of field: value")
    return data


# Variables that set a thread count: a value the runtimes would ignore (0, -2, "four") must not quietly become
# "all cores".
_THREAD_VARIABLES = {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                     "TORCH_NUM_THREADS"}


def check_env(env, path: str) -> dict[str, str]:
    """A recipe's ``env:`` block checked like flags, each mistake one line naming the file and the variable: a
    mapping of valid names to text or numbers, thread counts whole numbers of at least 1.

    >>> check_env({"OMP_NUM_THREADS": 2, "HF_HUB_OFFLINE": "1"}, "r.yaml")
    {'OMP_NUM_THREADS': '2', 'HF_HUB_OFFLINE': '1'}
    >>> check_env({"OMP_NUM_THREADS": 0}, "r.yaml")
    Traceback (most recent call last):
    tinyr1.infra.errors.TinyR1Error: r.yaml: env: OMP_NUM_THREADS 0: must be a whole number of at least 1
    """
    if not isinstance(env, dict):
        raise TinyR1Error(f"{path}: env must be a mapping of NAME: value")
    checked = {}
    for name, value in env.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise TinyR1Error(f"{path}: env: {name!r} is not an environment variable name (letters, digits and _, "
                              "not starting with a digit)")
        if value is None or isinstance(value, (dict, list)):
            raise TinyR1Error(f"{path}: env: {name}: expected text or a number, got "
                              f"{'null' if value is None else type(value).__name__}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\0" in text:
            raise TinyR1Error(f"{path}: env: {name}: a value cannot hold a NUL character")
        if name in _THREAD_VARIABLES and not (text.strip().isdigit() and int(text) >= 1):
            raise TinyR1Error(f"{path}: env: {name} {value!r}: must be a whole number of at least 1")
        checked[name] = text
    return checked
