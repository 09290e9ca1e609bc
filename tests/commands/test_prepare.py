"""tinyr1 prepare: real GSM8K to the recipe's prompt rows, a round trip, its options and bad files."""

import pytest

from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.data import load_prompt_rows

from ..conftest import read_jsonl


def test_prepare_gsm8k_train_writes_the_recipe_rows(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "train.jsonl"
    result = cli("prepare", "--dataset_name", str(gsm8k_dir), "--split", "train", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 7473 rows" in result.stdout and '"prompt"' in result.stdout  # count and one example row
    rows = read_jsonl(out)
    assert len(rows) == 7473
    first = rows[0]
    assert first["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": first["prompt"][1]["content"]},
    ]
    expected_prompt = "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
    assert SYSTEM_PROMPT == expected_prompt
    assert first["answer"] == "72" and first["prompt"][1]["content"].startswith("Natalia sold clips")
    assert all("," not in r["answer"] for r in rows)
    raw = read_jsonl(gsm8k_dir / "train.jsonl")
    with_commas = [i for i, r in enumerate(raw) if "," in r["answer"].split("####")[-1]]
    assert len(with_commas) == 79
    assert rows[with_commas[0]]["answer"] == raw[with_commas[0]]["answer"].split("####")[-1].strip().replace(",", "")
    assert "<<" not in first["solution"] and "####" not in first["solution"]


def test_prepared_file_round_trips(cli, tmp_path):
    out = tmp_path / "sym.jsonl"
    assert cli("prepare", "--dataset_name", "reasoning-gym:gsm_symbolic", "--limit", "3", "--output",
               str(out)).returncode == 0
    rows = load_prompt_rows(str(out))
    assert rows == read_jsonl(out)


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"question": "q", "answer": "#### 1"}\nnot json\n', "line 2: not valid JSON"),
        ('{"question": "q"}\n', "row 0: missing field answer"),
        ('{"question": "q", "answer": "no marker"}\n', "row 0: answer has no '#### <gold>' line"),
        ("\n", "no usable rows"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
    ],
)
def test_bad_files_give_one_clear_line(cli, tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = cli("prepare", "--dataset_name", str(bad), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert message in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_skip_bad_rows_reports_the_count(cli, tmp_path):
    data = tmp_path / "mixed.jsonl"
    data.write_text('{"question": "a", "answer": "x #### 1"}\n{"question": "b", "answer": "none"}\n')
    result = cli("prepare", "--dataset_name", str(data), "--output", str(tmp_path / "o.jsonl"), "--skip_bad_rows")
    assert result.returncode == 0 and "wrote 1 rows" in result.stdout and "skipped 1 rows" in result.stdout


def test_prepare_help_lists_its_options(cli):
    prepare_help = cli("prepare", "--help").stdout
    for option in ("--dataset_name", "--split", "--output", "--limit", "--seed", "--skip_bad_rows"):
        assert option in prepare_help
