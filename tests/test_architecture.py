"""The layers of docs/architecture.md hold: imports run one way (interface -> library -> infra), never back up, and
an import of tinyr1 inside a function says why it is lazy."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tinyr1"

# The layers, top to bottom: a module may import its own folder and any folder below its own, nothing above.
RANKS = {"interface": 9, "training": 6, "evaluation": 5, "models": 4, "run_folder": 3, "tasks": 2, "cpu": 2,
         "infra": 1}
INTERFACE = {"__init__", "__main__", "cli", "api", "api_inputs", "api_process", "api_results", "commands"}


def layer(module: str) -> str:
    """``tinyr1.training.grpo`` -> ``training``; the package itself, the CLI, the API and commands -> interface."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return "interface" if top in INTERFACE else top


def imports(path: Path):
    """Every ``tinyr1`` module a file imports: (line, imported module, inside a function?, the line's text)."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tinyr1":
            names = [f"{node.module}.{a.name}" if node.module.count(".") == 1 or node.module == "tinyr1" else
                     node.module for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "tinyr1"]
        else:
            continue
        for name in names:
            yield node.lineno, name, id(node) not in top_level, lines[node.lineno - 1], lines[node.lineno - 2]


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_run_down_the_layers_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_of(path)
        for line, name, _, _, _ in imports(path):
            if name in ("tinyr1.__version__", "tinyr1"):
                name = "tinyr1.__init__"
            mine, theirs = layer(here), layer(name)
            same_folder = mine == theirs
            if not same_folder and RANKS[theirs] >= RANKS[mine]:
                upward.append(f"{here}:{line} imports {name} ({mine} -> {theirs})")
    assert upward == [], "imports that run up or across the layers (docs/architecture.md)"


def test_the_cpu_fast_path_holds_only_the_fast_path():
    assert sorted(p.stem for p in (PACKAGE / "cpu").glob("*.py")) == [
        "__init__", "attention", "decode_loop", "fast_path", "packing", "shared_prompts", "touchpoints"]


def test_an_import_inside_a_function_says_why_it_is_lazy():
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, _name, inner, text, before in imports(path):
            if inner and "lazy" not in text and "lazy" not in before:
                unexplained.append(f"{module_of(path)}:{line} {text.strip()}")
    assert unexplained == [], "function-level imports without a '# lazy: why' comment"


def test_the_layers_are_the_ones_documented():
    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    for folder in RANKS:
        if folder != "interface":
            assert f"`{folder}/`" in text, folder


# ---------------------------------------------------------------- the trl-facing surface and the caller's language

def overridden(cls, base) -> set[str]:
    """The methods ``cls`` defines in its own body that ``base`` (or a class above it) has too."""
    return {name for name, value in vars(cls).items() if callable(value) and name != "__init__"
            and any(name in vars(k) for k in base.__mro__)}


def test_the_override_table_of_docs_architecture_is_the_trainers():
    import re

    import trl

    from tinyr1 import GRPOTrainer, SFTTrainer

    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    table = {}
    for method, classes in re.findall(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \|", text, flags=re.M):
        for cls in re.findall(r"`(\w+)`", classes):
            table.setdefault(cls, set()).add(method)
    assert table["GRPOTrainer"] == overridden(GRPOTrainer, trl.GRPOTrainer)
    assert table["SFTTrainer"] == overridden(SFTTrainer, trl.SFTTrainer)
    assert GRPOTrainer.__bases__ == (trl.GRPOTrainer,) and SFTTrainer.__bases__ == (trl.SFTTrainer,)


# Modules no Python API function reaches: their only caller is the command line.
COMMAND_LINE_ONLY = {"commands/doctor.py"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z_0-9]*")


def message_parts(tree):
    """(line, text) of every string a message can be made of: every string constant but docstrings, the help texts
    of options (``help=``, a field's ``metadata``, argparse's calls, a ``DESCRIPTION``)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("help", "description", "epilog", "usage", "metadata"):
            skip |= {id(sub) for sub in ast.walk(node.value)}
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("add_argument", "add_parser"):
            skip |= {id(sub) for sub in ast.walk(node)}
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            skip.add(id(node.body[0].value))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith(("DESCRIPTION", "HELP"))
                                                for t in node.targets):
            skip |= {id(sub) for sub in ast.walk(node.value)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_no_message_to_a_python_caller_names_a_command_line_flag():
    """Settings are named through ``tinyr1.infra.naming.setting``, which speaks flags only on the command line. The
    exceptions: ``tinyr1.cli`` itself, the commands' ``main`` (the command line's entry), argv parsing (a line
    marked ``# the command line's own``), and pip's flags."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py" or path.relative_to(PACKAGE).as_posix() in COMMAND_LINE_ONLY:
            continue
        source = path.read_text()
        lines, tree = source.splitlines(), ast.parse(source)
        mains = [(f.lineno, f.end_lineno) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "main"]
        for line, text in message_parts(tree):
            flags = [f for f in FLAG.findall(text) if f not in ("--no", "--force")]
            near = range(max(0, line - 2), min(len(lines), line + 4))
            own = any("# the command line's own" in lines[i] for i in near) or any(a <= line <= b for a, b in mains)
            if flags and not own and "pip install" not in text:
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {text.strip()[:80]!r}")
    assert found == [], "messages that name a flag whatever the caller (use tinyr1.infra.naming.setting)"
    api = "".join(p.read_text() for p in PACKAGE.glob("api*.py"))
    assert not any(f"commands.{Path(m).stem}" in api or f"commands import {Path(m).stem}" in api
                   for m in COMMAND_LINE_ONLY)
