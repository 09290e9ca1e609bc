"""``from tinyr1 import SFTTrainer`` in a trl script: trl's config and data, a tinyr1 run folder around it."""

import json

import pytest
import trl
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from tinyr1 import SFTTrainer
from tinyr1.infra.errors import OutOfMemoryError, TinyR1Error

from ..conftest import ASSETS, read_jsonl

TINY = ASSETS / "tiny-qwen2"
ROWS = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                      {"role": "assistant", "content": f"{i} + {i} = {2 * i}"}]} for i in range(8)]


def script_trainer(out, **config):
    settings = dict(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, use_cpu=True, bf16=False,
                    gradient_checkpointing=False, save_steps=1, logging_steps=1, report_to="none",
                    max_length=64)
    settings.update(config)
    return SFTTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), args=trl.SFTConfig(**settings),
                      train_dataset=Dataset.from_list(ROWS), processing_class=AutoTokenizer.from_pretrained(TINY))


def test_a_trl_sft_script_with_one_changed_import_runs_in_a_run_folder(tmp_path):
    out = tmp_path / "sft"
    trainer = script_trainer(out)
    assert isinstance(trainer, trl.SFTTrainer)
    trainer.train()
    run = json.loads((out / "run.json").read_text())
    assert (run["command"], run["status"], run["global_step"]) == ("sft", "completed", 2)
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "loss" in m] == [1, 2]
    assert (out / "checkpoint-1" / ".tinyr1-run-id").is_file()  # stamped as the run's
    with pytest.raises(TinyR1Error, match="already holds a tinyr1 sft run"):
        script_trainer(out).train()  # a fresh run into it is refused; resume or overwrite it


def test_out_of_memory_is_one_error_with_remedies(tmp_path, monkeypatch):
    import torch

    trainer = script_trainer(tmp_path / "sft")

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trl.SFTTrainer, "training_step", out_of_memory)
    with pytest.raises(OutOfMemoryError, match="per_device_train_batch_size 4 -> 2"):
        trainer.train()
    assert json.loads((tmp_path / "sft" / "run.json").read_text())["status"] == "out of memory"
