"""tinyr1 eval: exact metrics on hand-written predictions, a real run of the tiny model, and clear errors."""

import json

import pytest

from tinyr1.evaluation.evaluate import evaluate
from tinyr1.tasks.scoring import rescored_metrics, score_completion, summarize
from tinyr1.tasks.statistics import wilson_interval

from ..conftest import ASSETS, read_jsonl


def test_predictions_file_gives_exactly_the_expected_metrics(cli, tmp_path):
    # tests/assets/predictions.jsonl: right with tags, right without tags, wrong, $1,000, truncated.
    result = cli("eval", "--predictions", str(ASSETS / "predictions.jsonl"), "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 5
    assert metrics["accuracy_strict"] == pytest.approx(2 / 5)  # tags + right: rows 1 and 4
    assert metrics["accuracy_flexible"] == pytest.approx(3 / 5)  # any last number: rows 1, 2, 4
    assert metrics["accuracy_recipe_reward"] == pytest.approx(2 / 5)  # row 2's whole text is not a number
    assert metrics["format_strict"] == pytest.approx(3 / 5) and metrics["format_soft"] == pytest.approx(3 / 5)
    assert metrics["worked_step_fraction"] == pytest.approx(5 / 5)  # every row shows an "a op b = c" step
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert [s["correct_strict"] for s in samples] == [True, False, False, True, False]
    assert [s["correct_flexible"] for s in samples] == [True, True, False, True, False]
    assert samples[3]["answer"] == "1000" and samples[4]["extracted_flexible"] == "84"
    assert "accuracy_flexible" in result.stdout
    # Each accuracy with its 95% Wilson interval, in metrics.json and printed.
    assert metrics["accuracy_strict_ci95"] == pytest.approx(list(wilson_interval(2, 5)))
    assert metrics["accuracy_flexible_ci95"] == pytest.approx(list(wilson_interval(3, 5)))
    low, high = metrics["accuracy_strict_ci95"]
    assert f"0.400 (95% CI {low:.3f}–{high:.3f}, n=5)" in result.stdout


BARE = "7"
WORKED = "<reasoning>\n3 + 4 = 7\n</reasoning>\n<answer>\n7\n</answer>"


def test_a_bare_right_number_is_not_strict_correct_through_the_cli(cli, tmp_path):
    rows = [{"question": "3 + 4?", "answer": gold, "completion": text}
            for text, gold in ((BARE, "7"), (WORKED, "7"), (BARE, "#### 7"), (WORKED, "#### 7"))]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("eval", "--predictions", str(tmp_path / "p.jsonl"), "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["accuracy_strict"] == 0.5  # only the tagged answers
    assert metrics["accuracy_flexible"] == 1.0 and metrics["accuracy_recipe_reward"] == 1.0  # the recipe's rule
    samples = read_jsonl(tmp_path / "o" / "samples.jsonl")
    assert [s["correct_strict"] for s in samples] == [False, True, False, True]
    assert [s["extracted"] for s in samples] == [None, "7", None, "7"]
    assert "accuracy_recipe_reward" in result.stdout


def test_an_eval_folder_scored_under_the_old_rule_is_scored_again(tmp_path):
    # What eval wrote when accuracy_strict was the recipe reward's rule: the bare 7 counted.
    samples = [{"question": "q", "answer": "7", "completion": t, "correct_strict": True} for t in (BARE, WORKED)]
    (tmp_path / "metrics.json").write_text(json.dumps({"n": 2, "accuracy_strict": 1.0, "seconds": 3.0}))
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    metrics = rescored_metrics(tmp_path)
    assert metrics["accuracy_strict"] == 0.5 and metrics["accuracy_recipe_reward"] == 1.0 and metrics["rescored"]
    assert metrics["seconds"] == 3.0
    (tmp_path / "samples.jsonl").unlink()  # nothing to score again: the old number never shows as strict
    assert rescored_metrics(tmp_path) == {"n": 2, "accuracy_strict": None, "accuracy_recipe_reward": 1.0,
                                          "seconds": 3.0}
    new = {**summarize([{**s, **score_completion(s["completion"], "7")} for s in samples]), "seconds": 1.0}
    (tmp_path / "metrics.json").write_text(json.dumps(new))
    assert rescored_metrics(tmp_path) == new  # written under the current rule: read as is
    assert rescored_metrics(tmp_path / "absent") is None


def test_tiny_model_eval_writes_consistent_files(gsm8k_dir, tmp_path):
    metrics = evaluate(str(ASSETS / "tiny-qwen2"), dataset_name=str(gsm8k_dir), split="test", limit=6, batch_size=4,
                       max_new_tokens=8, output_dir=tmp_path)
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert len(samples) == 6 == metrics["n"]
    recomputed = summarize(samples)
    for key in ("accuracy_strict", "accuracy_flexible", "accuracy_recipe_reward", "format_strict", "format_soft",
                "mean_completion_tokens", "truncated_fraction"):
        assert recomputed[key] == pytest.approx(metrics[key]), key
    assert json.loads((tmp_path / "metrics.json").read_text())["split"] == "test"
    assert metrics["tokens_per_second"] > 0 and metrics["decoding"]["max_new_tokens"] == 8
    assert metrics["dtype"] == "float32" and metrics["device"] == "cpu" and metrics["cpu"]  # where it was measured
    assert {"question", "answer", "completion", "extracted", "correct_strict", "format_strict"} <= set(samples[0])
    # The same questions one at a time give the same greedy answers as batched with left padding.
    single = evaluate(str(ASSETS / "tiny-qwen2"), dataset_name=str(gsm8k_dir), split="test", limit=6, batch_size=1,
                      max_new_tokens=8, output_dir=tmp_path / "single")
    single_samples = read_jsonl(tmp_path / "single" / "samples.jsonl")
    assert [s["completion"] for s in single_samples] == [s["completion"] for s in samples]
    assert single["n"] == 6


@pytest.mark.parametrize(
    "content,args,message",
    [
        ('{"question": "q", "answer": "1"}\n', [], "line 1: missing field completion"),
        (None, ["--model_name_or_path", "./no-model"], "model path ./no-model does not exist"),
        (None, [], "give --model_name_or_path"),
    ],
)
def test_bad_input_is_one_clear_line(cli, gsm8k_dir, tmp_path, content, args, message):
    extra = ["--dataset_name", str(gsm8k_dir), "--limit", "2"]
    if content is not None:
        (tmp_path / "p.jsonl").write_text(content)
        extra = ["--predictions", str(tmp_path / "p.jsonl")]
    result = cli("eval", *extra, *args, "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_dataset_without_needed_columns(cli, tmp_path):
    (tmp_path / "test.jsonl").write_text('{"prompt_text": "q", "label": 1}\n')
    result = cli("eval", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(tmp_path),
                 "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 2 and "missing field question and answer" in result.stderr


def test_the_table_puts_the_answers_cut_at_the_limit_next_to_accuracy(cli, gsm8k_dir, tmp_path):
    # The tiny model never ends an answer within 8 tokens: the share cut shows beside accuracy, with a warning.
    result = cli("eval", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(gsm8k_dir),
                 "--limit", "2", "--max_new_tokens", "8", "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") >= 3]
    assert rows[:2] == ["accuracy_strict", "truncated_fraction"], rows
    assert "warning: 100.0% of the answers ran to the 8-token limit without ending" in " ".join(result.stdout.split())
