"""The learning summary printed by ``make demo`` and written at the top of each report."""

import json

from tinyr1.evaluation.learning_summary import learning_lines, main
from tinyr1.evaluation.report import write_report

from ..conftest import mark_run


def _run(tmp_path):
    run = mark_run(tmp_path / "run")
    (run / "eval" / "before").mkdir(parents=True)
    (run / "eval" / "after").mkdir(parents=True)
    steps = [{"step": i, "loss": 0.0, "reward": r} for i, r in enumerate([0.5, 0.7, 1.2, 1.6, 2.0, 2.1], 1)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    for stage, acc in (("before", 0.25), ("after", 0.5)):
        (run / "eval" / stage / "metrics.json").write_text(json.dumps(
            {"n": 48, "accuracy_strict": acc, "accuracy_flexible": acc, "accuracy_recipe_reward": acc,
             "worked_step_fraction": 1.0,
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


def test_the_demo_summary_counts_only_tagged_answers_as_in_answer(cli, tmp_path):
    # The after-GRPO eval written by tinyr1 eval itself: gold 7, a bare "7" and a tagged, worked "7".
    run = _run(tmp_path)
    worked = "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n7\n</answer>"
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"question": "3 + 4?", "answer": "7", "completion": c})
                                              + "\n" for c in ("7", worked)))
    for name in ("metrics.json", "samples.jsonl"):
        (run / "eval" / "after" / name).unlink(missing_ok=True)
    result = cli("eval", "--predictions", str(tmp_path / "p.jsonl"), "--output_dir", str(run / "eval" / "after"))
    assert result.returncode == 0, result.stderr
    lines = learning_lines(run)
    assert "accuracy (in `<answer>`) | 95% CI | cut at the token limit | accuracy (last number)" in lines[4]
    assert "| after GRPO (step 6) | 0.500 | 0.095–0.905 | — | 1.000 |" in "\n".join(lines)
    report = write_report(run).read_text()
    assert "| accuracy_strict | 0.250 | 0.500 |" in report and "| accuracy_recipe_reward | 0.250 | 1.000 |" in report


def test_an_old_eval_folder_is_scored_again_or_shown_as_unknown(tmp_path):
    run = _run(tmp_path)
    old = {"n": 2, "accuracy_strict": 1.0, "accuracy_flexible": 1.0}  # the bare 7 counted under the old rule
    (run / "eval" / "after" / "metrics.json").write_text(json.dumps(old))
    (run / "eval" / "after" / "samples.jsonl").write_text("".join(
        json.dumps({"question": "q", "answer": "7", "completion": c}) + "\n" for c in ("7", "<answer>7</answer>")))
    assert "| after GRPO (step 6) | 0.500 | 0.095–0.905 | — | 1.000 |" in "\n".join(learning_lines(run))
    with_base = "\n".join(learning_lines(run, base=run / "eval" / "after"))
    assert "| base model | 0.500 | 0.095–0.905 | — | 1.000 |" in with_base
    (run / "eval" / "after" / "samples.jsonl").unlink()
    assert "| after GRPO (step 6) | — | — | — | 1.000 |" in "\n".join(learning_lines(run))


def _score_answers(cli, run, tmp_path, before: tuple, after: tuple) -> None:
    """The run's before/after evaluations replaced by ``tinyr1 eval`` of tagged answers to "3 + 4?" (gold 7), one
    question per number given, so both stages asked the same questions."""
    tagged = "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n{}\n</answer>"
    for stage, numbers in (("before", before), ("after", after)):
        rows = [{"question": f"3 + 4? ({i})", "answer": "7", "completion": tagged.format(x)}
                for i, x in enumerate(numbers)]
        (tmp_path / f"{stage}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for name in ("metrics.json", "samples.jsonl"):
            (run / "eval" / stage / name).unlink(missing_ok=True)
        result = cli("eval", "--predictions", str(tmp_path / f"{stage}.jsonl"), "--output_dir",
                     str(run / "eval" / stage))
        assert result.returncode == 0, result.stderr


def test_an_empty_folder_gives_no_lines(tmp_path):
    assert learning_lines(tmp_path) == []


def test_before_and_after_on_the_same_questions_are_compared_question_by_question(cli, tmp_path):
    run = _run(tmp_path)
    _score_answers(cli, run, tmp_path, before=(7, 0, 0, 0), after=(7, 7, 7, 0))
    text = "\n".join(learning_lines(run))
    assert "| after GRPO (step 6) | 0.750 | 0.301–0.954 | — | 0.750 | 1.000 | — |" in text
    assert "wrong->right 2, right->wrong 0 (both right 1, both wrong 1)" in text and "McNemar p = 0.5" in text
    assert "wrong->right 2" in write_report(run).read_text()


def test_a_run_that_ends_below_its_start_or_does_not_stop_says_so(tmp_path):
    # The demo's unlearning, as measured: reward up, held-out accuracy down, answers run to the limit.
    run = _run(tmp_path)
    for stage, acc, cut in (("before", 0.142, 0.998), ("after", 0.026, 0.998)):
        (run / "eval" / stage / "metrics.json").write_text(json.dumps(
            {"n": 500, "accuracy_strict": acc, "accuracy_flexible": acc, "accuracy_recipe_reward": acc,
             "truncated_fraction": cut, "decoding": {"max_new_tokens": 128}}))
    text = "\n".join(learning_lines(run))
    assert "| before GRPO (step 0) | 0.142 | 0.114–0.175 | 99.8% (at 128) |" in text
    assert ("- **Held-out accuracy ended below its start**: 0.142 before GRPO, 0.026 after, while the mean reward "
            "went 0.500 -> 2.100. This run did not learn what the held-out set measures.") in text
    assert "- **99.8% of the greedy answers after GRPO (step 6) are cut at the token limit (128)**" in text
    assert "- **99.8% of the greedy answers before GRPO (step 0) are cut" in text
    assert "Held-out accuracy ended below" in write_report(run).read_text()


def test_a_run_that_learned_and_stops_has_no_warnings(tmp_path):
    assert "Warnings:" not in "\n".join(learning_lines(_run(tmp_path)))


def test_a_drop_within_chance_is_called_so(cli, tmp_path):
    # make demo's 32 questions: one right->wrong is a drop, said with its p, not a verdict of unlearning.
    run = _run(tmp_path)
    _score_answers(cli, run, tmp_path, before=(7, 7, 0, 0), after=(7, 0, 0, 0))
    text = "\n".join(learning_lines(run))
    assert "0.500 before GRPO, 0.250 after (right->wrong 1, wrong->right 0, McNemar p = 1)" in text
    assert "On 4 questions a drop this size is within chance" in text and "unlearned" not in text
