"""QLoRA on this CPU with bitsandbytes' CPU backend: the compute dtype the recipes' ``dtype: auto`` becomes, the
checks before loading, a 4-bit LoRA that still trains after it generates, and the commands end to end (sft, train,
then generate with the adapter)."""

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from tinyr1.infra.cpu_features import cpu_bf16
from tinyr1.infra.errors import TinyR1Error
from tinyr1.models import loading, precision, quantization
from tinyr1.training import sft

from ..conftest import ASSETS, REPO

RECIPE = str(REPO / "recipes/deepseek-r1-distill-llama-8b/sft-alpaca.yaml")
ALPACA = str(ASSETS / "alpaca_tiny.json")


def sft_recipe(*extra):
    return sft.parse(["--config", RECIPE, "--model_name_or_path", str(ASSETS / "tiny-qwen2"), *extra],
                     check_setup=False)


def plan_of(recipe):
    return precision.choose_precision(precision.training_request(recipe.args, recipe.model_args.dtype), lora=True)


def test_the_recipes_auto_dtype_becomes_a_real_compute_dtype():
    # trl's get_quantization_config passes dtype "auto" on, and transformers looks up torch.auto: AttributeError.
    recipe = sft_recipe()
    assert recipe.model_args.dtype == "auto" and recipe.model_args.load_in_4bit
    config = quantization.load_kwargs(recipe.model_args, plan_of(recipe))["quantization_config"]
    expected = torch.bfloat16 if cpu_bf16().native else torch.float32  # bf16 only where the CPU multiplies it
    assert config.bnb_4bit_compute_dtype == expected and config.bnb_4bit_quant_type == "nf4"
    fp32 = sft_recipe("--bf16", "false", "--dtype", "float32")
    assert quantization.load_kwargs(fp32.model_args, plan_of(fp32))["quantization_config"].bnb_4bit_compute_dtype \
        == torch.float32
    assert quantization.load_kwargs(sft_recipe("--load_in_4bit", "false").model_args, plan_of(recipe)) == {}


def hide_bitsandbytes(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))


def test_quantized_loading_is_refused_in_one_line_where_it_cannot_run(monkeypatch):
    with pytest.raises(TinyR1Error, match=r"cannot be trained themselves; add use_peft=True"):
        quantization.check(sft_recipe().model_args, trains_adapter=False)
    with pytest.raises(TinyR1Error, match="load_in_8bit needs a CUDA GPU"):
        quantization.check(sft_recipe("--load_in_4bit", "false", "--load_in_8bit", "true").model_args,
                           trains_adapter=True)
    hide_bitsandbytes(monkeypatch)
    with pytest.raises(TinyR1Error, match=r'need bitsandbytes: pip install -c constraints.txt -e ".\[qlora\]"'):
        quantization.check(sft_recipe().model_args, trains_adapter=True)


def test_without_bitsandbytes_4bit_and_8bit_optimizers_are_one_line(monkeypatch, capsys, gsm8k_dir, tmp_path):
    from tinyr1.cli import main

    hide_bitsandbytes(monkeypatch)
    train = ["train", "--model_name_or_path", str(ASSETS / "tiny-qwen2"), "--dataset_name", str(gsm8k_dir),
             "--output_dir", str(tmp_path / "out"), "--max_steps", "1"]
    for argv, expected in [([*train, "--optim", "adamw_8bit"], "--optim adamw_8bit: needs bitsandbytes"),
                           ([*train, "--load_in_4bit", "true", "--use_peft", "true"],
                            "load_in_4bit/load_in_8bit need bitsandbytes")]:
        assert main(argv) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "out").exists()


def lora_4bit(qlora_model, prepare: bool):
    from peft import LoraConfig, get_peft_model

    recipe = sft_recipe("--model_name_or_path", str(qlora_model))
    plan = plan_of(recipe)
    model = loading.load_model(str(qlora_model), dtype=plan.dtype, device=None,
                               **quantization.load_kwargs(recipe.model_args, plan))
    assert quantization.is_quantized(model) and type(model.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    if prepare:
        quantization.prepare_for_training(model)
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"]))


def train_step(model, ids) -> dict:
    """One forward and backward; the gradient's size on each layer's LoRA B matrices."""
    model.train()
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return {name: float(p.grad.abs().sum()) for name, p in model.named_parameters() if "lora_B" in name}


def test_a_4bit_lora_model_trains_after_it_generates(qlora_model):
    model = lora_4bit(qlora_model, prepare=True)
    ids = torch.randint(3, 1000, (2, 24), generator=torch.Generator().manual_seed(0))
    first = train_step(model, ids)
    assert first and all(g > 0 for g in first.values())  # every layer's adapter gets a gradient
    model.eval()
    with torch.no_grad():  # GRPO generates between steps
        out = model.generate(ids[:1, :6], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 10)
    after = train_step(model, ids)
    assert after.keys() == first.keys()
    assert all(abs(after[k] - first[k]) <= 1e-3 * first[k] for k in first), (first, after)


@pytest.mark.skipif(not importlib.util.find_spec("bitsandbytes") or not cpu_bf16().native,
                    reason="bitsandbytes repacks 4-bit weights for generation only on a CPU with AVX-512 bf16")
def test_without_prepare_for_training_bitsandbytes_breaks_the_step_after_generation(qlora_model):
    # What prepare_for_training guards against: bitsandbytes' repacked weights have no backward.
    model = lora_4bit(qlora_model, prepare=False)
    ids = torch.randint(3, 1000, (2, 24), generator=torch.Generator().manual_seed(0))
    train_step(model, ids)
    model.eval()
    with torch.no_grad():
        model.generate(ids[:1, :6], max_new_tokens=4, do_sample=False)
    with pytest.raises(RuntimeError):  # Qwen2's q/k/v biases: an in-place add on a leaf that needs its gradient
        train_step(model, ids)


def lora_b_changed(folder) -> bool:
    weights = load_file(folder / "adapter_model.safetensors")
    return any("lora_B" in k for k in weights) and all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


def test_sft_in_4bit_saves_an_adapter_that_generate_uses(cli, qlora_model, tmp_path):
    out = tmp_path / "sft"
    result = cli("sft", "--config", RECIPE, "--model_name_or_path", str(qlora_model), "--dataset_name", ALPACA,
                 "--max_steps", "2", "--max_length", "128", "--learning_rate", "1e-2", "--warmup_steps", "0",
                 "--output_dir", str(out), "--save_strategy", "no", "--merge_lora", "true", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "weights 4-bit nf4, computed in" in result.stdout
    assert lora_b_changed(out)  # B starts at zero: two steps moved every adapter
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    # merged from the saved adapter into the base loaded whole: a plain model, the adapter's outputs
    merged_config = json.loads((out / "merged" / "config.json").read_text())
    assert "quantization_config" not in merged_config
    adapted, merged = loading.load_model(str(out), dtype=torch.float32), loading.load_model(str(out / "merged"))
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        assert torch.allclose(adapted.eval()(ids).logits, merged.float().eval()(ids).logits, atol=1e-4)
    reply = cli("generate", "--model_name_or_path", str(out), "--prompt", "Add 2 and 3.", "--max_new_tokens", "6")
    assert reply.returncode == 0, reply.stderr[-2000:]
    assert reply.stdout.strip()


def test_train_in_4bit_trains_the_adapter_and_evaluates_before_and_after(cli, qlora_model, gsm8k_dir, tmp_path):
    out = tmp_path / "grpo"
    result = cli("train", "--model_name_or_path", str(qlora_model), "--dataset_name", str(gsm8k_dir),
                 "--dataset_limit", "8", "--num_generations", "4", "--per_device_train_batch_size", "4",
                 "--gradient_accumulation_steps", "1", "--max_completion_length", "12", "--max_steps", "2",
                 "--reward_funcs", "tests.train_helpers:length_reward", "--learning_rate", "1e-2",
                 "--load_in_4bit", "true", "--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj",
                 "--eval_before_after", "true", "--eval_limit", "2", "--eval_max_new_tokens", "6",
                 "--output_dir", str(out), "--save_strategy", "no", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "weights 4-bit nf4" in result.stdout
    assert "not the CPU fast path: the weights are 4-bit or 8-bit (bitsandbytes)" in result.stdout
    assert lora_b_changed(out)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 2
    assert (out / "eval" / "before" / "metrics.json").is_file() and (out / "eval" / "after" / "metrics.json").is_file()


@pytest.mark.slow
def test_the_recipes_4bit_sft_on_smollm2_then_generate(cli, tmp_path):
    # The recipe as written (4-bit, bf16, adamw_8bit, packing) on the offline model; its hub data set swapped for
    # the tiny alpaca file (no network here).
    out = tmp_path / "smollm2-sft"
    result = cli("sft", "--config", RECIPE, "--model_name_or_path", "smollm2-135m-instruct", "--max_steps", "2",
                 "--dataset_name", ALPACA, "--output_dir", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "weights 4-bit nf4" in result.stdout and lora_b_changed(out)
    reply = cli("generate", "--model_name_or_path", str(out), "--prompt", "Add 2 and 3.", "--max_new_tokens", "8")
    assert reply.returncode == 0 and reply.stdout.strip(), reply.stderr[-2000:]
