"""tinyr1 sft on the tiny model: alpaca and reasoning formats, LoRA adapter and merge, loss falls, clear errors."""

import json

import pytest

from tinyr1.tasks.sft_rows import load_sft_rows

from ..conftest import ASSETS, read_jsonl

TINY = str(ASSETS / "tiny-qwen2")
ALPACA = str(ASSETS / "alpaca_tiny.json")


def sft(cli, out, *extra):
    return cli("sft", "--model_name_or_path", TINY, "--output_dir", str(out), "--lora_r", "8", "--save_strategy", "no",
               *extra)


def losses(out):
    return [row["loss"] for row in read_jsonl(out / "metrics.jsonl") if "loss" in row]


def test_alpaca_lora_saves_adapter_merges_and_loss_falls(cli, tmp_path):
    out = tmp_path / "alpaca"
    result = sft(cli, out, "--dataset_name", ALPACA, "--dataset_limit", "1", "--max_steps", "25",
                 "--learning_rate", "1e-2", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
                 "--warmup_steps", "0", "--packing", "false", "--merge_lora", "true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == TINY
    values = losses(out)
    assert len(values) == 25 and all(v is not None for v in values)
    assert values[-1] < 0.75 * values[0], values  # one repeated row: the loss must fall (measured 7.6 -> 4.4)
    assert "sample from the fine-tuned model" in result.stdout
    import torch
    from transformers import AutoModelForCausalLM

    from tinyr1.models.loading import load_model

    adapted = load_model(str(out))
    assert hasattr(adapted, "peft_config")  # train/eval/generate accept the adapter folder
    # The merged model is the base with the adapter folded in: same size, the adapter's outputs, not the base's.
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32).eval()
    assert merged.num_parameters() == base.num_parameters()
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        want, got, plain = (m.float().eval()(ids).logits for m in (adapted, merged, base))
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, plain, atol=1e-2)


def test_reasoning_cold_start_rows_and_two_steps(cli, gsm8k_dir, tmp_path):
    rows = load_sft_rows(str(gsm8k_dir), "reasoning", limit=2)
    target = rows[0]["completion"][0]["content"]
    assert target.startswith("<reasoning>\nNatalia sold 48/2 = 24 clips in May.") and "<<" not in target
    assert target.endswith("</reasoning>\n<answer>\n72\n</answer>")
    assert rows[0]["prompt"][0]["role"] == "system"
    out = tmp_path / "cold"
    result = sft(cli, out, "--dataset_name", "reasoning-gym:gsm_symbolic", "--dataset_format", "reasoning",
                 "--dataset_limit", "4", "--max_steps", "2", "--max_length", "256")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(losses(out)) == 2 and (out / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("native", ["1", "0"])
def test_run_json_records_the_precision_and_the_cpu_as_train_does(cli, tmp_path, native):
    # A number measured in bf16 autocast holds on a CPU that multiplies bf16 natively: the run says which it was.
    out = tmp_path / "run"
    result = cli("sft", "--model_name_or_path", TINY, "--output_dir", str(out), "--lora_r", "8", "--save_strategy",
                 "no", "--dataset_name", ALPACA, "--dataset_limit", "2", "--max_steps", "1", "--packing", "false",
                 "--overwrite_output_dir", "true", env={"TINYR1_CPU_BF16": native})
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["device"] == "cpu" and run["dtype"] == "float32"
    assert run["bf16"] is (native == "1") and run["cpu"]["native"] is (native == "1")
    assert run["precision_reason"].startswith("precision: bf16 autocast" if native == "1" else "precision: fp32")
    assert run["cpu"]["cpu_name"] and run["num_threads"] == 1


def test_alpaca_rows_render_the_template_or_chat():
    text = load_sft_rows(ALPACA, "alpaca", limit=2, eos_token="</s>")
    assert text[1]["prompt"].startswith("Below is an instruction that describes a task")
    expected_end = "### Instruction:\nAdd the two numbers.\n\n### Input:\n12 and 30\n\n### Response:\n"
    assert text[1]["prompt"].endswith(expected_end)
    assert text[1]["completion"] == "12 + 30 = 42</s>"
    chat = load_sft_rows(ALPACA, "alpaca", limit=2, alpaca_as_chat=True)
    assert chat[1]["prompt"] == [{"role": "user", "content": "Add the two numbers.\n\n12 and 30"}]


def test_alpaca_rows_without_output_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    from tinyr1.infra.errors import TinyR1Error

    with pytest.raises(TinyR1Error, match="line 1: missing field output"):
        load_sft_rows(str(bad), "alpaca")


def test_every_sft_recipe_parses_and_the_8b_name_is_the_real_one():
    from tinyr1.commands.sft import parse_args

    from ..conftest import REPO

    recipes = sorted((REPO / "recipes").glob("*/sft-*.yaml"))
    assert len(recipes) == 3
    for path in recipes:
        script, training, model_args, _ = parse_args(["--config", str(path)], check_setup=False)
        assert model_args.use_peft and script.dataset_format in ("alpaca", "reasoning")
        assert path.read_text().startswith("#") and "tinyr1 sft --config" in path.read_text()
    big = (REPO / "recipes" / "deepseek-r1-distill-llama-8b" / "sft-alpaca.yaml").read_text()
    assert "model_name_or_path: deepseek-ai/DeepSeek-R1-Distill-Llama-8B" in big
