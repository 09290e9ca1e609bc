"""tinyr1 generate: one prompt, an adapter, an interactive session, and no prompt at all."""

import subprocess
import sys

from ..conftest import ASSETS, REPO

TINY = str(ASSETS / "tiny-qwen2")


def test_generate_one_prompt_with_and_without_an_adapter(cli, tmp_path):
    plain = cli("generate", "--model_name_or_path", TINY, "--prompt", "What is 2 + 3?", "--max_new_tokens", "5")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert plain.stdout.strip()
    from peft import LoraConfig, get_peft_model

    from tinyr1.models.loading import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(TINY)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = cli("generate", "--model_name_or_path", TINY, "--adapter", str(tmp_path / "adapter"), "--prompt",
                  "What is 2 + 3?", "--max_new_tokens", "5")
    assert adapted.returncode == 0, adapted.stderr[-2000:]


def test_generate_interactive_keeps_the_conversation(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyr1", "generate", "--model_name_or_path", TINY, "--interactive",
                             "--max_new_tokens", "4"], input="hello\n\nsecond turn\nexit\nnever read\n",
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("assistant> ") == 2  # the blank line is skipped, 'exit' ends the loop


def test_generate_needs_a_prompt(cli):
    result = cli("generate", "--model_name_or_path", TINY)
    assert result.returncode == 2 and "give --prompt TEXT or --interactive" in result.stderr
