"""pytest plugin for running trl's trainer tests offline, on plain trl or with tinyr1's classes swapped in.

Loaded by run.py with `-p trl_tests_plugin`; reads its settings from the environment:
  TRL_TESTS_MANIFEST  the stand-ins' manifest.json (standins.py): hub ids with a local stand-in
  TRL_TESTS_SWAP      "tinyr1" replaces GRPOTrainer/GRPOConfig/SFTTrainer/SFTConfig in the test modules with
                      tinyr1's; anything else runs plain trl

What it does, and nothing more:
- points `datasets.load_dataset` at the local stand-in datasets (models load from the private HF_HOME cache);
- skips a test that needs a hub repository without a stand-in, so "needs the network" is counted as a skip, not a
  failure: at collection when its parameters (or its class's setup) name one, and after the fact when it raised
  the hub's offline error (the skip reason quotes the error);
- provides `lazy_shared_datadir` (pytest-datadir's fixture, which trl's tests use for tests/data), as a copy of
  the extracted tests/data in the test's temporary folder;
- fills helpers the test revision imports but the installed trl lacks (the revision is a newer dev version than
  some names of trl 1.16): availability checks are answered truthfully, and a missing function skips the test
  that calls it, naming it.
"""

import ast
import importlib.util
import inspect
import json
import os
import re
import textwrap

import pytest

HUB_ID = re.compile(
    r"^(trl-internal-testing|Qwen|google|HuggingFaceTB|stanfordnlp|kernels-community|meta-llama)/[\w.-]+$")
OFFLINE_ERRORS = {"OfflineModeIsEnabled", "LocalEntryNotFoundError"}
OFFLINE_MARKERS = ("outgoing traffic has been disabled", "couldn't find them in the cached files",
                   "on the Hub (OfflineModeIsEnabled)", "HF_HUB_OFFLINE")
SWAPPED = ("GRPOTrainer", "GRPOConfig", "SFTTrainer", "SFTConfig")
# trl.import_utils helpers the test revision imports, and the package each one checks for.
AVAILABILITY = {"is_joblib_available": "joblib", "is_fastapi_available": "fastapi",
                "is_pydantic_available": "pydantic", "is_uvicorn_available": "uvicorn",
                "is_vllm_ascend_available": "vllm_ascend"}
# Module-level functions the test revision imports from trl that trl 1.16 does not have.
MISSING_FUNCTIONS = {
    "trl.trainer.sft_trainer": ("dft_loss", "_chunked_cross_entropy_loss", "_patch_chunked_ce_lm_head")}


def _manifest() -> dict:
    path = os.environ.get("TRL_TESTS_MANIFEST")
    if not path:
        raise pytest.UsageError("TRL_TESTS_MANIFEST is not set: run the tests through benchmarks/trl_tests/run.py")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _absent(module: str, name: str):
    def skip(*args, **kwargs):
        pytest.skip(f"installed trl has no {module}.{name}")

    skip.__name__ = name
    return skip


@pytest.fixture
def lazy_shared_datadir(request, tmp_path):
    import shutil
    from pathlib import Path

    source = Path(str(request.fspath)).parent / "data"
    return Path(shutil.copytree(source, tmp_path / "data"))


def _install_compat() -> None:
    import_utils = importlib.import_module("trl.import_utils")
    for name, package in AVAILABILITY.items():
        if not hasattr(import_utils, name):
            setattr(import_utils, name, lambda package=package: importlib.util.find_spec(package) is not None)
    for module_name, names in MISSING_FUNCTIONS.items():
        module = importlib.import_module(module_name)
        for name in names:
            if not hasattr(module, name):
                setattr(module, name, _absent(module_name, name))


def _redirect_datasets(local: dict[str, str]) -> None:
    import datasets

    original = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        return original(local.get(path, path), *args, **kwargs)

    datasets.load_dataset = load_dataset


def pytest_configure(config):
    manifest = _manifest()
    config._trl_tests_available = set(manifest["models"]) | set(manifest["datasets"])
    _install_compat()
    _redirect_datasets(manifest["datasets"])


def _offline_error(excinfo) -> str | None:
    """The hub's "not cached and offline" error anywhere in the exception's chain, as one line, else None."""
    seen, exc = set(), excinfo.value
    stack = [exc]
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        name = type(exc).__name__
        text = str(exc)
        if name in OFFLINE_ERRORS or any(marker in text for marker in OFFLINE_MARKERS):
            return f"{name}: {text.splitlines()[0] if text else ''}"
        stack += [exc.__cause__, exc.__context__]
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or report.outcome != "failed":
        return
    error = _offline_error(call.excinfo)
    if error:
        report.outcome = "skipped"
        reason = f"Skipped: needs the hub (no local stand-in): {error}"
        report.longrepr = (str(item.path), item.location[1] or 0, reason)


def _body_strings(function) -> set[str]:
    """String constants in a test's body (not its decorators: a parametrize list names every case's model)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return set()
    node = ast.parse(source).body[0]
    found = set()
    for statement in node.body:
        for child in ast.walk(statement):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                found.add(child.value)
    return found


def _param_strings(item) -> set[str]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return set()
    found = set()
    for value in callspec.params.values():
        values = value if isinstance(value, (list, tuple)) else [value]
        found.update(v for v in values if isinstance(v, str))
    return found


def _swap_to_tinyr1(items) -> None:
    import tinyr1

    for module in {item.module for item in items if getattr(item, "module", None) is not None}:
        for name in SWAPPED:
            if hasattr(module, name):
                setattr(module, name, getattr(tinyr1, name))


def pytest_collection_modifyitems(config, items):
    available = config._trl_tests_available
    for item in items:
        cls = getattr(item, "cls", None)
        strings = _param_strings(item)
        for hook in ("setup_method", "setUp"):
            if cls is not None and hasattr(cls, hook):
                strings |= _body_strings(getattr(cls, hook))
        missing = sorted(s for s in strings if HUB_ID.match(s) and s not in available)
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"no local stand-in for {', '.join(missing)}"))
    if os.environ.get("TRL_TESTS_SWAP") == "tinyr1":
        _swap_to_tinyr1(items)


def pytest_report_header(config):
    import trl

    swap = os.environ.get("TRL_TESTS_SWAP") or "trl"
    where = ""
    if swap == "tinyr1":
        import tinyr1

        where = f" ({os.path.dirname(tinyr1.__file__)})"
    return f"trl {trl.__version__}; classes under test: {swap}{where}"
