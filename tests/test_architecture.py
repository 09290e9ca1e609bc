"""The layers of docs/architecture.md hold: imports run one way (interface -> library -> infra), never back up, and
an import of tinyr1 inside a function says why it is lazy."""

import ast
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
        "__init__", "attention", "decode_loop", "packing", "shared_prompts", "touchpoints", "trainer"]


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
