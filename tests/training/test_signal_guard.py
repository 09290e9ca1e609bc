"""The no-signal guard (tinyr1.training.signal_guard): a run whose groups never vary stops within ``patience`` steps
and names the cause it can see — completions cut at the length limit, no completion in the rewarded format, every
answer right, a reward constant whatever it reads — for the drop-in, the API and the command line."""

import json
import logging

import pytest
import torch
from transformers import TrainerControl, TrainerState

import tinyr1
from tinyr1.infra.errors import CollapseError
from tinyr1.training.signal_guard import NoSignalGuard

from ..conftest import REPO
from .test_grpo_trainer import TINY, guarded_trainer, length

NAMES = ["xmlcount_reward_func", "correctness_reward_func"]


def step(guard, number, rewards, texts, cut, group_size=2):
    guard.observe(torch.tensor(rewards, dtype=torch.float32), torch.ones(len(rewards[0])), group_size, texts, cut)
    state = TrainerState()
    state.global_step = number
    return guard.on_step_end(None, state, TrainerControl())


def test_steps_without_variance_warn_once_then_stop_and_variance_resets(caplog):
    guard = NoSignalGuard(3, NAMES, 1, max_length=64)
    flat, varied = [[0.0, 0.0]] * 4, [[0.0, 0.0], [0.5, 2.0], [0.0, 0.0], [0.0, 0.0]]
    prose = ["The answer is 4."] * 4
    stops = [step(guard, n, rewards, prose, [False] * 4).should_training_stop
             for n, rewards in enumerate([flat, flat, varied, flat, flat, flat], start=1)]
    assert stops == [False, False, False, False, False, True]
    warnings = [r for r in caplog.records if "no group's rewards vary" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING and "step 1:" in warnings[0].getMessage()
    assert guard.collapsed.startswith("no reward signal for 3 consecutive steps")


def test_every_completion_cut_names_the_length():
    guard = NoSignalGuard(1, NAMES, 1, max_length=64)
    step(guard, 1, [[0.0, 0.0]] * 4, ["<reasoning>\n1 + 1 = 2 and then"] * 4, [True] * 4)
    assert "100% of completions were cut at max_completion_length=64" in guard.collapsed
    assert "raise max_completion_length=128" in guard.collapsed
    assert "completions/clipped_ratio 1.00" in guard.collapsed


def test_no_completion_in_the_format_names_the_cold_start_and_the_constant_rewards():
    guard = NoSignalGuard(1, NAMES, 1, max_length=64)
    step(guard, 1, [[0.0, 0.0]] * 4, ["The answer is 4."] * 4, [False] * 4)
    why = guard.collapsed
    assert "no completion has the <reasoning>/<answer> format" in why and "tinyr1 sft" in why
    assert "xmlcount_reward_func gave 0 to every completion; correctness_reward_func gave 0" in why


def test_every_answer_right_is_too_easy_and_every_answer_wrong_too_hard():
    easy = NoSignalGuard(1, NAMES, 1, max_length=64)
    answer = ["<reasoning>\n2 + 2 = 4\n</reasoning>\n<answer>\n4\n</answer>"] * 4
    step(easy, 1, [[0.5, 2.0]] * 4, answer, [False] * 4)
    assert "every completion is already right" in easy.collapsed
    hard = NoSignalGuard(1, NAMES, 1, max_length=64)
    step(hard, 1, [[0.5, 0.0]] * 4, answer, [False] * 4)
    assert "every completion is wrong" in hard.collapsed


def test_a_reward_constant_whatever_it_reads_is_named():
    guard = NoSignalGuard(1, ["always_one"], None, max_length=64)
    step(guard, 1, [[1.0]] * 4, ["<answer>\n1\n</answer>", "<answer>\n2\n</answer>", "x", "y"], [False] * 4)
    assert "a reward gives the same value whatever the completion" in guard.collapsed
    assert "always_one gave 1 to every completion" in guard.collapsed


def test_zero_patience_turns_it_off():
    guard = NoSignalGuard(0, NAMES, 1, max_length=64)
    assert not any(step(guard, n, [[0.0, 0.0]] * 4, ["x"] * 4, [False] * 4).should_training_stop
                   for n in range(1, 20))


def constant(completions, **kwargs):
    return [0.0] * len(completions)


def test_the_drop_in_stops_a_run_without_signal_and_run_json_says_why(tmp_path):
    out = tmp_path / "run"
    trainer = guarded_trainer(out, [constant], max_steps=6, no_signal_patience=2)
    with pytest.raises(CollapseError, match="no reward signal for 2 consecutive steps"):
        trainer.train()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "collapsed" and trainer.state.global_step == 2
    assert "constant gave 0 to every completion" in run["stopped_because"]
    assert (out / "checkpoint-2").is_dir()  # the weights are sound: saved for a resume after the fix
    assert "| stopped because | no reward signal" in tinyr1.report(trainer).markdown


def test_a_run_that_learns_is_never_stopped(tmp_path):
    out = tmp_path / "run"
    trainer = guarded_trainer(out, [length], max_steps=3, max_completion_length=8, no_signal_patience=1)
    assert trainer.train().global_step == 3


def test_the_command_line_and_the_api_stop_with_the_diagnosis(cli, gsm8k_dir, tmp_path):
    """The tutorial's rewards on a model that never writes the tags (the tiny random one): exit 3 naming the format
    and the cold start; too short a length names the length instead."""
    common = ["train", "--model_name_or_path", TINY, "--dataset_name", str(gsm8k_dir), "--dataset_limit", "8",
              "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_steps", "6",
              "--no_signal_patience", "2", "--save_steps", "1000", "--sample_every", "0"]
    formats = cli(*common, "--max_completion_length", "16", "--output_dir", str(tmp_path / "a"), cwd=REPO)
    assert formats.returncode == 3, formats.stderr[-2000:]
    assert "no completion has the <reasoning>/<answer> format" in formats.stderr and "tinyr1 sft" in formats.stderr
    short = cli(*common, "--max_completion_length", "2", "--output_dir", str(tmp_path / "b"), cwd=REPO)
    assert short.returncode == 3 and "--max_completion_length 4" in short.stderr
    with pytest.raises(CollapseError, match="no reward signal for 2 consecutive steps"):
        tinyr1.train(model_name_or_path=TINY, dataset_name=str(gsm8k_dir), dataset_limit=8,
                     per_device_train_batch_size=4, num_generations=4, max_steps=6, no_signal_patience=2,
                     max_completion_length=2, save_steps=1000, sample_every=0, output_dir=tmp_path / "c")
    assert "max_completion_length=4" in json.loads((tmp_path / "c" / "run.json").read_text())["stopped_because"]


@pytest.mark.slow
def test_the_tutorials_rewards_on_the_base_smollm2_stop_naming_the_format_and_the_cold_start(cli, gsm8k_dir,
                                                                                             tmp_path):
    """The trl_script notebook's scenario on the command line, with a shorter patience: the base model never writes
    the tags, so the tutorial's five rewards never vary."""
    result = cli("train", "--model_name_or_path", "smollm2-135m-instruct", "--dataset_name", str(gsm8k_dir),
                 "--dataset_limit", "16", "--per_device_train_batch_size", "8", "--num_generations", "4",
                 "--max_completion_length", "128", "--max_steps", "6", "--no_signal_patience", "3",
                 "--save_steps", "1000", "--sample_every", "0", "--seed", "0", "--output_dir", str(tmp_path / "run"),
                 cwd=REPO)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "no reward signal for 3 consecutive steps" in result.stderr
    assert "no completion has the <reasoning>/<answer> format" in result.stderr and "tinyr1 sft" in result.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "collapsed" and run["global_step"] == 3


def test_a_batch_no_reward_applies_to_is_no_evidence():
    """Every reward None for every completion (trl warns "All reward functions returned None"): not a step without
    signal, as a reward returning only None is never a collapse."""
    guard = NoSignalGuard(1, NAMES, 1, max_length=64)
    nan = float("nan")
    assert not any(step(guard, n, [[nan, nan]] * 4, ["x"] * 4, [False] * 4).should_training_stop
                   for n in range(1, 5))
    assert guard.collapsed is None
