"""A command's options from Python keyword arguments: the ``argparse.Namespace`` its parser would give, each value
converted and checked by its option's own type, choices and count, without building a command line.

    args = namespace(build_parser(), {"limit": 32, "dataset_options": {"min_terms": 2}}, "tinyr1.evaluate")

A mistake is one line naming the argument as the caller wrote it (``tinyr1.evaluate(limit='x'): ...``).
"""

from __future__ import annotations

import argparse
import difflib

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.recipe import convert_value
from tinyr1.infra.validate import check, flag_source


def python_source(caller: str):
    """How ``tinyr1.infra.validate.check`` names a keyword argument: ``tinyr1.evaluate(limit=0)``."""
    return lambda field: f"{caller}({field}={{value}})"


def namespace(parser: argparse.ArgumentParser, values: dict, caller: str) -> argparse.Namespace:
    """The parser's defaults with ``values`` laid over them (module docstring)."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    args = argparse.Namespace(**{dest: action.default for dest, action in actions.items()})
    for key, value in values.items():
        if key not in actions:
            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(actions))}"
            raise TinyR1Error(f"{caller}(): unknown key {key!r}{hint}")
        if value is None:
            continue
        action, where = actions[key], f"{caller}({key}={value!r:.60})"
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise TinyR1Error(f"{where}: expected True or False")
        else:
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(value, dict) and action.nargs in ("+", "*"):  # dataset_options={"min_terms": 2}
                value = [f"{k}={v}" for k, v in value.items()]
            many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
            if many and not isinstance(value, list):
                value = [value]
            if many and action.nargs == "+" and not value:
                raise TinyR1Error(f"{where}: expected at least one value")
            value = convert_value(action, value, where, many=many)
        setattr(args, key, value)
    missing = [f"{caller}({dest}=...)" for dest, action in actions.items() if action.required
               and getattr(args, dest) is None]
    if missing:
        raise TinyR1Error(f"{caller}(): missing {', '.join(missing)}")
    return args


def parse_command(parser: argparse.ArgumentParser, argv: list[str] | None, values: dict | None = None,
                  caller: str | None = None):
    """A plain command's options from its command line (``argv``) or from a Python call (``values`` from
    ``caller``), range-checked (``tinyr1.infra.validate``) with messages naming the flag or the argument."""
    if values is not None:
        args, source = namespace(parser, values, caller or parser.prog), python_source(caller or parser.prog)
    else:
        args, source = parser.parse_args(argv), flag_source
    check(vars(args), source)
    return args
