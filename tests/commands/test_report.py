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


def _tree(folder):
    """Every file under ``folder`` with its bytes, and every folder: what "unchanged" means."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_report_of_a_plain_trl_run_goes_to_a_new_folder_and_leaves_the_trl_folder_as_it_was(tmp_path, cli):
    """A migrating user's old run: trl's own GRPOTrainer on the tiny model, two steps, a checkpoint each."""
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..conftest import ASSETS

    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "answer": str(2 * i)} for i in range(8)]

    def shows_work(completions, **kwargs):
        return [float(len(c[0]["content"]) % 3) for c in completions]

    trl_dir = tmp_path / "trl-output"
    args = trl.GRPOConfig(output_dir=str(trl_dir), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                          max_completion_length=8, use_cpu=True, bf16=False, save_steps=1, logging_steps=1,
                          report_to="none", seed=0)
    trl.GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(ASSETS / "tiny-qwen2"), reward_funcs=[shows_work],
                    args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=AutoTokenizer.from_pretrained(ASSETS / "tiny-qwen2")).train()
    assert (trl_dir / "checkpoint-2" / "trainer_state.json").is_file() and not (trl_dir / ".tinyr1-run").exists()
    before = _tree(trl_dir)

    refused = cli("report", str(trl_dir))
    assert refused.returncode == 2 and "a trl run (checkpoint-2/trainer_state.json)" in refused.stderr
    assert "--output_dir NEW_FOLDER" in refused.stderr
    inside = cli("report", str(trl_dir), "--output_dir", str(trl_dir / "report"))
    assert inside.returncode == 2 and "inside the trl run" in inside.stderr

    out = tmp_path / "trl-report"
    result = cli("report", str(trl_dir), "--output_dir", str(out))
    assert result.returncode == 0, result.stderr
    assert _tree(trl_dir) == before, "tinyr1 report wrote into the trl folder"
    report = (out / "report.md").read_text()
    assert "| steps | 2 |" in report and "a trl run (log history of checkpoint-2/trainer_state.json)" in report
    assert "| mean reward | first step | last step |" in report  # the learning summary, from trl's log history
    assert (out / "plots" / "rewards.png").stat().st_size > 10_000
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2
    again = cli("report", str(trl_dir), "--output_dir", str(out))  # the report's own folder: replaced
    assert again.returncode == 0, again.stderr
    assert _tree(trl_dir) == before

    import pytest

    import tinyr1

    with pytest.raises(tinyr1.TinyR1Error, match=r"give tinyr1.report\(output_dir=...\) NEW_FOLDER"):
        tinyr1.report(trl_dir)  # from Python: the keyword, not the flag
    report = tinyr1.report(trl_dir, output_dir=tmp_path / "api-report")
    assert report.markdown_path == tmp_path / "api-report" / "report.md" and len(report.plots) == 2
    assert _tree(trl_dir) == before

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    theirs = cli("report", str(trl_dir), "--output_dir", str(tmp_path / "mine"))
    assert theirs.returncode == 2 and "not a tinyr1 run" in theirs.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_a_tinyr1_run_reported_into_another_folder(tmp_path):
    run = mark_run(tmp_path / "run")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5, "reward": 0.1}\n{"step": 2, "loss": 0.4, '
                                       '"reward": 0.3}\n')
    before = _tree(run)
    report = write_report(run, tmp_path / "elsewhere")
    assert report == tmp_path / "elsewhere" / "report.md" and "| mean reward |" in report.read_text()
    assert (tmp_path / "elsewhere" / "plots" / "rewards.png").is_file() and _tree(run) == before
