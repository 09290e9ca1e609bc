"""tinyr1 compare: the base and a trained tiny model side by side, written as Markdown."""

import json

from ..conftest import ASSETS


def test_compare_cli_writes_markdown(cli, tiny_run, tmp_path):
    out = tmp_path / "c.md"
    result = cli("compare", "--base", str(ASSETS / "tiny-qwen2"), "--trained", str(tiny_run), "--prompt",
                 "What is 2 + 3?", "--max_new_tokens", "6", "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "## What is 2 + 3?" in text and text.count("strict format:") == 2
    assert "=== What is 2 + 3?" in result.stdout  # plain text when piped


def _predictions(path, completions):
    path.write_text("".join(json.dumps({"question": f"{i} + 1?", "answer": str(i + 1), "completion": c}) + "\n"
                            for i, c in enumerate(completions)))
    return path


def _tagged(number):
    return f"<reasoning>\nworked\n</reasoning>\n<answer>\n{number}\n</answer>"


def test_compare_evals_pairs_the_same_questions(cli, tmp_path):
    # Questions 0..5 with gold i + 1: before right on 0 and 1, after right on 1, 2, 3 and 4.
    before = [_tagged(i + 1 if i in (0, 1) else 0) for i in range(6)]
    after = [_tagged(i + 1 if i in (1, 2, 3, 4) else 0) for i in range(6)]
    for name, completions in (("before", before), ("after", after)):
        result = cli("eval", "--predictions", str(_predictions(tmp_path / f"{name}.jsonl", completions)),
                     "--output_dir", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    out = tmp_path / "paired.md"
    result = cli("compare", "--evals", str(tmp_path / "before"), str(tmp_path / "after"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "on the same 6 questions: 0.333 -> 0.667" in result.stdout
    assert "wrong->right 3, right->wrong 1 (both right 1, both wrong 1)" in result.stdout
    assert "exact McNemar p = 0.625" in result.stdout and "difference +0.333 (95% CI" in result.stdout
    assert "wrong->right 3" in out.read_text()


def test_compare_evals_refuses_different_questions_in_one_line(cli, tmp_path):
    for name, count in (("a", 3), ("b", 4)):
        result = cli("eval", "--predictions", str(_predictions(tmp_path / f"{name}.jsonl", [_tagged(1)] * count)),
                     "--output_dir", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    result = cli("compare", "--evals", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "not the same questions (3 questions against 4)" in result.stderr
    result = cli("compare", "--evals", str(tmp_path / "a"), str(tmp_path / "b"), "--base", "m")
    assert result.returncode == 2 and "give --base and --trained (two models) or --evals" in result.stderr
    result = cli("compare", "--base", "m")
    assert result.returncode == 2 and "give --base and --trained" in result.stderr
