"""compare and report on a real tiny training run, and report plots for a long run."""

import json
import random

import pytest

from tinyr1.commands.compare import DEFAULT_PROMPT
from tinyr1.commands.report import write_report

from ..conftest import ASSETS, REPO


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, gsm8k_dir):
    from ..conftest import run_cli

    out = tmp_path_factory.mktemp("run") / "tiny"
    result = run_cli("train", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(gsm8k_dir),
                     "--max_steps", "3", "--num_generations", "4", "--per_device_train_batch_size", "4",
                     "--gradient_accumulation_steps", "1", "--max_completion_length", "12", "--output_dir", str(out),
                     "--save_strategy", "no", "--sample_every", "1", "--eval_before_after", "true", "--eval_limit",
                     "4", "--eval_max_new_tokens", "8", "--reward_funcs", "tests.train_helpers:length_reward",
                     "correctness", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "report:" in result.stdout
    return out


def test_train_with_eval_before_after_tells_the_whole_story(tiny_run):
    for stage in ("before", "after"):
        assert json.loads((tiny_run / "eval" / stage / "metrics.json").read_text())["n"] == 4
    report = (tiny_run / "report.md").read_text()
    assert "| accuracy_strict |" in report and "![rewards](plots/rewards.png)" in report
    assert "| status | completed |" in report and DEFAULT_PROMPT in report
    assert (tiny_run / "plots" / "rewards.png").stat().st_size > 10_000
    html = (tiny_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html


def test_compare_cli_writes_markdown(cli, tiny_run, tmp_path):
    out = tmp_path / "c.md"
    result = cli("compare", "--base", str(ASSETS / "tiny-qwen2"), "--trained", str(tiny_run), "--prompt",
                 "What is 2 + 3?", "--max_new_tokens", "6", "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "## What is 2 + 3?" in text and text.count("strict format:") == 2
    assert "=== What is 2 + 3?" in result.stdout  # plain text when piped


def test_report_plots_a_long_run_and_handles_nan(tmp_path):
    rng = random.Random(0)
    with (tmp_path / "metrics.jsonl").open("w") as f:
        for step in range(1, 5001):
            row = {"step": step, "loss": rng.random(), "reward": step / 5000 + rng.random() * 0.3,
                   "rewards/correctness_reward_func/mean": rng.random(), "grad_norm": None if step == 7 else 1.0,
                   "learning_rate": 1e-6, "completions/mean_length": 100 + rng.random()}
            f.write(json.dumps(row) + "\n")
    report = write_report(tmp_path)
    assert "## Training curves" in report.read_text() and "No before/after evaluation" in report.read_text()
    assert (tmp_path / "plots" / "rewards.png").is_file() and (tmp_path / "plots" / "training.png").is_file()


def test_report_on_a_folder_that_is_not_a_run(cli, tmp_path):
    result = cli("report", str(tmp_path))
    assert result.returncode == 2 and "no metrics.jsonl or run.json" in result.stderr
