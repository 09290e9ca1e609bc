"""DeepSpeed ZeRO for real, in two CPU processes over gloo (DeepSpeed's CPU accelerator; ``tests/multiprocess.py``):
under ZeRO-3 a tiny GRPO run with LoRA loads partitioned weights, keeps its padded vocabulary, runs the preflight,
the before/after evaluation and the closing comparison, and merges its adapter into a whole model; ZeRO-2 (whole
weights, partitioned optimizer state) runs the same."""

import json

import pytest
import torch
from safetensors.torch import load_file

from ..conftest import make_qlora_model, read_jsonl
from ..multiprocess import launch


@pytest.mark.slow
@pytest.mark.parametrize("stage", [3, 2])
def test_a_zero_grpo_run_in_two_cpu_processes_finishes_whole(gsm8k_dir, tmp_path, stage):
    model = make_qlora_model(tmp_path / "padded-vocab", extra_rows=64)  # 1,088 rows for 1,024 tokens
    out = tmp_path / "zero3"
    result = launch(["train", "--model_name_or_path", str(model), "--dataset_name", str(gsm8k_dir),
                     "--dataset_limit", "8", "--num_generations", "4", "--per_device_train_batch_size", "4",
                     "--gradient_accumulation_steps", "1", "--max_completion_length", "8", "--max_steps", "1",
                     "--reward_funcs", "tests.train_helpers:length_reward", "--learning_rate", "1e-2",
                     "--warmup_steps", "0",
                     "--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj", "--merge_lora", "true",
                     "--eval_before_after", "true", "--eval_limit", "2", "--eval_max_new_tokens", "4",
                     "--save_strategy", "no", "--output_dir", str(out)], tmp_path, zero_stage=stage)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["world_size"] == 2 and run["global_step"] == 1
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "loss" in m] == [1]
    for stage in ("before", "after"):
        assert json.loads((out / "eval" / stage / "metrics.json").read_text())["n"] == 2
    assert (out / "compare.md").is_file() and (out / "report.md").is_file()
    merged = load_file(out / "merged" / "model.safetensors")
    base = load_file(model / "model.safetensors")
    assert merged["model.embed_tokens.weight"].shape == (1088, 64)  # the vocabulary was not shrunk to 1,024
    assert merged.keys() == base.keys() and all(merged[k].shape == base[k].shape for k in base)
    adapter = load_file(out / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # the step moved the adapter
    # ZeRO-3 merges into the base loaded whole from its files (fp32 here); under ZeRO-2 the model in memory is whole
    # and merged there, after DeepSpeed's bf16 mode rounded it to bf16. Either way only the adapted layers moved.
    dtype = torch.float32 if stage == 3 else torch.bfloat16
    changed = [k for k in base if not torch.equal(merged[k].to(dtype), base[k].to(dtype))]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
