"""tinyr1 compare: the base and a trained tiny model side by side, written as Markdown."""

from ..conftest import ASSETS


def test_compare_cli_writes_markdown(cli, tiny_run, tmp_path):
    out = tmp_path / "c.md"
    result = cli("compare", "--base", str(ASSETS / "tiny-qwen2"), "--trained", str(tiny_run), "--prompt",
                 "What is 2 + 3?", "--max_new_tokens", "6", "--output", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert "## What is 2 + 3?" in text and text.count("strict format:") == 2
    assert "=== What is 2 + 3?" in result.stdout  # plain text when piped
