"""The fenced examples of README.md and docs/*.md, and the checks each kind gets (``tests/test_docs_examples.py``).

An example runs as written or says, in the paragraph above it or in a ``# first: ...`` comment line before its use,
what must exist first. ``problems(block)`` checks that without running anything:

- shell blocks: each ``tinyr1`` command's inputs (a model, a run folder, a recipe, data) exist in the checkout, are
  written by an earlier command of the same block, or are named above; a recipe's own model counts as an input. Every
  other line is a command this checkout has: a Makefile target, a script under ``benchmarks/`` with the flags it
  passes, a ``pip install`` of extras and files that exist, ``accelerate launch`` with a config that exists;
- python blocks: every name is defined in the block, a builtin, or named above; every ``tinyr1.<name>`` exists;
  every keyword given to a tinyr1 function or class is one it takes (for ``train`` and ``sft``: the recipe's
  fields, as the API checks them);
- yaml blocks: every key is a field of ``tinyr1 train``'s recipe.

``tinyr1`` commands are also parsed by their own parsers in ``tests/test_readme.py``. Blocks in other languages
(``text``, none) show output and are not checked.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import inspect
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL, PYTHON, YAML = ("bash", "sh", "shell", "console"), ("python", "py"), ("yaml", "yml")


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    code: str
    above: str  # the paragraph just before the fence: where "what must exist first" is said

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path, text: str | None = None) -> list[Block]:
    text = path.read_text(encoding="utf-8") if text is None else text
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        before = text[:match.start()].rstrip("\n")
        above = before.split("\n\n")[-1]
        found.append(Block(path, before.count("\n") + 2, match.group(1), match.group(2), above))
    return found


def all_blocks() -> list[Block]:
    return [block for path in GUIDES for block in blocks(path)]


def problems(block: Block) -> list[str]:
    if block.lang in SHELL:
        return shell_problems(block)
    if block.lang in PYTHON:
        return python_problems(block)
    if block.lang in YAML:
        return yaml_problems(block)
    return []


# ---------------------------------------------------------------- shell


def _named_above(value: str, block: Block, comments: str) -> bool:
    """``value``, or the folder it is in (a run's config.yaml: the run), named above or in a comment before it."""
    names = [value, *(str(p) for p in Path(value).parents if len(p.parts) > 1)]
    return any(f"`{name}`" in block.above or re.search(rf"{re.escape(name)}\b", comments) for name in names)


def _local(value: str) -> bool:
    """A path on this machine, not a hub id (``owner/name``) nor the offline alias."""
    return (value.startswith((".", "/", "~", "outputs/", "runs/", "my")) or value.count("/") > 1
            or value.endswith((".json", ".jsonl", ".yaml", ".parquet", ".gguf")))


def _placeholder(value: str) -> bool:
    """The reader's own file, written as a placeholder: RECIPE.yaml, path/to/...."""
    return bool(re.fullmatch(r"[A-Z_]+\.\w+", Path(value).name)) or value.startswith("path/to/")


INPUTS = {"train": ("--config", "--model_name_or_path", "--dataset_name", "--resume_from_checkpoint"),
          "sft": ("--config", "--model_name_or_path", "--dataset_name"),
          "eval": ("--model_name_or_path", "--dataset_name", "--adapter", "--predictions"),
          "compare": ("--base", "--trained", "--evals"), "generate": ("--model_name_or_path", "--adapter"),
          "doctor": ("--config",), "prepare": ("--dataset_name",), "report": ()}


def _options(argv: list[str]) -> dict[str, list[str]]:
    found, key = {"": []}, ""
    for token in argv:
        if token.startswith("--"):
            key = token
            found.setdefault(key, [])
        else:
            found.setdefault(key, []).append(token)
    return found


def _recipe(path: str) -> dict:
    file = ROOT / path
    return yaml.safe_load(file.read_text(encoding="utf-8")) if file.is_file() else {}


def tinyr1_problems(argv: list[str], block: Block, made: set[str], comments: str) -> list[str]:
    """The inputs of one ``tinyr1`` command, and what it writes (added to ``made``)."""
    command, options = argv[0], _options(argv[1:])
    wanted = [(flag, value) for flag in INPUTS.get(command, ()) for value in options.get(flag, [])]
    if command == "report":
        wanted += [("run_dir", value) for value in options[""][1:] if value]  # [0] is the command itself
    recipe = _recipe(options.get("--config", [""])[0]) if "--config" in options else {}
    if command in ("train", "sft") and "--model_name_or_path" not in options and recipe.get("model_name_or_path"):
        wanted.append(("the recipe's model_name_or_path", str(recipe["model_name_or_path"])))
    found = []
    for flag, value in wanted:
        if flag == "--resume_from_checkpoint" and value in ("latest", "true", "True"):
            continue
        if not _local(value) or _placeholder(value) or (ROOT / value).exists() or value.rstrip("/") in made:
            continue
        if not _named_above(value, block, comments):
            found.append(f"{block.name}: tinyr1 {command} {flag} {value}: not in the checkout, not written by an "
                         "earlier command of the block, and not named above it as something to make first")
    for flag in ("--output_dir", "--output"):
        made.update(v.rstrip("/") for v in options.get(flag, []))
    if command in ("train", "sft") and "--output_dir" not in options and recipe.get("output_dir"):
        made.add(str(recipe["output_dir"]).rstrip("/"))
    return found


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))


def _extras() -> set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def other_problems(tokens: list[str], block: Block) -> list[str]:
    """A shell line that is not a tinyr1 command: something this checkout has."""
    where = f"{block.name}: {shlex.join(tokens)}"
    head = tokens[0]
    if head == "make":
        missing = [t for t in tokens[1:] if "=" not in t and t not in _makefile_targets()]
        return [f"{where}: no Makefile target {t}" for t in missing]
    if head in (".", "source") or tokens[:3] == ["python3", "-m", "venv"]:
        return []
    if head in ("pip", "pip3") or tokens[1:3] == ["-m", "pip"]:
        found = []
        for i, token in enumerate(tokens):
            extras = re.fullmatch(r"\.\[([\w,-]+)\]", token)
            if extras:
                found += [f"{where}: no extra {e} in pyproject.toml" for e in extras.group(1).split(",")
                          if e not in _extras()]
            if token in ("-c", "-r") and not (ROOT / tokens[i + 1]).is_file():
                found.append(f"{where}: no file {tokens[i + 1]}")
        return found
    if head == "trackio":  # the [trackio] extra's command
        return [] if "trackio" in _extras() else [f"{where}: trackio is no extra of pyproject.toml"]
    if head == "accelerate":
        config = tokens[tokens.index("--config_file") + 1] if "--config_file" in tokens else None
        return [] if config is None or (ROOT / config).is_file() else [f"{where}: no file {config}"]
    script = next((t for t in tokens if t.startswith("benchmarks/")), None)
    if script is not None and (head == "bash" or head.endswith("python") or head.endswith("python3")):
        if not (ROOT / script).is_file():
            return [f"{where}: no file {script}"]
        text = (ROOT / script).read_text(encoding="utf-8")
        return [f"{where}: {script} takes no {t}" for t in tokens if t.startswith("--") and f'"{t}"' not in text]
    return [f"{where}: a command tests/docs_examples.py does not know how to check; add a check for it"]


def _lines(code: str):
    """(tokens, comments so far) per shell command line: continuations joined, environment assignments and
    redirections dropped."""
    comments = ""
    for line in code.replace("\\\n", " ").splitlines():
        if line.strip().startswith("#"):
            comments += line + "\n"
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split()
        for stop in ("|", "&&", ";", ">", "2>&1", "&"):
            if stop in tokens:
                tokens = tokens[:tokens.index(stop)]
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # a quoted value is one token
            tokens = tokens[1:]
        if "#" in line:
            comments += line[line.index("#"):] + "\n"
        if tokens:
            yield tokens, comments


def shell_problems(block: Block) -> list[str]:
    found, made = [], set()
    for tokens, comments in _lines(block.code):
        if tokens[0] == "tinyr1":
            found += tinyr1_problems(tokens[1:], block, made, comments)
        elif "-m" in tokens and tokens[tokens.index("-m") + 1:tokens.index("-m") + 2] == ["tinyr1"]:
            found += other_problems(tokens, block) if tokens[0] == "accelerate" else []
            found += tinyr1_problems(tokens[tokens.index("-m") + 2:], block, made, comments)
        else:
            found += other_problems(tokens, block)
    return found


# ---------------------------------------------------------------- python


def _recipe_fields(command: str) -> set[str]:
    from trl import ModelConfig

    import tinyr1
    from tinyr1.training.fields import GRPOScriptArguments, SFTScriptArguments

    config, script = (tinyr1.GRPOConfig, GRPOScriptArguments) if command == "train" else \
        (tinyr1.SFTConfig, SFTScriptArguments)
    return {f.name for dtype in (config, script, ModelConfig) for f in dataclasses.fields(dtype)}


def accepted_keywords(name: str) -> set[str] | None:
    """The keywords ``tinyr1.<name>`` takes; None where it takes any."""
    import tinyr1

    target = getattr(tinyr1, name)
    params = inspect.signature(target).parameters
    named = {p for p, v in params.items() if v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)}
    if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
        return named
    if name in ("train", "sft"):
        return named | _recipe_fields(name)
    commands = {"evaluate": "evaluate", "compare": "compare", "generate": "generate", "prepare": "prepare"}
    if name in commands:
        import importlib

        parser = importlib.import_module(f"tinyr1.commands.{commands[name]}").build_parser()
        return named | {action.dest for action in parser._actions}
    if dataclasses.is_dataclass(target):
        return {f.name for f in dataclasses.fields(target)}
    return None


def _defined(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args
            names.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                         *(x for x in (args.vararg, args.kwarg) if x)])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def python_problems(block: Block) -> list[str]:
    import tinyr1

    where = block.name
    try:
        tree = ast.parse(block.code)
    except SyntaxError as err:
        return [f"{where}: not valid Python ({err.msg}, line {err.lineno})"]
    defined, found = _defined(tree), []
    from_tinyr1 = {a.asname or a.name: a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module == "tinyr1" for a in node.names}
    for name in from_tinyr1.values():
        if not hasattr(tinyr1, name):
            found.append(f"{where}: from tinyr1 import {name}: tinyr1 has no {name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in defined and not hasattr(builtins, node.id) and f"`{node.id}`" not in block.above:
                found.append(f"{where}: uses {node.id}, which the block does not define and the text above does "
                             "not name as yours")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tinyr1" \
                and not hasattr(tinyr1, node.attr):
            found.append(f"{where}: tinyr1.{node.attr} does not exist")
        if isinstance(node, ast.Call):
            func = node.func
            name = (func.attr if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "tinyr1" else from_tinyr1.get(func.id) if isinstance(func, ast.Name)
                    else None)
            if name is None or not hasattr(tinyr1, name):
                continue
            accepted = accepted_keywords(name)
            for keyword in node.keywords:
                if keyword.arg is not None and accepted is not None and keyword.arg not in accepted:
                    found.append(f"{where}: tinyr1.{name}(... {keyword.arg}=...): not a keyword it takes")
            found += _recipe_model_problems(name, node, block)
    return sorted(set(found))


def _recipe_model_problems(name: str, call: ast.Call, block: Block) -> list[str]:
    """``tinyr1.train(recipe)`` without a model of its own trains the recipe's: it must exist or be named above."""
    given = {k.arg for k in call.keywords}
    if name not in ("train", "sft") or not call.args or {"model", "model_name_or_path"} & given:
        return []
    recipe = call.args[0].value if isinstance(call.args[0], ast.Constant) else None
    model = str(_recipe(recipe).get("model_name_or_path", "")) if isinstance(recipe, str) else ""
    if not model or not _local(model) or (ROOT / model).exists() or f"`{model}`" in block.above:
        return []
    return [f"{block.name}: tinyr1.{name}({recipe!r}) trains the recipe's model {model}, which is not in the "
            "checkout and not named above as something to make first"]


# ---------------------------------------------------------------- yaml


def yaml_problems(block: Block) -> list[str]:
    values = yaml.safe_load(block.code) or {}
    fields = _recipe_fields("train") | {"env"}
    return [f"{block.name}: {key}: not a field of tinyr1 train's recipe" for key in values if key not in fields]
