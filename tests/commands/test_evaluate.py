"""tinyr1 eval: exact metrics on hand-written predictions, a real run of the tiny model, and clear errors."""

import json

import pytest

from tinyr1.commands.evaluate import evaluate, summarize

from ..conftest import ASSETS


def test_predictions_file_gives_exactly_the_expected_metrics(cli, tmp_path):
    # tests/assets/predictions.jsonl: right with tags, right without tags, wrong, $1,000, truncated.
    result = cli("eval", "--predictions", str(ASSETS / "predictions.jsonl"), "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 5
    assert metrics["accuracy_strict"] == pytest.approx(2 / 5)  # tags + right: rows 1 and 4
    assert metrics["accuracy_flexible"] == pytest.approx(3 / 5)  # any last number: rows 1, 2, 4
    assert metrics["format_strict"] == pytest.approx(3 / 5) and metrics["format_soft"] == pytest.approx(3 / 5)
    assert metrics["worked_step_fraction"] == pytest.approx(5 / 5)  # every row shows an "a op b = c" step
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["correct_strict"] for s in samples] == [True, False, False, True, False]
    assert [s["correct_flexible"] for s in samples] == [True, True, False, True, False]
    assert samples[3]["answer"] == "1000" and samples[4]["extracted_flexible"] == "84"
    assert "accuracy_flexible" in result.stdout


def test_tiny_model_eval_writes_consistent_files(gsm8k_dir, tmp_path):
    metrics = evaluate(str(ASSETS / "tiny-qwen2"), dataset_name=str(gsm8k_dir), split="test", limit=6, batch_size=4,
                       max_new_tokens=8, output_dir=tmp_path)
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 == metrics["n"]
    recomputed = summarize(samples)
    for key in ("accuracy_strict", "accuracy_flexible", "format_strict", "format_soft", "mean_completion_tokens",
                "truncated_fraction"):
        assert recomputed[key] == pytest.approx(metrics[key]), key
    assert json.loads((tmp_path / "metrics.json").read_text())["split"] == "test"
    assert metrics["tokens_per_second"] > 0 and metrics["decoding"]["max_new_tokens"] == 8
    assert {"question", "answer", "completion", "extracted", "correct_strict", "format_strict"} <= set(samples[0])
    # The same questions one at a time give the same greedy answers as batched with left padding.
    single = evaluate(str(ASSETS / "tiny-qwen2"), dataset_name=str(gsm8k_dir), split="test", limit=6, batch_size=1,
                      max_new_tokens=8, output_dir=tmp_path / "single")
    single_samples = [json.loads(line) for line in (tmp_path / "single" / "samples.jsonl").read_text().splitlines()]
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
