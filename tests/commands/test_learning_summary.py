"""The learning summary printed by ``make demo`` and written at the top of each report."""

import json

from tinyr1.commands.learning_summary import learning_lines, main
from tinyr1.commands.report import write_report


def _run(tmp_path):
    run = tmp_path / "run"
    (run / "eval" / "before").mkdir(parents=True)
    (run / "eval" / "after").mkdir(parents=True)
    steps = [{"step": i, "loss": 0.0, "reward": r} for i, r in enumerate([0.5, 0.7, 1.2, 1.6, 2.0, 2.1], 1)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    for stage, acc in (("before", 0.25), ("after", 0.5)):
        (run / "eval" / stage / "metrics.json").write_text(json.dumps(
            {"n": 48, "accuracy_strict": acc, "accuracy_flexible": acc, "worked_step_fraction": 1.0,
             "mean_completion_tokens": 30.0, "dataset": "reasoning-gym:chain_sum", "split": "test"}))
    (run / "run.json").write_text(json.dumps({"model": "m", "global_step": 6}))
    return run


def test_first_and_last_reward_and_accuracy(tmp_path, capsys):
    run = _run(tmp_path)
    text = "\n".join(learning_lines(run))
    assert "| | 0.500 | 2.100 | 0.800 | 1.900 |" in text  # first/last step, first/last 3 steps
    assert "| before GRPO (step 0) | 0.250 |" in text and "| after GRPO (step 6) | 0.500 |" in text
    main([str(run)])
    assert "mean reward" in capsys.readouterr().out
    assert "## Did it learn?" in write_report(run).read_text()


def test_an_empty_folder_gives_no_lines(tmp_path):
    assert learning_lines(tmp_path) == []
