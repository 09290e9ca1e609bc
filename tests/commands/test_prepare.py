"""tinyr1 prepare: real GSM8K to the recipe's prompt rows, a round trip, its options and bad files; it
never writes over a file of the user's or over its own input, however the input is named."""

import json
import os

import pytest

from tinyr1.commands import prepare
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.paths import sidecar, written_by
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
        ('{"question": "q"}\n', "line 1: missing field answer"),
        ('{"question": "q", "answer": "no marker"}\n', "line 1: answer has no '#### <gold>' line"),
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


ROW = {"question": "Tom has 3 apples and eats 1. How many are left?", "answer": "3 - 1 = 2\n#### 2"}


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "gsm"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    return folder


def unchanged(path, text):
    return path.read_text() == text


def test_the_input_is_refused_however_it_is_named(data, tmp_path, monkeypatch):
    original = (data / "train.jsonl").read_text()
    os.symlink(data / "train.jsonl", tmp_path / "link.jsonl")
    monkeypatch.chdir(tmp_path)
    for source, output in (("gsm", "gsm/train.jsonl"), ("gsm", "./gsm/../gsm/train.jsonl"),
                           (str(data), str(data / "train.jsonl")), ("gsm/train.jsonl", "gsm/train.jsonl"),
                           ("gsm", "link.jsonl"), ("link.jsonl", "gsm/train.jsonl")):
        with pytest.raises(TinyR1Error, match="is the input file"):
            prepare.main(["--dataset_name", source, "--output", output])
    with pytest.raises(TinyR1Error, match="is a name the input folder is read from"):  # would shadow the split
        prepare.main(["--dataset_name", "gsm", "--output", "gsm/train.json"])
    assert unchanged(data / "train.jsonl", original) and sorted(os.listdir(data)) == ["train.jsonl"]


def test_a_file_tinyr1_did_not_write_is_refused(data, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(TinyR1Error, match="notes.txt: already exists and is a file tinyr1 did not write"):
        prepare.main(["--dataset_name", str(data), "--output", str(notes)])
    assert unchanged(notes, "mine\n")


def test_its_own_output_is_replaced_but_not_once_edited(data, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    assert prepare.main(["--dataset_name", str(data), "--output", str(out)]) == 0
    assert written_by(out) == "prepare" and json.loads(sidecar(out).read_text())["command"] == "prepare"
    assert [json.loads(line)["answer"] for line in out.read_text().splitlines()] == ["2"]  # a plain rows file
    assert prepare.main(["--dataset_name", str(data), "--output", str(out)]) == 0
    assert "replacing the rows an earlier tinyr1 prepare wrote there" in capsys.readouterr().out
    with pytest.raises(TinyR1Error, match="is the input file"):  # its own file is still an input
        prepare.main(["--dataset_name", str(out), "--output", str(out)])
    with out.open("a") as f:
        f.write(json.dumps({"prompt": [{"role": "user", "content": "mine"}], "answer": "1"}) + "\n")
    edited = out.read_text()
    with pytest.raises(TinyR1Error, match="already exists and is a file tinyr1 did not write \\(or one changed"):
        prepare.main(["--dataset_name", str(data), "--output", str(out)])
    assert unchanged(out, edited)


def test_a_symlink_output_is_never_replaced(data, tmp_path):
    out = tmp_path / "rows.jsonl"
    prepare.main(["--dataset_name", str(data), "--output", str(out)])
    os.symlink(out, tmp_path / "alias.jsonl")
    with pytest.raises(TinyR1Error, match="alias.jsonl: already exists and is a symlink"):
        prepare.main(["--dataset_name", str(data), "--output", str(tmp_path / "alias.jsonl")])


def test_rows_it_cannot_vouch_for_are_removed_not_left_to_block_the_retry(data, tmp_path, monkeypatch):
    from tinyr1.infra import paths

    def full(path, text):  # the disk fills between the rows and their sidecar
        raise TinyR1Error(f"{path}: disk full")

    monkeypatch.setattr(paths, "write_text", full)  # the sidecar's write
    out = tmp_path / "rows.jsonl"
    with pytest.raises(TinyR1Error, match="disk full"):
        prepare.main(["--dataset_name", str(data), "--output", str(out)])
    assert not out.exists()
    monkeypatch.undo()
    assert prepare.main(["--dataset_name", str(data), "--output", str(out)]) == 0 and written_by(out) == "prepare"
