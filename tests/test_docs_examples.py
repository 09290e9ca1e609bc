"""Every fenced example of README.md and docs/*.md runs as written or says above it what must exist first.

Each shell, Python and YAML block passes the checks of ``tests/docs_examples.py`` (names, keywords, inputs, the
commands and files it uses); a broken example fails them (shown below by breaking real ones). The Python API's
examples and the quickstart's by-hand commands also run, on the tiny model: the same code and commands, sizes
shrunk the way ``tests/test_notebook.py`` shrinks the notebooks (which that test runs in a Jupyter kernel).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from .conftest import ASSETS, REPO
from .docs_examples import ROOT, Block, all_blocks, blocks, problems

TINY = str(ASSETS / "tiny-qwen2")
BLOCKS = [b for b in all_blocks() if b.lang in ("bash", "sh", "shell", "console", "python", "yaml")]


def test_the_guides_hold_the_examples_this_checks():
    langs = {b.lang for b in BLOCKS}
    assert {"bash", "python", "yaml"} <= langs and len(BLOCKS) >= 25


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_every_example_passes_its_checks(block):
    assert problems(block) == []


def _doc_block(path: str, contains: str) -> Block:
    return next(b for b in blocks(ROOT / path) if contains in b.code)


@pytest.mark.parametrize("path, contains, old, new, said", [
    # a keyword the function does not take
    ("docs/python-api.md", "cold = tinyr1.sft", "max_steps=20", "max_step=20", "max_step=...): not a keyword"),
    ("docs/python-api.md", "args = GRPOConfig", "dynamic_sampling=True", "dynamic_samplin=True", "dynamic_samplin"),
    # a function that does not exist
    ("docs/python-api.md", "cold = tinyr1.sft", "tinyr1.evaluate(", "tinyr1.evaluat(", "tinyr1.evaluat does not"),
    # the recipe's cold start, no longer trained first
    ("docs/python-api.md", "cold = tinyr1.sft", "model=cold, ", "", "trains the recipe's model outputs/"),
    ("README.md", "grpo-arith-cpu.yaml --max_steps 20",
     "tinyr1 sft --config recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml", "",
     "recipe's model_name_or_path outputs/smollm2-135m-instruct-sft-arith-coldstart: not in the checkout"),
    # a command's input nobody made or named
    ("docs/evaluation.md", "--trained outputs/my-run", "# first: outputs/my-run", "#", "--trained outputs/my-run"),
    # a Makefile target, a script's flag, an extra that do not exist
    ("README.md", "make demo", "make demo", "make demoo", "no Makefile target demoo"),
    ("docs/benchmarks.md", "grpo-step-zen5", "--steps 4", "--stepz 4", "takes no --stepz"),
    ("docs/gpu.md", '".[qlora,deepspeed]"', '".[qlora,deepspeed]"', '".[qlora,deepspeedd]"', "no extra deepspeedd"),
    # a recipe key that is not a field
    ("docs/training.md", "dynamic_sampling: true", "dynamic_sampling: true", "dynamic_sampler: true",
     "dynamic_sampler: not a field"),
])
def test_a_broken_example_fails_its_check(path, contains, old, new, said):
    block = _doc_block(path, contains)
    assert problems(block) == []
    assert old in block.code
    broken = Block(block.path, block.line, block.lang, block.code.replace(old, new, 1), block.above)
    assert any(said in problem for problem in problems(broken)), problems(broken)


def test_an_example_using_what_the_text_above_does_not_name_fails():
    block = _doc_block("docs/python-api.md", "args = GRPOConfig")
    silent = Block(block.path, block.line, block.lang, block.code, block.above.replace("`my_reward`", "my_reward"))
    assert any("uses my_reward, which the block does not define" in p for p in problems(silent))


# ---------------------------------------------------------------- the examples run, on the tiny model

# The sizes the examples are shrunk to; every other value is the example's own.
SFT_SIZES = {"model_name_or_path": TINY, "max_steps": 1, "dataset_limit": 4, "max_length": 128, "lora_r": 4,
             "save_strategy": "no"}
GRPO_SIZES = {"dataset_limit": 8, "num_generations": 4, "per_device_train_batch_size": 4,
              "max_completion_length": 8, "max_steps": 1, "save_steps": 1000, "eval_before_after": False}


@pytest.fixture
def tiny_api(monkeypatch, tmp_path):
    """tinyr1's functions as the examples call them, on the tiny model, in a folder with the checkout's recipes."""
    import tinyr1

    real = {name: getattr(tinyr1, name) for name in ("train", "sft", "evaluate", "GRPOConfig")}
    monkeypatch.setattr(tinyr1, "sft", lambda config=None, **f: real["sft"](config, **{**f, **SFT_SIZES}))
    monkeypatch.setattr(tinyr1, "train", lambda config=None, **f: real["train"](config, **{**f, **GRPO_SIZES}))
    monkeypatch.setattr(tinyr1, "evaluate", lambda model, **o: real["evaluate"](
        TINY if model == "smollm2-135m-instruct" else model, **{**o, "limit": 4, "max_new_tokens": 8}))
    monkeypatch.setattr(tinyr1, "GRPOConfig", lambda **f: real["GRPOConfig"](**{
        **f, "max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
        "report_to": "none"}))
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _yours() -> dict:
    """What the text above the examples says is the reader's: a model, its tokenizer, rows and a reward."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def my_reward(completions, **kwargs):
        return [float(len(c[0]["content"]) % 5) for c in completions]

    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "answer": str(2 * i)} for i in range(8)]
    return {"model": AutoModelForCausalLM.from_pretrained(TINY), "tokenizer": AutoTokenizer.from_pretrained(TINY),
            "dataset": Dataset.from_list(rows), "my_reward": my_reward}


@pytest.mark.parametrize("contains", ["args = GRPOConfig", "cold = tinyr1.sft", "def shows_work"])
def test_the_python_api_examples_run(tiny_api, contains, capsys):
    block = _doc_block("docs/python-api.md", contains)
    namespace = _yours()
    exec(compile(block.code, block.name, "exec"), namespace)  # noqa: S102 - the documented example, as written
    run = namespace.get("run")
    if run is not None:
        assert run.status == "completed", run
    else:
        assert (tiny_api / "runs" / "a" / "report.md").is_file()  # the drop-in's trainer.train() and report


@pytest.mark.slow
def test_the_quickstart_commands_run_by_hand(tmp_path):
    """docs/quickstart.md's block "the same stages by hand", as a shell runs it, on the tiny model: the checkout's
    recipes with the offline model's name swapped for the tiny one's, and the same in the commands."""
    block = _doc_block("docs/quickstart.md", "tinyr1 compare --base smollm2-135m-instruct")
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    for recipe in (tmp_path / "recipes").rglob("*.yaml"):
        text = recipe.read_text().replace("model_name_or_path: smollm2-135m-instruct", f"model_name_or_path: {TINY}")
        if recipe.name.startswith("grpo"):  # a random tiny model earns no reward at all: the no-signal guard off
            text += "no_signal_patience: 0\n"
        recipe.write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tinyr1"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m tinyr1 "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    script = "set -e\n" + block.code.replace("smollm2-135m-instruct ", f"{TINY} ")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for made in ("outputs/quick/eval-base/metrics.json", "outputs/quick/coldstart/adapter_config.json",
                 "outputs/quick/grpo/model.safetensors", "outputs/quick/grpo/report.md"):
        assert (tmp_path / made).is_file(), made
