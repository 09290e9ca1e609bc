"""Faults a user meets outside a run's bookkeeping, each through the real CLI: prepare over a file of the user's or
over its own input, a full disk under prepare, eval and report (a small tmpfs), and broken rewards in training."""

import json
import os
import shutil

import pytest

from ..conftest import ASSETS, REPO
from .helpers import small_tmpfs

TINY = ASSETS / "tiny-qwen2"


def one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout[-1500:], result.stderr[-1500:])
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tinyr1 ") and ": error: " in line]
    assert len(errors) == 1, result.stderr[-1500:]  # (training's progress bar may print after it)
    return errors[0]


BOOKKEEPING = {".tinyr1-lock", ".tinyr1-run"}  # the folder's lock and ownership marker (tinyr1.run_folder.ownership)


def files(folder) -> list[str]:
    """What a command left in ``folder`` besides its own bookkeeping."""
    return sorted(set(os.listdir(folder)) - BOOKKEEPING)


# ---------------------------------------------------------------- nothing of the user's is overwritten


def test_prepare_never_writes_over_the_users_data_or_its_own_input(cli, gsm8k_dir, tmp_path):
    data = tmp_path / "gsm"
    data.mkdir()
    shutil.copy(gsm8k_dir / "train.jsonl", data / "train.jsonl")
    original = (data / "train.jsonl").read_bytes()
    # The folder named as the source, and its split file as the output: the case that used to exit 0.
    for output in (data / "train.jsonl", f"{data}/../gsm/train.jsonl"):
        line = one_line_error(cli("prepare", "--dataset_name", str(data), "--split", "train", "--output",
                                  str(output), "--limit", "5"))
        assert "is the input file" in line
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    line = one_line_error(cli("prepare", "--dataset_name", str(data), "--output", str(notes), "--limit", "5"))
    assert "notes.txt: already exists and is a file tinyr1 did not write" in line
    assert (data / "train.jsonl").read_bytes() == original and notes.read_text() == "my notes\n"
    assert files(data) == ["train.jsonl"]
    # Its own output is its own to replace, and then an input it will not write over.
    out = tmp_path / "rows.jsonl"
    assert cli("prepare", "--dataset_name", str(data), "--output", str(out), "--limit", "5").returncode == 0
    again = cli("prepare", "--dataset_name", str(data), "--output", str(out), "--limit", "3")
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 3
    assert "is the input file" in one_line_error(cli("prepare", "--dataset_name", str(out), "--output", str(out)))


def test_compare_output_over_a_users_file_is_refused_before_any_model_loads(cli, tmp_path):
    mine = tmp_path / "compare.md"
    mine.write_text("# my own notes\n")
    line = one_line_error(cli("compare", "--base", str(TINY), "--trained", str(TINY), "--output", str(mine)))
    assert "compare.md: already exists and is a file tinyr1 did not write" in line
    assert mine.read_text() == "# my own notes\n"


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: a real full disk (skipped where one cannot be mounted)."""
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


def fill(disk, leave: int):
    """Take all but ``leave`` bytes of the disk with a filler file; delete it to free the space again."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(cli, gsm8k_dir, small_disk):
    out = small_disk / "train.jsonl"
    line = one_line_error(cli("prepare", "--dataset_name", str(gsm8k_dir), "--output", str(out)))
    assert f"{out}: disk full (needs " in line and "bytes free there" in line
    assert files(small_disk) == []  # no train.jsonl.tmp, no empty train.jsonl, no sidecar
    assert cli("prepare", "--dataset_name", str(gsm8k_dir), "--output", str(out), "--limit", "20").returncode == 0
    filler = fill(small_disk, 4096)  # now replacing it fails: the earlier rows stay whole
    before = out.read_bytes()
    assert "disk full" in one_line_error(cli("prepare", "--dataset_name", str(gsm8k_dir), "--output", str(out),
                                             "--limit", "200"))
    assert out.read_bytes() == before and files(small_disk) == [".train.jsonl.tinyr1", "filler", "train.jsonl"]
    filler.unlink()
    retry = cli("prepare", "--dataset_name", str(gsm8k_dir), "--output", str(out), "--limit", "200")
    assert retry.returncode == 0, retry.stderr[-1000:]
    assert len(out.read_text().splitlines()) == 200


def predictions(path, rows: int, completion_chars: int):
    with path.open("w") as f:
        for i in range(rows):
            text = (f"<reasoning>\n{i} + 1 = {i + 1}\n{'x' * completion_chars}\n</reasoning>\n"
                    f"<answer>\n{i + 1}\n</answer>")
            f.write(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1), "completion": text}) + "\n")
    return path


def test_eval_on_a_full_disk_keeps_its_pair_and_the_retry_works(cli, small_disk, tmp_path):
    small, big = predictions(tmp_path / "small.jsonl", 4, 10), predictions(tmp_path / "big.jsonl", 60, 1000)
    fresh = small_disk / "fresh"
    filler = fill(small_disk, 8192)
    line = one_line_error(cli("eval", "--predictions", str(big), "--output_dir", str(fresh)))
    assert "disk full (needs " in line and str(fresh) in line
    assert files(fresh) == []  # no empty metrics.json to be refused as foreign on the retry
    filler.unlink()
    retry = cli("eval", "--predictions", str(big), "--output_dir", str(fresh))
    assert retry.returncode == 0, retry.stderr[-1000:]
    assert json.loads((fresh / "metrics.json").read_text())["n"] == 60

    pair = small_disk / "pair"
    assert cli("eval", "--predictions", str(small), "--output_dir", str(pair)).returncode == 0
    old = {name: (pair / name).read_bytes() for name in ("metrics.json", "samples.jsonl")}
    shutil.rmtree(fresh)
    filler = fill(small_disk, 8192)
    assert "disk full" in one_line_error(cli("eval", "--predictions", str(big), "--output_dir", str(pair)))
    assert {name: (pair / name).read_bytes() for name in old} == old  # the previous pair, whole and matching
    assert files(pair) == ["metrics.json", "samples.jsonl"]
    filler.unlink()
    assert cli("eval", "--predictions", str(big), "--output_dir", str(pair)).returncode == 0
    metrics = json.loads((pair / "metrics.json").read_text())
    assert metrics["n"] == 60 == len((pair / "samples.jsonl").read_text().splitlines())


def test_report_on_a_full_disk_is_one_line_and_the_retry_works(cli, small_disk):
    run = small_disk / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 0.1 * s, "reward": s / 5,
                                                           "grad_norm": 1.0}) + "\n" for s in range(1, 6)))
    (run / "run.json").write_text(json.dumps({"command": "train", "status": "completed",
                                              "versions": {"tinyr1": "test"}}))
    filler = fill(small_disk, 4096)
    line = one_line_error(cli("report", str(run)))
    assert "disk full" in line and str(run) in line
    assert files(run) == ["metrics.jsonl", "plots", "run.json"] and not [
        name for name in os.listdir(run / "plots") if name.endswith(".tmp")]
    filler.unlink()
    retry = cli("report", str(run))
    assert retry.returncode == 0, retry.stderr[-1000:]
    assert "tinyr1 run report" in (run / "report.md").read_text() and (run / "plots" / "training.png").is_file()
    assert cli("report", str(run)).returncode == 0  # its own plots and report are its own to replace


# ---------------------------------------------------------------- broken rewards


def train_args(gsm8k_dir, out, reward, *extra):
    return ["train", "--model_name_or_path", str(TINY), "--dataset_name", str(gsm8k_dir), "--dataset_limit", "16",
            "--num_generations", "4", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--max_completion_length", "8", "--output_dir", str(out), "--sample_every", "0", "--save_steps", "1",
            "--reward_funcs", f"tests.train_helpers:{reward}", "--max_steps", "8", *extra]


def test_a_nan_reward_stops_the_run_with_exit_3_naming_it(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "nan"
    result = cli(*train_args(gsm8k_dir, out, "nan_reward", "--collapse_patience", "2"), cwd=REPO)
    line = one_line_error(result, code=3)
    assert "reward nan_reward returned no finite value for any completion at 2 consecutive steps" in line
    assert "4 x nan" in line
    warning = "[tinyr1 guard] step 1: reward nan_reward returned no finite value (4 x nan) (1/2 in a row)"
    assert warning in result.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "collapsed"
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint-2").exists()


def test_a_reward_of_the_wrong_length_is_one_line_at_the_first_step(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "short"
    line = one_line_error(cli(*train_args(gsm8k_dir, out, "one_value_reward"), cwd=REPO))
    assert "reward one_value_reward returned 1 values for 4 completions" in line
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("reward,said", [
    ("raising_reward", "reward raising_reward raised ZeroDivisionError: division by zero (train_helpers.py line "),
    ("exiting_reward", "reward exiting_reward called sys.exit('reward server gone') (train_helpers.py line "),
])
def test_a_reward_that_raises_or_exits_mid_run_stops_it_with_exit_3_naming_the_call(cli, gsm8k_dir, tmp_path,
                                                                                      reward, said):
    out = tmp_path / reward
    line = one_line_error(cli(*train_args(gsm8k_dir, out, reward), cwd=REPO), code=3)
    assert said in line and "at step 1, called as" in line and "completions=<4>" in line and "answer=..." in line
    assert json.loads((out / "run.json").read_text())["status"] == "collapsed"


# ---------------------------------------------------------------- SFT that would train on nothing


@pytest.mark.parametrize("packing", ["true", "false"])
def test_sft_whose_rows_are_all_cut_by_max_length_is_refused_before_training(cli, tmp_path, packing):
    out = tmp_path / "sft"
    result = cli("sft", "--model_name_or_path", str(TINY), "--dataset_name", str(ASSETS / "alpaca_tiny.json"),
                 "--output_dir", str(out), "--lora_r", "4", "--max_steps", "2", "--max_length", "8", "--packing",
                 packing, cwd=REPO)
    line = one_line_error(result)
    assert "max_length 8: every one of the " in line and "training rows is cut before its answer" in line
    assert "raise --max_length" in line
    assert not list(out.glob("checkpoint-*")) and not (out / "metrics.jsonl").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
