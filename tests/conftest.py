"""Shared fixtures and helpers. Real GSM8K is read from ``$TINYR1_GSM8K_DIR`` (default ``../shared/data/gsm8k``),
never copied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyr1.tasks.data import default_gsm8k_dir

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    path = default_gsm8k_dir()
    if not (path / "train.jsonl").is_file():
        # Fail, not skip: a CI run that silently skipped every data test would prove nothing.
        pytest.fail(f"real GSM8K not found at {path}; set TINYR1_GSM8K_DIR or place ../shared/data/gsm8k")
    return path


def chat(text: str) -> list[dict]:
    """One completion as trl passes a chat completion to a reward function."""
    return [{"role": "assistant", "content": text}]


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSON-lines file a test's run wrote; read independently of ``tinyr1.infra.files``, which is
    under test. Not splitlines(): GSM8K text holds characters such as U+2028 that it would split on."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m tinyr1 ...`` as a user would, capturing output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tinyr1", *args], capture_output=True, text=True, cwd=cwd,
                          env=full_env, timeout=900)


def mark_run(folder: Path, command: str = "train") -> Path:
    """Make ``folder`` a tinyr1 run as a run's claim does (its marker, ``tinyr1.run_folder.ownership``), so tests can
    hand-write a run's files and have report and resume treat the folder as a run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".tinyr1-run").write_text(json.dumps({"command": command, "paths": [], "foreign": []}))
    return folder


@pytest.fixture
def cli():
    return run_cli


def make_qlora_model(folder: Path, extra_rows: int = 0) -> Path:
    """A randomly initialised 2-layer Qwen2 with tiny-qwen2's tokenizer and widths bitsandbytes' CPU backend takes:
    every linear layer's inputs a multiple of its 64-value blocks and outputs a multiple of 32 (tiny-qwen2's are 16
    and 8). ``extra_rows``: embedding rows beyond the tokenizer's, as Qwen2.5 pads its vocabulary. Built in a
    second, not shipped."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "tiny-qwen2")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer) + extra_rows, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, initializer_range=0.3)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def qlora_model(tmp_path_factory) -> Path:
    import importlib.util
    import platform

    if importlib.util.find_spec("bitsandbytes") is None:
        if sys.platform.startswith("linux") and platform.machine() == "x86_64":
            # Fail, not skip: the dev extra installs it here, and CI must not pass by skipping the 4-bit tests.
            pytest.fail('bitsandbytes is missing; pip install -c constraints.txt -e ".[dev]"')
        pytest.skip("bitsandbytes has no wheel for this platform in the dev extra")
    return make_qlora_model(tmp_path_factory.mktemp("qlora") / "tiny-qwen2-64")
