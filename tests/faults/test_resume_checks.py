"""Resume checks what it resumes, through the real CLI on the tiny model: a finished run is left alone, changed
settings are refused or kept beside the new ones, damaged or mismatched checkpoints are one line, a torn
metrics.jsonl line is dropped before anything is appended, and another run's checkpoints are never resumed.
One trained run is shared; each case works on its own copy."""

import json
import shutil

import pytest
import yaml

from tinyr1.infra.files import read_jsonl

from ..conftest import REPO
from .helpers import one_line, resume_args, status, steps, train_args


@pytest.fixture(scope="module")
def trained(tmp_path_factory, gsm8k_dir):
    from ..conftest import run_cli

    out = tmp_path_factory.mktemp("faults") / "run"
    result = run_cli(*train_args(gsm8k_dir, out, "--max_steps", "3"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def test_a_finished_run_resumed_says_so_and_trains_nothing(cli, run):
    final = (run / "model.safetensors").read_bytes()
    result = cli(*resume_args(run), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "this run finished (3 steps" in result.stdout
    assert (run / "model.safetensors").read_bytes() == final and not (run / "checkpoint-4").exists()
    assert steps(run) == [1, 2, 3] and status(run) == "completed"


def test_changed_settings_are_refused_then_kept_beside_with_the_flag(cli, run):
    changed = resume_args(run, "--max_steps", "4", "--num_generations", "2", "--per_device_train_batch_size", "2")
    refused = cli(*changed, cwd=REPO)
    assert refused.returncode == 2
    line = one_line(refused)
    assert "num_generations: 4 -> 2" in line and "--resume_changed_settings true" in line
    assert steps(run) == [1, 2, 3] and not (run / "config.original.yaml").exists()
    accepted = cli(*changed, "--resume_changed_settings", "true", cwd=REPO)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert "resuming with changes" in accepted.stdout and steps(run) == [1, 2, 3, 4]
    original = yaml.safe_load((run / "config.original.yaml").read_text())
    current = yaml.safe_load((run / "config.yaml").read_text())
    assert original["num_generations"] == 4 and current["num_generations"] == 2
    assert current["resume_changed_settings"] is False  # one resume's consent, not the next one's


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage,extra,expected", [
    (lambda ck: _truncate(ck / "optimizer.pt"), (), "optimizer.pt is damaged"),
    (lambda ck: (ck / "rng_state.pth").write_bytes(b""), (), "rng_state.pth is empty"),
    (lambda ck: (ck / "optimizer.pt").unlink(), (), "checkpoint-3 has no optimizer.pt"),
    (None, ("--use_peft", "true"), "--use_peft true: checkpoint-3 holds a full model, not a LoRA adapter"),
    (None, ("--model_name_or_path", "smollm2-135m-instruct"), "not the model checkpoint-3 was trained from"),
], ids=["truncated-optimizer", "empty-rng-state", "missing-optimizer", "lora-added", "other-model"])
def test_a_damaged_or_mismatched_checkpoint_is_one_line(cli, run, damage, extra, expected):
    if damage is not None:
        damage(run / "checkpoint-3")
    result = cli(*resume_args(run, "--max_steps", "4", *extra), cwd=REPO)
    assert result.returncode == 2 and expected in one_line(result), result.stderr[-2000:]
    assert steps(run) == [1, 2, 3]
    if "damaged" in expected or "empty" in expected:  # the way out it names is the checkpoint before
        assert f"--resume_from_checkpoint {run / 'checkpoint-2'}" in result.stderr


def test_a_torn_metrics_line_is_dropped_before_the_resume_appends(cli, run):
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 0.1, "rew')  # what a kill in the middle of a write leaves
    result = cli(*resume_args(run, "--max_steps", "5"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dropped a half-written last line" in result.stdout
    assert steps(run) == [1, 2, 3, 4, 5]  # every line parses: nothing was appended onto the torn one
    report = cli("report", str(run), cwd=REPO)
    assert report.returncode == 0 and "truncated" not in report.stderr, report.stderr[-2000:]


@pytest.mark.slow
def test_another_runs_checkpoint_is_never_resumed_nor_deleted(cli, run, gsm8k_dir):
    planted = run / "checkpoint-27"
    shutil.copytree(run / "checkpoint-3", planted)  # e.g. copied in from another run of the same model
    (planted / ".tinyr1-run-id").write_text("another-run")
    result = cli(*resume_args(run, "--max_steps", "4"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert steps(run) == [1, 2, 3, 4] and json.loads((run / "run.json").read_text())["global_step"] == 4
    # Starting afresh removes every checkpoint the run made, and nothing else; resume then finds only its own.
    fresh = cli(*train_args(gsm8k_dir, run, "--max_steps", "1", "--overwrite_output_dir", "true"), cwd=REPO)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-27"]
    again = cli(*resume_args(run, "--max_steps", "2"), cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert steps(run) == [1, 2] and [r["step"] for r in read_jsonl(run / "samples.jsonl")] == [1, 2]


def test_eval_of_a_run_killed_during_its_final_save_warns(cli, run, gsm8k_dir, tmp_path):
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))  # what a kill in save_final leaves
    result = cli("eval", "--model_name_or_path", str(run), "--dataset_name", str(gsm8k_dir), "--limit", "1",
                 "--max_new_tokens", "4", "--output_dir", str(tmp_path / "eval"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "its run was killed before it finished" in result.stderr and status(run) == "killed"


# ---------------------------------------------------------------- a resume is exactly what it says


def test_reordered_rewards_are_a_change_not_the_same_settings(cli, run):
    reordered = resume_args(run, "--max_steps", "4", "--reward_funcs", "correctness",
                            "tests.train_helpers:length_reward")
    refused = cli(*reordered, cwd=REPO)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "reward_funcs: ['tests.train_helpers:length_reward', 'correctness'] -> ['correctness'" in one_line(refused)
    assert steps(run) == [1, 2, 3]


def test_list_settings_are_compared_in_order():
    from tinyr1.run_folder.resume import same_setting

    assert not same_setting("curriculum_levels", ["max_terms=3", "max_terms=4"], ["max_terms=4", "max_terms=3"])
    assert not same_setting("reward_weights", [1.0, 2.0], [2, 1])
    assert same_setting("reward_weights", [1.0, 2.0], [1, 2])
    # a set of names, not a sequence: order means nothing to peft or to a generator's options
    assert same_setting("lora_target_modules", ["q_proj", "v_proj"], ["v_proj", "q_proj"])
    assert same_setting("dataset_options", ["min_terms=2", "max_terms=3"], ["max_terms=3", "min_terms=2"])


def _rates(out):
    return {r["step"]: r["learning_rate"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r}


def test_an_accepted_learning_rate_change_is_the_one_that_trains(cli, run):
    result = cli(*resume_args(run, "--max_steps", "5", "--learning_rate", "0.004", "--lr_scheduler_type",
                              "constant", "--resume_changed_settings", "true"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "learning_rate: 0.01 -> 0.004" in result.stdout
    rates = _rates(run)
    assert rates[4] == rates[5] == 0.004, rates  # not the restored scheduler's 0.01


def test_another_runs_checkpoint_named_by_path_is_refused_then_starts_a_new_run(cli, run, tmp_path):
    other = tmp_path / "other" / "checkpoint-1"
    shutil.copytree(run / "checkpoint-1", other)
    (other / ".tinyr1-run-id").write_text("another-run")
    refused = cli(*resume_args(run, "--max_steps", "6", "--resume_from_checkpoint", str(other)), cwd=REPO)
    assert refused.returncode == 2, refused.stderr[-2000:]
    line = one_line(refused)
    assert "not a checkpoint of this run" in line and "--resume_from_foreign_checkpoint true" in line
    assert steps(run) == [1, 2, 3] and sorted(p.name for p in run.glob("checkpoint-*")) == [
        "checkpoint-1", "checkpoint-2", "checkpoint-3"]
    # The flag starts a new run from it, in a folder of its own; never inside the run it would roll back.
    into_run = cli(*resume_args(run, "--max_steps", "6", "--resume_from_checkpoint", str(other),
                                "--resume_from_foreign_checkpoint", "true"), cwd=REPO)
    assert into_run.returncode == 2 and "already holds a tinyr1 train run" in one_line(into_run)
    new = tmp_path / "new"
    started = cli("train", "--config", str(run / "config.yaml"), "--output_dir", str(new), "--max_steps", "3",
                  "--resume_from_checkpoint", str(other), "--resume_from_foreign_checkpoint", "true", cwd=REPO)
    assert started.returncode == 0, started.stderr[-2000:]
    assert steps(new) == [2, 3] and steps(run) == [1, 2, 3]
    assert json.loads((new / ".tinyr1-run").read_text())["run_id"] != "another-run"


def test_a_redone_step_replaces_its_logged_rows(cli, run):
    shutil.rmtree(run / "checkpoint-3")  # killed while saving step 3: its rows were logged, its checkpoint lost
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "killed"}))
    result = cli(*resume_args(run, "--max_steps", "4"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert steps(run) == [1, 2, 3, 4]
    assert [r["step"] for r in read_jsonl(run / "samples.jsonl")] == [1, 2, 3, 4]


def test_a_redone_sft_step_replaces_its_logged_row(cli, tmp_path):
    out = tmp_path / "sft"
    args = ["sft", "--model_name_or_path", str(REPO / "tests/assets/tiny-qwen2"), "--dataset_name",
            str(REPO / "tests/assets/alpaca_tiny.json"), "--output_dir", str(out), "--lora_r", "4", "--save_steps",
            "1", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--packing", "false"]
    first = cli(*args, "--max_steps", "2", cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    shutil.rmtree(out / "checkpoint-2")
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "killed"}))
    again = cli("sft", "--config", str(out / "config.yaml"), "--max_steps", "3", "--resume_from_checkpoint",
                "latest", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r] == [1, 2, 3]


def test_a_checkpoint_folder_that_is_not_the_runs_is_never_saved_into(cli, run):
    # A folder of yours where the resumed run would save its next checkpoint: refused before step 4, untouched.
    yours = run / "checkpoint-4"
    yours.mkdir()
    (yours / "model.safetensors").write_text("my own weights")
    refused = cli(*resume_args(run, "--max_steps", "4"), cwd=REPO)
    assert refused.returncode == 2
    line = one_line(refused)
    assert "checkpoint-4: not this run's checkpoint" in line and "move it out" in line
    assert (yours / "model.safetensors").read_text() == "my own weights"
    assert sorted(p.name for p in yours.iterdir()) == ["model.safetensors"]
    assert steps(run) == [1, 2, 3]
    shutil.move(str(yours), str(run.parent / "moved-out"))  # as the line says: then the resume runs
    resumed = cli(*resume_args(run, "--max_steps", "4"), cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert steps(run) == [1, 2, 3, 4] and (run / "checkpoint-4" / "trainer_state.json").is_file()
