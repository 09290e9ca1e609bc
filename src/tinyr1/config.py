"""Recipes: one flat YAML file plus ``--field value`` overrides, parsed into trl's own dataclasses.

``train`` and ``sft`` both parse through ``parse_recipe`` so their field names are trl's (``--learning_rate``,
``--num_generations``, ``--use_peft``...) and their mistakes read the same way: an unknown key, in the YAML or on
the command line, is one line naming it (with the closest valid name) and exit code 2, never a traceback.

    from trl import GRPOConfig, ModelConfig
    script_args, training_args, model_args = parse_recipe([ScriptArguments, GRPOConfig, ModelConfig], argv,
                                                          prog="tinyr1 train")
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from pathlib import Path

import yaml

from tinyr1.errors import TinyR1Error


def _valid_names(parser) -> list[str]:
    return sorted({a.dest for a in parser._actions if a.dest != "help"})


def _unknown(key: str, valid: list[str], where: str) -> TinyR1Error:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see --help for the valid fields"
    return TinyR1Error(f"{where}: unknown key {key!r}{hint}")


def _read_recipe(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise TinyR1Error(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise TinyR1Error(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TinyR1Error(f"{path}: a recipe must be a YAML mapping of field: value")
    return data


def _check_flags(parser, argv: list[str], valid: list[str]) -> None:
    # Checked before the dataclasses are built, so a typo is reported as a typo and not as whatever
    # __post_init__ happens to reject first.
    options = {opt for action in parser._actions for opt in action.option_strings} | {"--config"}
    for token in argv:
        if token.startswith("--") and token.split("=")[0] not in options:
            raise _unknown(token[2:].split("=")[0], valid, "command line")


def _build_parser(dataclass_types, argv, prog, description, defaults):
    from trl import TrlParser

    parser = TrlParser(dataclass_types, prog=prog, description=description)
    valid = _valid_names(parser)
    if defaults:
        parser.set_defaults_with_config(**defaults)
    _check_flags(parser, argv, valid)
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise TinyR1Error("--config needs a path to a YAML recipe")
        path = argv[index + 1]
        for key in _read_recipe(path):
            if key != "env" and key not in valid:
                raise _unknown(key, valid, path)
    return parser, valid


def parse_recipe(dataclass_types: list[type], argv: list[str] | None, prog: str,
                 description: str | None = None, defaults: dict | None = None) -> tuple:
    """Parse ``[--config RECIPE.yaml] [--field value ...]`` into instances of ``dataclass_types``.

    ``defaults`` (e.g. tinyr1's CPU policy) replace the dataclasses' own defaults; YAML values replace those;
    flags override everything. Returns one instance per dataclass type, in order.
    """
    argv = list(argv or [])
    parser, valid = _build_parser(dataclass_types, argv, prog, description, defaults)
    try:
        parsed = parser.parse_args_and_config(argv, return_remaining_strings=True, separate_remaining_strings=True)
    except (ValueError, TypeError) as err:  # a dataclass __post_init__ rejecting a combination of values
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TinyR1Error(f"invalid configuration: {first}") from None
    *instances, _config_rest, cli_rest = parsed
    if cli_rest:
        flag = next((s for s in cli_rest if s.startswith("-")), cli_rest[0])
        raise _unknown(flag.lstrip("-").split("=")[0], valid, "command line")
    return tuple(instances)


def recipe_values(dataclass_types: list[type], argv: list[str] | None, defaults: dict | None = None) -> dict:
    """The merged field values (defaults < YAML < flags) as given, before the dataclasses derive anything.

    This is what ``dump_recipe`` writes: derived fields (e.g. trl's ``generation_batch_size``) stay unset, so
    the file loads again as ``--config`` and reproduces the run.
    """
    argv = list(argv or [])
    parser, _ = _build_parser(dataclass_types, argv, "tinyr1", None, defaults)
    if "--config" in argv:
        index = argv.index("--config")
        parser.set_defaults_with_config(**{k: v for k, v in _read_recipe(argv[index + 1]).items() if k != "env"})
        argv = argv[:index] + argv[index + 2:]
    namespace, _ = parser.parse_known_args(argv)
    return {k: _plain(v) for k, v in sorted(vars(namespace).items())}


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
    """Write ``recipe_values`` as one flat YAML file, usable again as ``--config``."""
    Path(path).write_text(yaml.safe_dump(values, sort_keys=True), encoding="utf-8")
