"""What the fault tests share: a tiny run's arguments, a CLI started in the background, reading its folder, and a
small disk that fills up."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import ASSETS, REPO

TINY = ASSETS / "tiny-qwen2"


def train_args(gsm8k_dir, out, *extra) -> list[str]:
    """A GRPO run on the tiny model: a step takes well under a second, a checkpoint at every step."""
    return ["train", "--model_name_or_path", str(TINY), "--dataset_name", str(gsm8k_dir), "--dataset_limit", "16",
            "--num_generations", "4", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--max_completion_length", "16", "--output_dir", str(out), "--sample_every", "1", "--save_steps", "1",
            "--reward_funcs", "tests.train_helpers:length_reward", "correctness", "--learning_rate", "1e-2", *extra]


def resume_args(out, *extra) -> list[str]:
    """Continue the run in ``out`` from its own config.yaml (``out`` may be a copy: --output_dir names it)."""
    return ["train", "--config", str(out / "config.yaml"), "--output_dir", str(out), "--resume_from_checkpoint",
            "latest", *extra]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinyr1", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(condition, timeout: float = 180, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended early (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def lock_pid(out: Path) -> int | None:
    try:
        return int((out / ".tinyr1-lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def steps(out: Path) -> list[int]:
    """The steps metrics.jsonl logged, every line parsed (a torn line fails here)."""
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if line and "loss" in json.loads(line)]


def status(out: Path) -> str:
    return json.loads((out / "run.json").read_text())["status"]


def one_line(result: subprocess.CompletedProcess) -> str:
    """The refusal's text, checked to be one line of stderr and no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` for the block: a real full disk. Mounting needs root and a kernel
    that allows it (not a container without CAP_SYS_ADMIN); the test is skipped, saying so, where it cannot."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a small tmpfs, and mounting one needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
