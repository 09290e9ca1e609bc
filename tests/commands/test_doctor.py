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


def fake_machine(monkeypatch, device: str, gib: int = 24):
    from tinyr1.commands import doctor

    def fake_hardware(checks):
        checks.add(doctor.OK, "GPU" if device == "cuda" else "CPU", f"fake {device}, {gib} GiB")
        return {"device": device, "memory": gib * doctor.GiB, "total": gib * doctor.GiB}

    monkeypatch.setattr(doctor, "check_hardware", fake_hardware)
    return doctor


def test_doctor_without_arguments_checks_the_recipe_of_the_machine_it_runs_on(monkeypatch, capsys, tmp_path):
    """No GPU: make demo's CPU run, from its cold start once trained, else from the model the cold start is trained
    from; with a GPU: tinyr1 train's defaults, the GPU recipe. The folder is a checkout's (recipes/ beside it)."""
    doctor = fake_machine(monkeypatch, "cpu")
    recipe = tmp_path / doctor.DEMO_RECIPE
    recipe.parent.mkdir(parents=True)
    shutil.copy(REPO / doctor.DEMO_RECIPE, recipe)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "DEMO_BASE", TINY)  # the same checks on the tiny model, in seconds

    assert doctor.main(["--skip_generation"]) == 0
    out = capsys.readouterr().out
    assert f"[   ok] recipe: no GPU: make demo's run, {doctor.DEMO_RECIPE} --per_device_train_batch_size 16" in out
    assert "outputs/demo/coldstart is not trained yet" in out and f"[   ok] model {TINY}:" in out
    assert "5120 tokens per micro-batch" in out  # 16 completions x (256 prompt + 64) tokens
    assert out.rstrip().endswith("ready to run")

    shutil.copytree(TINY, tmp_path / doctor.DEMO_COLD_START)  # what make demo leaves there
    assert doctor.main([]) == 0  # the generation check too, on the cold start
    out = capsys.readouterr().out
    assert "from the demo's cold start (outputs/demo/coldstart)" in out
    assert "[   ok] model outputs/demo/coldstart" in out
    assert "[   ok] generation: a forward pass, logits finite" in out

    fake_machine(monkeypatch, "cuda", 80)
    assert doctor.main(["--skip_generation"]) == 0
    out = capsys.readouterr().out
    assert "recipe: tinyr1 train's defaults: the GPU recipe" in out and "model Qwen/Qwen2.5-0.5B-Instruct" in out

    fake_machine(monkeypatch, "cpu")
    monkeypatch.chdir(tmp_path / "outputs")  # not a checkout: no recipes/ here
    doctor.main(["--skip_generation"])
    assert "[ warn] recipe: no GPU, and make demo's CPU recipe" in capsys.readouterr().out


def test_the_demo_doctor_checks_is_the_demo_the_makefile_runs():
    """doctor's copy of make demo's recipe, sizes and cold-start folder, checked against the Makefile."""
    from tinyr1.commands import doctor

    makefile = (REPO / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    train = demo[demo.index(" train --config"):]
    assert f"train --config {doctor.DEMO_RECIPE}" in train and "--model_name_or_path $(DEMO_DIR)/coldstart" in train
    assert " ".join(doctor.DEMO_SIZES) in " ".join(train.split())
    assert "DEMO_DIR ?= outputs/demo" in makefile and doctor.DEMO_COLD_START == "outputs/demo/coldstart"
    assert "sft --config recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml" in demo
    assert "model_name_or_path: smollm2-135m-instruct" in (
        REPO / "recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml").read_text()  # DEMO_BASE's source


def test_doctor_names_a_cuda_build_of_torch_on_a_machine_without_a_gpu(monkeypatch, capsys, tmp_path):
    """torch.version.cuda mocked: the CUDA build pip gives a plain `pip install torch`, on this CPU machine."""
    doctor = fake_machine(monkeypatch, "cpu")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch, "__version__", "2.14.1")
    monkeypatch.setattr(doctor, "cuda_libraries", lambda: (int(4.3 * doctor.GiB), ["nvidia-cublas", "triton"]))
    assert doctor.main(["--config", str(recipe(tmp_path, TINY)), "--skip_generation"]) == 0  # a warning, not a block
    line = next(row for row in capsys.readouterr().out.splitlines() if "torch build" in row)
    assert line.startswith("[ warn] torch build: 2.14.1 is a CUDA 13.0 build on a machine without a GPU: 4.3 GiB")
    assert "pip uninstall -y torch nvidia-cublas triton && pip install torch==2.14.1 --index-url " \
           "https://download.pytorch.org/whl/cpu" in line

    fake_machine(monkeypatch, "cuda", 80)  # the same build with a GPU: what it is for
    doctor.main(["--config", str(recipe(tmp_path, TINY)), "--skip_generation"])
    assert "torch build" not in capsys.readouterr().out


def test_the_cuda_libraries_of_this_environment_are_counted():
    from tinyr1.infra.device import cuda_libraries

    size, names = cuda_libraries()
    assert (size > 0) == bool(names) and all(n.startswith(("nvidia-", "cuda-", "triton")) for n in names)
    if torch.version.cuda is None:  # the CPU build make install gives: nothing of CUDA installed beside it
        assert names == []


def test_doctor_blocks_a_recipe_whose_cold_start_is_not_trained_yet(capsys, monkeypatch, tmp_path):
    doctor = fake_machine(monkeypatch, "cpu")
    monkeypatch.chdir(tmp_path)  # no outputs/ here
    assert doctor.main(["--config", str(REPO / doctor.DEMO_RECIPE), "--skip_generation"]) == 1
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("[BLOCK] model"))
    assert line.endswith("not trained yet; it is what tinyr1 sft --config "
                         f"{REPO}/recipes/smollm2-135m-instruct/sft-arith-coldstart-cpu.yaml writes: run that first, "
                         "or give --model_name_or_path another model")
