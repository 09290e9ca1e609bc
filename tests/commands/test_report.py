"""tinyr1 report on a real tiny training run (train --eval_before_after writes it), a long run and a non-run."""

import json
import random

from tinyr1.evaluation.compare import DEFAULT_PROMPT
from tinyr1.evaluation.report import write_report

from ..conftest import mark_run


def test_train_with_eval_before_after_tells_the_whole_story(tiny_run):
    for stage in ("before", "after"):
        assert json.loads((tiny_run / "eval" / stage / "metrics.json").read_text())["n"] == 4
    report = (tiny_run / "report.md").read_text()
    assert "| accuracy_strict |" in report and "![rewards](plots/rewards.png)" in report
    assert "| status | completed |" in report and DEFAULT_PROMPT in report
    assert (tiny_run / "plots" / "rewards.png").stat().st_size > 10_000
    html = (tiny_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html


def test_report_plots_a_long_run_and_handles_nan(tmp_path):
    rng = random.Random(0)
    mark_run(tmp_path)
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


def test_a_killed_runs_truncated_metrics_still_get_a_report(tmp_path, caplog):
    mark_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert write_report(tmp_path).is_file()
    assert "metrics.jsonl: 1 malformed row(s) skipped" in caplog.text  # the line a kill cut


def test_the_runs_comparison_answers_with_the_evaluations_length(tiny_run):
    from transformers import AutoTokenizer

    from ..conftest import ASSETS

    tokenizer = AutoTokenizer.from_pretrained(ASSETS / "tiny-qwen2")
    answers = (tiny_run / "compare.md").read_text().split("```text\n")[1:]
    assert len(answers) == 2
    # --eval_max_new_tokens 8; compare's own default (256) would fill the answers of a random tiny model
    for answer in answers:
        assert len(tokenizer(answer.split("\n```")[0])["input_ids"]) <= 64, answer  # re-encoding splits some
