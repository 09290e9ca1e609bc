"""tinyr1.training.callbacks' GracefulStop: the first signal saves a checkpoint at the end of the step and says how to
resume (train and sft alike); a second stops within seconds mid-step."""

import json
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import ASSETS, REPO

SIGNAL_SCRIPT = """
import sys, time, torch
from tinyr1.training.callbacks import GracefulStop
stop = GracefulStop(on_abort=lambda: print("abort hook ran", file=sys.stderr, flush=True))
stop.on_train_begin(None, None, None)
print("ready", flush=True)
a = torch.randn(2000, 2000)
end = time.time() + 120
while time.time() < end:  # a step in progress: long native calls, no step boundary for two minutes
    a = (a @ a).clamp(-1, 1)
"""


@pytest.mark.parametrize("first,second", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT),
                                          (signal.SIGTERM, signal.SIGINT)])
def test_a_second_signal_stops_within_seconds_mid_step(first, second):
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"),
                                                      "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(first)
        time.sleep(1.0)
        assert proc.poll() is None  # the first signal waits for the end of the step
        sent = time.time()
        proc.send_signal(second)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert time.time() - sent < 10
    assert proc.returncode == 128 + second
    assert "saving a checkpoint at the end of step 1" in out
    assert "stopping now; lost: step 1 (in progress)" in err and "abort hook ran" in err


def sigterm_after_first_step(args: list[str], out) -> str:
    """Run the CLI, send SIGTERM once its first step is logged, expect exit 143; its stdout."""
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    return stdout


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "tinyr1", "train", "--model_name_or_path", str(ASSETS / "tiny-qwen2"),
            "--dataset_name", str(gsm8k_dir), "--dataset_limit", "64", "--num_generations", "4",
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1", "--max_completion_length", "8",
            "--output_dir", str(out), "--max_steps", "2000", "--save_steps", "100000", "--sample_every", "0"]
    stdout = sigterm_after_first_step(args, out)
    assert "resume with: tinyr1 train --config" in stdout and "--resume_from_checkpoint latest" in stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["global_step"] < 2000
    assert (out / f"checkpoint-{run['global_step']}" / "trainer_state.json").is_file()


def test_sft_stops_on_sigterm_with_a_checkpoint_like_train(tmp_path):
    out = tmp_path / "sft"
    args = [sys.executable, "-m", "tinyr1", "sft", "--model_name_or_path", str(ASSETS / "tiny-qwen2"),
            "--dataset_name", str(ASSETS / "alpaca_tiny.json"), "--lora_r", "8", "--output_dir", str(out),
            "--max_steps", "100000", "--save_steps", "100000"]
    stdout = sigterm_after_first_step(args, out)
    assert "resume with: tinyr1 sft --config" in stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and 0 < run["global_step"] < 100000
    assert (out / f"checkpoint-{run['global_step']}" / "trainer_state.json").is_file()
