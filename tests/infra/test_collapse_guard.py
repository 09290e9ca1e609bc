"""The collapse guard's parts: degenerate-output detection through the reward wrappers, and a clean stop on SIGTERM."""

import json
import signal
import subprocess
import sys
import time

from transformers import TrainerControl, TrainerState

from tinyr1.infra.collapse_guard import DegenerateGuard, is_degenerate
from tinyr1.infra.run_callbacks import SampleRecorder
from tinyr1.tasks.rewards import get_reward_funcs

from ..conftest import ASSETS, REPO


def chat(text):
    return [{"role": "assistant", "content": text}]


def test_is_degenerate_on_text_and_tokens():
    assert is_degenerate("!" * 30) and is_degenerate("ab", token_ids=[0] * 20)
    assert not is_degenerate("<reasoning>\n4 - 1 - 1 = 2\n</reasoning>\n<answer>\n2\n</answer>")
    assert not is_degenerate("!!!")  # too short to judge


def test_degenerate_steps_warn_then_stop(tmp_path, capsys):
    guard = DegenerateGuard(threshold=0.8, patience=3)
    recorder = SampleRecorder(get_reward_funcs(["xmlcount", "correctness"]), tmp_path, sample_every=1,
                              degenerate_guard=guard)
    assert [f.__name__ for f in recorder.reward_funcs] == ["xmlcount_reward_func", "correctness_reward_func"]
    state = TrainerState()
    healthy = [chat("<reasoning>\nok\n</reasoning>\n<answer>\n2\n</answer>\n")] * 4
    collapsed = [chat("!" * 50)] * 4
    for step, completions in enumerate([collapsed, healthy, collapsed, collapsed, collapsed], start=1):
        for func in recorder.reward_funcs:  # as trl calls them, with dataset columns as keyword arguments
            func(prompts=[[{"role": "user", "content": "q"}]] * 4, completions=completions, answer=["2"] * 4)
        state.global_step = step
        control = recorder.on_step_end(None, state, TrainerControl())
        assert control.should_training_stop == (step == 5)  # three degenerate steps in a row, the healthy one resets
    assert "100% of completions are degenerate, e.g. '!!!!" in capsys.readouterr().out
    assert "3 consecutive steps" in guard.collapsed
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert samples[1]["rewards"] == {"xmlcount_reward_func": 0.5, "correctness_reward_func": 2.0}


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


def test_a_reward_with_no_finite_value_stops_after_patience_steps(tmp_path, capsys):
    from tinyr1.infra.collapse_guard import RewardGuard

    def flaky(completions, **kwargs):
        return flaky.values

    recorder = SampleRecorder([flaky], tmp_path, sample_every=0, reward_guard=RewardGuard(patience=3))
    state, prompts, completions = TrainerState(), [[{"role": "user", "content": "q"}]] * 4, [chat("a")] * 4
    steps = [[None] * 4, [float("nan")] * 4, [None, 1.0, None, None],  # one finite value resets: multi-task None
             [float("inf")] * 4, [None] * 4, [float("nan"), None, float("-inf"), None]]
    stops = []
    for step, values in enumerate(steps, start=1):
        flaky.values = values
        recorder.reward_funcs[0](prompts=prompts, completions=completions)
        state.global_step = step
        stops.append(recorder.on_step_end(None, state, TrainerControl()).should_training_stop)
    assert stops == [False, False, False, False, False, True]
    assert "reward flaky returned no finite value (4 x inf) (1/3 in a row)" in capsys.readouterr().out
    why = recorder.reward_guard.collapsed
    assert why.startswith("reward flaky returned no finite value for any completion at 3 consecutive steps")
    assert "2 x None, 1 x nan, 1 x -inf" in why


def test_a_reward_of_the_wrong_length_or_type_is_one_line_naming_it(tmp_path):
    import re

    import numpy as np
    import pytest
    import torch

    from tinyr1.infra.errors import TinyR1Error

    def returning(value):
        def reward(completions, **kwargs):
            return value
        return reward

    completions = [chat("a")] * 2
    for value, message in ((1.0, "reward reward returned float 1.0; it must return a list"),
                           ("12", "returned str '12'"),
                           ([1.0], "returned 1 values for 2 completions"),
                           (["1", "2"], "returned a str among its values"),
                           ([True, False], "returned a bool among its values")):
        recorder = SampleRecorder([returning(value)], tmp_path, sample_every=0)
        with pytest.raises(TinyR1Error, match=re.escape(message)):
            recorder.reward_funcs[0](prompts=[[]] * 2, completions=completions)
    for fine in ([1, None], (0.5, 2.0), np.array([0.5, 1.0]), torch.tensor([0.5, 1.0])):  # what trl accepts
        recorder = SampleRecorder([returning(fine)], tmp_path, sample_every=0)
        recorder.reward_funcs[0](prompts=[[]] * 2, completions=completions)
