"""Two CPU processes over gloo, as DDP runs on GPUs (``tests/multiprocess.launch``): a guard that fires on one
process only — a reward with no finite value, a reward that raises — stops both in the same step with the same
reason, and run.json says why. Without the agreement (tinyr1.training.rank_agreement) the other process waits in
trl's next gather of the rewards until the collective times out; here that is the launch's timeout."""

import json

import pytest

from ..conftest import ASSETS
from ..multiprocess import launch


@pytest.mark.slow
@pytest.mark.parametrize("reward", ["nan_on_the_second_process", "raises_on_the_second_process"])
def test_a_guard_on_one_process_stops_both_in_the_same_step(tmp_path, gsm8k_dir, reward):
    out = tmp_path / "run"
    result = launch(["train", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(gsm8k_dir),
                     "--dataset_limit", "16", "--reward_funcs", f"tests.train_helpers:{reward}",
                     "--reward_weights", "1", "--per_device_train_batch_size", "4", "--num_generations", "4",
                     "--max_completion_length", "4", "--max_steps", "4", "--collapse_patience", "1",
                     "--save_steps", "1000", "--sample_every", "0", "--output_dir", str(out)], tmp_path, timeout=300)
    # each process exits 3 (the launcher then reports the first failure and exits 1)
    assert result.returncode != 0 and "(exitcode: 3)" in result.stderr, result.stderr[-3000:]
    errors = [line.split("tinyr1 train: error: ", 1)[1] for line in result.stderr.splitlines()
              if "tinyr1 train: error: " in line]
    assert len(errors) == 2 and errors[0] == errors[1], errors  # both processes, one reason
    assert f"reward {reward}" in errors[0]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "collapsed" and run["global_step"] == 1 and run["world_size"] == 2
    assert run["stopped_because"].startswith(f"reward {reward}")
