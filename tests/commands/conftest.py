"""Fixtures the command tests share: one real tiny training run, made once, that compare and report both read."""

import pytest

from ..conftest import ASSETS, REPO, run_cli


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, gsm8k_dir):
    out = tmp_path_factory.mktemp("run") / "tiny"
    result = run_cli("train", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(gsm8k_dir),
                     "--max_steps", "3", "--num_generations", "4", "--per_device_train_batch_size", "4",
                     "--gradient_accumulation_steps", "1", "--max_completion_length", "12", "--output_dir", str(out),
                     "--save_strategy", "no", "--sample_every", "1", "--eval_before_after", "true", "--eval_limit",
                     "4", "--eval_max_new_tokens", "8", "--reward_funcs", "tests.train_helpers:length_reward",
                     "correctness", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "report:" in result.stdout
    return out
