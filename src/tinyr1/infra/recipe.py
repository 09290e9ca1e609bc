"""Recipes: one flat YAML file plus ``--field value`` overrides, parsed once into trl's own dataclasses.

``train``, ``sft`` and ``doctor`` parse through ``load_recipe`` so their field names are trl's (``--learning_rate``,
``--num_generations``, ``--use_peft``...) and their mistakes read the same way, as one line and exit code 2, never
a traceback or a usage dump: an unknown key (with the closest valid name), a value of the wrong type (naming the
flag, or the YAML file and key it came from) and a value out of range (``tinyr1.infra.validate``) are all caught before
a dataclass is built, let alone a model loaded.

    from trl import GRPOConfig, ModelConfig
    (script_args, training_args, model_args), values = load_recipe([ScriptArguments, GRPOConfig, ModelConfig],
                                                                   argv, prog="tinyr1 train")
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import logging
import os
from pathlib import Path

import yaml

from tinyr1.infra import validate
from tinyr1.infra.errors import TinyR1Error, first_line, one_line_errors
from tinyr1.infra.files import write_text
from tinyr1.infra.naming import listener
from tinyr1.infra.recipe_file import check_env, read_recipe_file

logger = logging.getLogger(__name__)


def _valid_names(parser) -> list[str]:
    return sorted({a.dest for a in parser._actions if a.dest != "help"})


# What users type for a field, from other tools or by guess, and the field meant, in order of preference: the
# first that the command has is suggested. Spelling alone would point elsewhere (--model -> --delta, --dataset ->
# --data_seed, --batch_size -> --auto_find_batch_size, --max_prompt_length -> --max_completion_length).
ALIASES = {
    "model": ["model_name_or_path"], "model_name": ["model_name_or_path"], "model_path": ["model_name_or_path"],
    "base_model": ["model_name_or_path"], "dataset": ["dataset_name"], "data": ["dataset_name"],
    "dataset_path": ["dataset_name"], "data_path": ["dataset_name"], "split": ["dataset_split"],
    "lr": ["learning_rate"], "epochs": ["num_train_epochs"], "num_epochs": ["num_train_epochs"],
    "steps": ["max_steps"], "batch_size": ["per_device_train_batch_size"],
    "train_batch_size": ["per_device_train_batch_size"], "grad_accum": ["gradient_accumulation_steps"],
    "max_prompt_length": ["max_prompt_tokens"], "max_seq_length": ["max_length", "max_completion_length"],
    "max_length": ["max_completion_length"], "max_new_tokens": ["max_completion_length", "max_length"],
    "max_tokens": ["max_completion_length", "max_length"], "num_completions": ["num_generations"],
    "group_size": ["num_generations"], "lora": ["use_peft"], "peft": ["use_peft"], "use_lora": ["use_peft"],
    "eval": ["eval_before_after"], "evaluate": ["eval_before_after"], "resume": ["resume_from_checkpoint"],
    "kl": ["beta"], "kl_coef": ["beta"], "output": ["output_dir"], "out": ["output_dir"], "threads": ["num_threads"],
    "rewards": ["reward_funcs"], "reward": ["reward_funcs"], "weights": ["reward_weights"],
    "warmup": ["warmup_steps"], "overwrite": ["overwrite_output_dir"], "system": ["system_prompt"],
}


def _unknown(key: str, valid: list[str], where: str | None) -> TinyR1Error:
    """One line for a misspelt field: ``where`` (a file, a Python call) names it as a key; ``None``, a flag.

    >>> str(_unknown("model", ["delta", "model_name_or_path"], None))
    '--model: unknown flag; did you mean --model_name_or_path?'
    """
    meant = [name for name in ALIASES.get(key.replace("-", "_").lower(), []) if name in valid]
    close = meant[:1] or difflib.get_close_matches(key, valid, n=1)
    if where is None:  # the command line's own: a flag it was given
        hint = f"; did you mean --{close[0]}?" if close else "; see --help for the valid flags"
        return TinyR1Error(f"--{key}: unknown flag{hint}")
    caller = listener()
    help_text = f"help({caller})" if caller and caller.startswith("tinyr1.") else "--help"  # the command line's own
    hint = f"; did you mean {close[0]!r}?" if close else f"; see {help_text} for the valid fields"
    return TinyR1Error(f"{where}: unknown key {key!r}{hint}")


def _flags_given(parser, argv: list[str], valid: list[str]) -> set[str]:
    """The fields named on the command line; a typo is reported as a typo, not as whatever fails first later."""
    options = {opt: action.dest for action in parser._actions for opt in action.option_strings}
    given = set()
    for token in argv:
        if token.startswith("--"):
            name = token.split("=")[0]
            if name not in options:
                raise _unknown(name[2:], valid, None)
            given.add(options[name])
    return given


def convert_value(action: argparse.Action, value, where: str, many: bool | None = None):
    """A YAML value or a Python keyword argument, checked and converted the way argparse converts a flag's text, or
    one line naming it. ``many``: whether the option takes a list (default: its ``nargs`` says)."""
    many = action.nargs in ("+", "*") if many is None else many
    if value is None:
        return value
    if isinstance(value, list):
        if not many:
            raise TinyR1Error(f"{where}: expected one value, got a list")
        return [_convert_one(action, item, where) for item in value]
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value, where: str):
    if action.type is None:  # a plain text option
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str) and action.const is None and action.nargs != 0:
            raise TinyR1Error(f"{where}: expected text, got {type(value).__name__}")
        return value
    kind = getattr(action.type, "__name__", "value")
    if isinstance(value, dict):
        if action.type in (str, dict):  # trl's dict-or-JSON-string fields (model_init_kwargs...)
            return value
        raise TinyR1Error(f"{where}: expected a {kind}, got a mapping")
    if action.type in (int, float) and isinstance(value, bool):
        raise TinyR1Error(f"{where}: expected a number, got {value!r}")
    if action.type is int and isinstance(value, float):
        if not value.is_integer():
            raise TinyR1Error(f"{where}: expected a whole number, got {value!r}")
        value = int(value)
    try:
        converted = action.type(str(value))  # argparse's type functions take the text a flag would carry
    except (TypeError, ValueError, AttributeError, argparse.ArgumentTypeError):
        raise TinyR1Error(f"{where}: {value!r} is not a valid {kind}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(str(getattr(c, "value", c)) for c in action.choices)
        raise TinyR1Error(f"{where}: {value!r} is not one of {choices}")
    return converted


def _split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    if "--config" not in argv:  # a command line: the flag itself
        return None, argv
    index = argv.index("--config")
    if index + 1 >= len(argv) or argv[index + 1].startswith("--"):
        raise TinyR1Error("--config needs a path to a YAML recipe")  # the command line's own
    return argv[index + 1], argv[:index] + argv[index + 2:]


def _nullable(dataclass_types) -> dict[str, bool]:
    """Whether each field may be null in a recipe: all but plain numbers and booleans (``learning_rate:`` left
    empty would otherwise reach the optimizer as None). Annotations are read from the classes' own
    ``__annotations__``: HfArgumentParser rewrites ``Field.type`` in place."""
    annotations: dict[str, str] = {}
    for dtype in dataclass_types:
        for klass in reversed(dtype.__mro__):
            annotations.update({k: str(v) for k, v in vars(klass).get("__annotations__", {}).items()})
    plain = {"int", "float", "bool", "<class 'int'>", "<class 'float'>", "<class 'bool'>"}
    return {f.name: f.default is None or annotations.get(f.name) not in plain
            for dtype in dataclass_types for f in dataclasses.fields(dtype)}


def _file_values(parser, path: str, valid: list[str], nullable: dict[str, bool]) -> dict:
    actions = {}
    for action in parser._actions:  # the typed action wins over its --no_<field> twin
        if action.type is not None or action.dest not in actions:
            actions[action.dest] = action
    data = read_recipe_file(path)
    env = data.pop("env", None)
    if env is not None:  # trl's convention: an env mapping sets environment variables
        os.environ.update(check_env(env, path))
    values = {}
    for key, value in data.items():
        if key not in valid:
            raise _unknown(str(key), valid, path)
        if value is None and not nullable.get(key, True):
            raise TinyR1Error(f"{path}: {key}: empty (null); give a value or remove the key")
        values[key] = convert_value(actions[key], value, f"{path}: {key}")
    return values


def _python_values(parser, values: dict, valid: list[str], nullable: dict[str, bool], caller: str) -> dict:
    """Keyword arguments of a Python call, checked and converted as a recipe's YAML values are; a mistake is one
    line naming the argument as the caller wrote it (``tinyr1.train(max_steps=...)``)."""
    actions = {}
    for action in parser._actions:  # the typed action wins over its --no_<field> twin
        if action.type is not None or action.dest not in actions:
            actions[action.dest] = action
    converted = {}
    for key, value in values.items():
        if key not in valid:
            raise _unknown(str(key), valid, f"{caller}()")
        where = f"{caller}({key}={value!r:.60})"
        if value is None and not nullable.get(key, True):
            raise TinyR1Error(f"{where}: None is not a value for {key}; give a value or leave it out")
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, dict) and actions[key].nargs in ("+", "*"):  # dataset_options={"min_terms": 2}
            value = [f"{k}={v}" for k, v in value.items()]
        if actions[key].type is str and not isinstance(value, (str, Path, list, dict)):
            # a text field given a number or an object (model_name_or_path=42) would become its str(): "42"
            raise TinyR1Error(f"{where}: expected text, got {type(value).__name__}")
        converted[key] = convert_value(actions[key], value, where)
    return converted


def load_recipe(dataclass_types: list[type], argv: list[str] | None, prog: str, description: str | None = None,
                defaults: dict | None = None, rules: dict | None = None, *, config: str | None = None,
                python_values: dict | None = None, caller: str | None = None,
                paired: dict[str, str] | None = None) -> tuple[tuple, dict]:
    """Parse ``[--config RECIPE.yaml] [--field value ...]`` once: (one instance per dataclass type, merged values).

    ``defaults`` (e.g. tinyr1's CPU policy) replace the dataclasses' own defaults; YAML values replace those;
    ``python_values`` (the Python API's keyword arguments, from ``caller``, with the recipe file ``config``) replace
    those, checked like YAML values; flags override everything. The merged values are taken before the dataclasses
    derive anything, so ``dump_recipe`` writes a file that loads again as ``--config`` and reproduces the run.
    ``rules`` override ``tinyr1.infra.validate.RULES`` for this command. ``paired``: a field whose value only means
    something beside another's (``reward_weights`` beside ``reward_funcs``): when a flag or keyword replaces the
    first and not the second, the file's second is dropped (its default applies), said in one line.
    """
    from trl import TrlParser

    argv = list(argv or [])
    parser = one_line_errors(TrlParser(dataclass_types, prog=prog, description=description), prog)
    valid = _valid_names(parser)
    if defaults:
        parser.set_defaults_with_config(**defaults)
    path, rest = _split_config(argv)
    path = str(config) if config is not None else path
    given = _flags_given(parser, rest, valid)
    nullable = _nullable(dataclass_types)
    from_file = _file_values(parser, path, valid, nullable) if path else {}
    from_python = _python_values(parser, python_values or {}, valid, nullable, caller or prog)
    for lead, follower in (paired or {}).items():
        by_python = lead in from_python and lead not in given
        if (lead in given or by_python) and follower not in given and follower not in from_python \
                and follower in from_file:
            logger.warning("%s: %s %s dropped: they were for the recipe's %s, which %s replaces; give %s to set them",
                           path, follower, from_file.pop(follower), lead,
                           f"{caller}({lead}=...)" if by_python else f"--{lead}",
                           f"{follower}=" if by_python else f"--{follower}")
    parser.set_defaults_with_config(**{**from_file, **from_python})
    namespace, unknown = parser.parse_known_args(rest)
    if unknown:
        flag = next((s for s in unknown if s.startswith("-")), unknown[0])
        raise _unknown(flag.lstrip("-").split("=")[0], valid, None)
    values = dict(vars(namespace))

    def source(name: str) -> str:
        if name in from_python and name not in given:
            return f"{caller or prog}({name}={{value}})"
        return f"--{name}" if name in given or name not in from_file else f"{path}: {name}"

    validate.check(values, source, rules)
    instances = []
    for dtype in dataclass_types:
        keys = {f.name for f in dataclasses.fields(dtype) if f.init}
        try:
            instances.append(dtype(**{k: v for k, v in values.items() if k in keys}))
        except (ValueError, TypeError) as err:  # a dataclass __post_init__ rejecting a combination of values
            raise TinyR1Error(f"invalid configuration: {first_line(err)}") from None
    return tuple(instances), {k: _plain(v) for k, v in sorted(values.items())}


def parse_recipe(dataclass_types: list[type], argv: list[str] | None, prog: str, description: str | None = None,
                 defaults: dict | None = None) -> tuple:
    """``load_recipe``'s dataclass instances alone."""
    return load_recipe(dataclass_types, argv, prog, description, defaults)[0]


def recipe_values(dataclass_types: list[type], argv: list[str] | None, defaults: dict | None = None) -> dict:
    """``load_recipe``'s merged values alone (what ``dump_recipe`` writes)."""
    return load_recipe(dataclass_types, argv, "tinyr1", None, defaults)[1]


def plain_values(values: dict) -> dict:
    """A dict of settings as plain YAML types (enums by value, dataclasses as dicts, other objects as text)."""
    return {str(k): _plain(v) for k, v in sorted(values.items())}


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dump_recipe(path: str | Path, values: dict) -> None:
    """Write ``load_recipe``'s values as one flat YAML file, usable again as ``--config``: atomically, so a kill or a
    full disk (one line, ``tinyr1.infra.files``) never leaves half a recipe."""
    write_text(path, yaml.safe_dump(values, sort_keys=True))
