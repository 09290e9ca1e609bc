"""Both trainers keep a LoRA's sums in fp32 under CPU bf16 autocast (tinyr1.models.precision.keep_adapter_sums_fp32),
and leave an fp32 run as trl has it."""

import pytest
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

import tinyr1
from tinyr1.models.precision import _HOOKED

from ..conftest import ASSETS
from .test_grpo_trainer import ROWS

TINY = ASSETS / "tiny-qwen2"
LORA = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")


def _hooked(trainer) -> int:
    return sum(1 for module in trainer.model.modules() if getattr(module, _HOOKED, False))


def _grpo(out, bf16: bool):
    args = tinyr1.GRPOConfig(output_dir=str(out), per_device_train_batch_size=4, num_generations=4,
                             max_completion_length=4, use_cpu=True, bf16=bf16, report_to="none")
    return tinyr1.GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), reward_funcs=[lambda **k: [0.0]],
                              args=args, train_dataset=Dataset.from_list(ROWS),
                              processing_class=AutoTokenizer.from_pretrained(TINY), peft_config=LORA)


def _sft(out, bf16: bool):
    args = tinyr1.SFTConfig(output_dir=str(out), per_device_train_batch_size=2, max_length=64, use_cpu=True,
                            bf16=bf16, report_to="none")
    rows = [{"messages": [{"role": "user", "content": f"{i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
            for i in range(4)]
    return tinyr1.SFTTrainer(model=AutoModelForCausalLM.from_pretrained(TINY), args=args,
                             train_dataset=Dataset.from_list(rows),
                             processing_class=AutoTokenizer.from_pretrained(TINY), peft_config=LORA)


@pytest.mark.parametrize("build", [_grpo, _sft], ids=["GRPOTrainer", "SFTTrainer"])
def test_lora_sums_are_fp32_under_cpu_bf16_and_untouched_in_fp32(build, tmp_path):
    layers = len(LORA.target_modules) * AutoModelForCausalLM.from_pretrained(TINY).config.num_hidden_layers
    assert _hooked(build(tmp_path / "bf16", bf16=True)) == layers
    assert _hooked(build(tmp_path / "fp32", bf16=False)) == 0
