"""tinyr1 doctor on good and broken recipes, on faked machines, and told which command a recipe is for."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from ..conftest import ASSETS, REPO

TINY = str(ASSETS / "tiny-qwen2")


def recipe(tmp_path, model):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model_name_or_path: {model}\ndataset_name: reasoning-gym:gsm_symbolic\nnum_generations: 4\n"
                    "per_device_train_batch_size: 4\nmax_completion_length: 32\n")
    return path


def test_doctor_on_a_good_recipe(cli, tmp_path):
    result = cli("doctor", "--config", str(recipe(tmp_path, TINY)))
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    for line in ("[   ok] torch:", "[   ok] model", "[   ok] memory: ~",
                 "[   ok] generation: a forward pass, logits finite", "ready to run"):
        assert line in result.stdout
    # The recipe's rewards on groups sampled as training would: a random model never writes the tags, so nothing
    # varies; a warning with the no-signal guard's diagnosis, before anyone spends a budget.
    signal = next(line for line in result.stdout.splitlines() if "reward signal:" in line)
    assert "0% of 4 groups of 4 completions have rewards that vary" in signal
    assert "no completion has the <reasoning>/<answer> format" in signal and "tinyr1 sft" in signal


def test_doctor_blocks_a_missing_model_and_a_nan_model(cli, tmp_path):
    missing = cli("doctor", "--config", str(recipe(tmp_path, "./no-such-model")))
    assert missing.returncode == 1 and "[BLOCK] model ./no-such-model: model path ./no-such-model does not exist" in \
        missing.stdout
    broken = tmp_path / "nan"
    shutil.copytree(TINY, broken)
    weights = {k: torch.full_like(v, float("nan")) for k, v in load_file(broken / "model.safetensors").items()}
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    nan = cli("doctor", "--config", str(recipe(tmp_path, broken)))
    assert nan.returncode == 1 and "[BLOCK] generation: preflight" in nan.stdout


@pytest.mark.parametrize("device,gib,code,memory_line", [
    # The recipe's Qwen2.5-0.5B run in fp32 on a CPU needs ~25.6 GiB, in bf16 on a GPU ~20.6 GiB (KNOWN_PARAMS).
    ("cpu", 24, 1, "[BLOCK] memory: ~25.6 GiB needed here"),
    ("cpu", 128, 0, "[   ok] memory: ~25.6 GiB needed here"),
    ("cuda", 80, 0, "[   ok] memory: ~20.6 GiB needed here"),
])
def test_doctor_explains_what_the_gpu_recipe_needs(monkeypatch, capsys, device, gib, code, memory_line):
    # The machine is faked so the verdict and the exit code are the same on every machine the tests run on.
    from tinyr1.commands import doctor

    def fake_hardware(checks):
        checks.add(doctor.OK, "GPU" if device == "cuda" else "CPU", f"fake {device}, {gib} GiB")
        return {"device": device, "memory": gib * doctor.GiB, "total": gib * doctor.GiB}

    monkeypatch.setattr(doctor, "check_hardware", fake_hardware)
    recipe_file = REPO / "recipes" / "qwen2.5-0.5b-instruct" / "grpo-gsm8k.yaml"
    assert doctor.main(["--config", str(recipe_file), "--skip_generation"]) == code
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if "memory:" in row)
    assert line.startswith(memory_line) and "494M parameters" in line, line
    where = "GPU memory" if device == "cuda" else "RAM"
    assert f"vs {gib} GiB {where}" in line
    # On a CPU the doctor also says what the same run needs on a bf16 GPU; on the GPU that is the estimate itself.
    assert ("on a bf16 GPU about 20.6 GiB per GPU" in line) == (device == "cpu")
    assert ("will not fit:" in line and "per_device_train_batch_size 16 -> 8" in line) == (code == 1)
    assert out.rstrip().endswith("1 blocking problem(s)" if code else "ready to run")


def test_doctor_is_told_the_command_not_guessing_it(tmp_path, capsys):
    from tinyr1.cli import main

    sft_recipe = tmp_path / "sft.yaml"
    sft_recipe.write_text(f"model_name_or_path: {TINY}\ndataset_name: reasoning-gym:gsm_symbolic\n"
                          "dataset_format: reasoning\nmax_length: 256\n")  # no num_generations: SFT or GRPO alike
    assert main(["doctor", "--command", "sft", "--config", str(sft_recipe), "--skip_generation"]) == 0
    out = capsys.readouterr().out
    assert f"recipe: {sft_recipe} (sft)" in out and "max_length" not in out.split("memory:")[0]
    # The same file read as a GRPO recipe is bad input (dataset_format is not a train field): exit 2, one line.
    assert main(["doctor", "--config", str(sft_recipe), "--skip_generation"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'dataset_format'" in err[0]
