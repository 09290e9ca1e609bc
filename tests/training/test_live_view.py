"""A live view of a run: ``report_to: trackio`` offline, two steps logged with tinyr1's own numbers (the collapse
guard, the evaluation before and after training) and read back from trackio's local store."""

import trackio  # the dev extras; a missing one fails here rather than skipping the live view silently
import trackio.sqlite_storage
from trackio.sqlite_storage import SQLiteStorage

from ..conftest import ASSETS, REPO

TINY = str(ASSETS / "tiny-qwen2")


def test_two_steps_logged_to_trackio_offline_and_read_back(cli, tmp_path, monkeypatch):
    out = tmp_path / "two-steps"
    result = cli("train", "--config", "recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", "--model_name_or_path",
                 TINY, "--dataset_limit", "8", "--num_generations", "4", "--per_device_train_batch_size", "4",
                 "--max_completion_length", "8", "--max_steps", "2", "--save_steps", "100", "--reward_funcs",
                 "tests.train_helpers:length_reward", "correctness", "--eval_before_after", "true",
                 "--eval_limit", "4", "--eval_max_new_tokens", "8", "--report_to", "trackio",
                 "--project", "tinyr1-live", "--output_dir", str(out), cwd=REPO,
                 env={"TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "trackio" / "tinyr1-live.db").is_file()  # written locally, where TRACKIO_DIR says
    # Read as the dashboard reads it; trackio took TRACKIO_DIR from this process's environment when it was imported.
    monkeypatch.setattr(trackio.sqlite_storage, "TRACKIO_DIR", tmp_path / "trackio")

    names = [run.name for run in trackio.Api().runs("tinyr1-live")]
    assert names == ["two-steps"], names  # the run folder's name: one run, the after-evaluation in it too
    logs = SQLiteStorage.get_logs("tinyr1-live", "two-steps")
    steps = [row for row in logs if "train/reward" in row]
    assert [row["train/global_step"] for row in steps] == [1, 2]
    assert all(row["train/guard/skipped_steps"] == 0 for row in steps)  # tinyr1's guard, beside trl's numbers
    assert "train/rewards/length_reward/mean" in steps[0]
    before = [row for row in logs if "eval/before/accuracy_strict" in row]
    after = [row for row in logs if "eval/after/accuracy_strict" in row]
    assert len(before) == 1 and before[0]["train/global_step"] == 1 and before[0]["eval/before/mean_completion_tokens"]
    assert len(after) == 1 and after[0]["train/global_step"] == 2
    assert 0.0 <= after[0]["eval/after/accuracy_strict"] <= 1.0
