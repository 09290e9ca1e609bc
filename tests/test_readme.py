"""The README and the guides say what is true: every ``tinyr1 ...`` command in their code blocks is accepted by that
command's parser, and the README's Layout lists every module under src/tinyr1 and nothing else.

Commands are parsed, never run: train and sft through ``parse_args(argv, check_setup=False)``, the others through
their own argparse parser, stopped right after a successful parse. A misspelt flag, a value of the wrong type, a
missing required option or an unknown command fails here. An example path that stands for the reader's own file
(``--config RECIPE.yaml``, a run folder under ``outputs/``) is dropped before parsing; a ``recipes/...`` path must
exist, so a renamed recipe fails too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tinyr1"
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_blocks(text: str) -> list[str]:
    """The bodies of fenced ```bash / ```sh / ``` blocks (not ```text or ```python)."""
    return re.findall(r"^```(?:bash|sh|shell|console)?\n(.*?)^```", text, flags=re.S | re.M)


def tinyr1_commands(block: str) -> list[list[str]]:
    """Each ``tinyr1 ...`` invocation in a shell block as its arguments after ``tinyr1``: direct, after environment
    assignments, or as ``python -m tinyr1`` / ``accelerate launch ... -m tinyr1``."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        for stop in ("|", "&&", ";", ">", "2>&1"):
            if stop in tokens:
                tokens = tokens[:tokens.index(stop)]
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
            tokens = tokens[1:]
        if tokens[:1] == ["tinyr1"]:
            found.append(tokens[1:])
        elif "-m" in tokens and tokens[tokens.index("-m") + 1:tokens.index("-m") + 2] == ["tinyr1"]:
            found.append(tokens[tokens.index("-m") + 2:])
    return found


def documented_commands() -> list[tuple[str, list[str]]]:
    return [(f"{path.name}: tinyr1 {shlex.join(argv)}", argv)
            for path in GUIDES for block in code_blocks(path.read_text(encoding="utf-8"))
            for argv in tinyr1_commands(block)]


class _Parsed(Exception):
    """Raised by the patched ``parse_args`` once a command's options parsed: nothing past the parser runs."""


def _without_placeholder_config(argv: list[str]) -> list[str]:
    if "--config" not in argv:
        return argv
    i = argv.index("--config")
    path = argv[i + 1]
    if path.startswith("recipes/"):
        assert (ROOT / path).is_file(), f"--config {path}: no such recipe"
        return argv
    if (ROOT / path).is_file():
        return argv
    return argv[:i] + argv[i + 2:]  # the reader's own file (RECIPE.yaml, outputs/run/config.yaml)


def parse_only(argv: list[str], monkeypatch) -> None:
    """Parse ``tinyr1 <argv>`` the way the command would, and stop before it does anything."""
    from tinyr1 import cli

    if argv in (["--help"], ["--version"]):
        assert cli.main(argv) == 0
        return
    command, rest = argv[0], argv[1:]
    assert command in cli.COMMANDS, f"unknown command {command!r}"
    monkeypatch.chdir(ROOT)  # recipes and tests/assets are named relative to the checkout
    if command in ("train", "sft"):
        module = importlib.import_module(f"tinyr1.commands.{command}")
        module.parse_args(_without_placeholder_config(rest), check_setup=False)
        return
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    with pytest.raises(_Parsed) as parsed:
        importlib.import_module(f"tinyr1.commands.{cli.COMMANDS[command][0]}").main(rest)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", original)
    options = parsed.value.args[0]
    if command == "doctor" and options.config:  # doctor's recipe is parsed as its command would parse it
        module = importlib.import_module(f"tinyr1.commands.{options.command}")
        module.parse_args(_without_placeholder_config(["--config", options.config]), check_setup=False)


COMMANDS = documented_commands()


def test_the_guides_hold_commands():
    readme = [c for c, _ in COMMANDS if c.startswith("README.md")]
    assert len(readme) >= 3 and any(c.startswith("quickstart.md") for c, _ in COMMANDS)


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS], ids=[c for c, _ in COMMANDS])
def test_documented_command_parses(argv, monkeypatch):
    environ = dict(os.environ)  # a recipe's env: block writes os.environ
    try:
        parse_only(argv, monkeypatch)
    finally:
        os.environ.clear()
        os.environ.update(environ)


@pytest.mark.parametrize("argv, wrong", [
    (["train", "--config", "recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", "--learnig_rate", "1e-5"],
     "learnig_rate"),
    (["sft", "--max_step", "3"], "max_step"),
    (["train", "--max_steps", "many"], "many"),
    (["eval", "--model_name_or_path", "m", "--limt", "3", "--output_dir", "o"], "limt"),
    (["compare", "--base", "a", "--trained", "b", "--max_new_tokns", "9"], "max_new_tokns"),
    (["prepare", "--dataset_name", "x", "--output", "y", "--limt", "3"], "limt"),
    (["compare", "--evals", "only-one-folder"], "--evals"),  # two folders, before and after
    (["train", "--config", "recipes/no-such-model/grpo.yaml"], "no-such-model"),
    (["trian", "--max_steps", "3"], "trian"),
])
def test_a_misspelt_command_fails(argv, wrong, monkeypatch):
    with pytest.raises((Exception, SystemExit)) as raised:
        parse_only(argv, monkeypatch)
    assert not isinstance(raised.value, _Parsed)
    assert wrong in str(raised.value)


def layout_modules() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", section, flags=re.M))  # the table's first column


def test_readme_layout_lists_every_module_and_no_other():
    tree = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    listed = layout_modules()
    assert sorted(tree - listed) == [], "modules missing from README's Layout"
    assert sorted(listed - tree) == [], "README's Layout lists modules that do not exist"


def test_the_readmes_first_screen_leaves_the_numbers_to_its_table():
    """The first 40 lines: a reader sees the measured numbers in the table; the prose around it carries at most 40
    numbers (a version, a core count, a link), not the table's again."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split("\n")[:40]
    prose = [line for line in lines if not line.startswith("|")]
    numbers = [n for line in prose for n in re.findall(r"\d+(?:[.,]\d+)*", line)]
    assert len(numbers) <= 40, numbers
    assert sum(line.startswith("|") for line in lines) >= 5, "the results table left the first screen"
