"""tinyr1 train end to end on the tiny model: outputs, resume, LoRA, the collapse guard and clear errors."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tinyr1.commands import train
from tinyr1.infra.errors import CollapseError

from ..conftest import ASSETS, REPO, read_jsonl
from ..multiprocess import launch

TINY = ASSETS / "tiny-qwen2"


def base_args(gsm8k_dir, out, *extra):
    return ["train", "--model_name_or_path", str(TINY), "--dataset_name", str(gsm8k_dir), "--dataset_limit", "16",
            "--num_generations", "4", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
            "--max_completion_length", "16", "--output_dir", str(out), "--sample_every", "1",
            "--reward_funcs", "tests.train_helpers:length_reward", "correctness", "--learning_rate", "1e-2", *extra]


def test_two_steps_train_and_leave_every_output(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    # TINYR1_CPU_BF16=1: the bf16 branch on any CPU (tests/models/test_precision.py fakes both); the fast path is
    # the default.
    result = cli(*base_args(gsm8k_dir, out, "--max_steps", "2", "--save_steps", "1"), cwd=REPO,
                 env={"TINYR1_CPU_BF16": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "precision: bf16 autocast over fp32 weights on CPU" in result.stdout and "Question:" in result.stdout
    assert "trainer: CPU fast path" in result.stdout
    assert "1 CPU thread(s) ($OMP_NUM_THREADS)" in result.stdout  # the header says how many threads and why
    # Dependency messages that tell a user nothing are filtered (tinyr1.infra.quiet); trl's own bar stays.
    for noise in ("FutureWarning", "Tokenizing", "Map", "Loading weights", "Writing model shards", "kernels"):
        assert noise not in result.stdout + result.stderr, noise
    assert "2/2 [" in result.stderr
    before, after = load_file(TINY / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "training did not change the weights"
    metrics = read_jsonl(out / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert {"grad_norm", "learning_rate", "reward", "rewards/length_reward/mean",
            "rewards/correctness_reward_func/mean"} <= set(steps[0])
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 2]
    assert set(samples[0]) >= {"question", "answer", "completion", "extracted", "rewards"}
    assert set(samples[0]["rewards"]) == {"length_reward", "correctness_reward_func"}
    assert (out / "checkpoint-1" / "trainer_state.json").is_file() and (out / "checkpoint-2").is_dir()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 2 and run["device"] == "cpu"
    assert run["trainer"] == "GRPOTrainer" and run["cpu_fast_path"]["used"]
    assert run["cpu"]["native"] and run["cpu"]["speedup"] > 0
    from transformers import AutoModelForCausalLM

    # The saved folder loads as a model holding exactly the trained weights (not the base model's).
    reloaded = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert set(after) <= set(reloaded) and all(torch.equal(reloaded[k].to(after[k].dtype), after[k]) for k in after)

    # Resume: the config.yaml the run wrote is a complete recipe; continue from the newest checkpoint.
    shutil.rmtree(out / "checkpoint-2")  # as if the run had stopped after step 1
    resumed = cli("train", "--config", str(out / "config.yaml"), "--max_steps", "3",
                  "--resume_from_checkpoint", "latest", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logged = [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "loss" in m]
    assert logged == [1, 2, 3]  # step 2 was trained again after resuming at step 1: its row replaced, not repeated
    assert json.loads((out / "run.json").read_text())["global_step"] == 3


def test_lora_saves_an_adapter_and_a_merged_model(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "lora"
    result = cli(*base_args(gsm8k_dir, out, "--max_steps", "1", "--use_peft", "true", "--lora_r", "4",
                            "--lora_target_modules", "q_proj", "v_proj", "--merge_lora", "true",
                            "--save_strategy", "no"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "model.safetensors").is_file()
    from tinyr1.models.loading import resolve_model

    assert resolve_model(str(out)).kind == "adapter"


def test_nan_model_is_stopped_by_the_preflight(cli, gsm8k_dir, tmp_path):
    broken = tmp_path / "nan-model"
    shutil.copytree(TINY, broken)
    weights = load_file(broken / "model.safetensors")
    weights = {k: torch.full_like(v, float("nan")) if "layers.0" in k else v for k, v in weights.items()}
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    args = base_args(gsm8k_dir, tmp_path / "out", "--max_steps", "1")
    args[args.index(str(TINY))] = str(broken)
    result = cli(*args, cwd=REPO)
    assert result.returncode == 3
    assert "preflight" in result.stderr and "NaN/inf" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "metrics.jsonl").exists()  # stopped before any step


def test_non_finite_gradients_are_skipped_then_stop_the_run(gsm8k_dir, tmp_path, monkeypatch):
    from tinyr1.models import loading as models

    real_load = models.load_model
    loaded = {}

    def load_with_nan_gradients(*args, **kwargs):
        model = real_load(*args, **kwargs)
        loaded["initial"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for p in model.parameters():
            p.register_hook(lambda grad: grad * float("nan"))
        loaded["model"] = model
        return model

    monkeypatch.setattr(models, "load_model", load_with_nan_gradients)
    out = tmp_path / "run"
    with pytest.raises(CollapseError, match="3 consecutive optimizer steps had non-finite gradients"):
        train.main(base_args(gsm8k_dir, out, "--max_steps", "6", "--save_steps", "1")[1:])
    final = loaded["model"].state_dict()
    assert all(torch.equal(loaded["initial"][k], final[k]) for k in final), "a NaN step reached the weights"
    metrics = [m for m in read_jsonl(out / "metrics.jsonl") if "loss" in m]
    assert len(metrics) == 3 and all(m["grad_norm"] is None for m in metrics)  # NaN written as null
    assert [m["guard/skipped_steps"] for m in metrics] == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["status"] == "collapsed"
    assert not (out / "checkpoint-3").exists()  # no checkpoint of a collapsed step


# Bad input (typos, missing files, ranges, types, folders...) is covered in-process by tests/test_bad_inputs.py.


def test_recipe_defaults_are_the_recipes_run():
    script, training, model_args, _ = train.parse_args([])
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-0.5B-Instruct" and script.dataset_name == "openai/gsm8k"
    assert [training.learning_rate, training.adam_beta2, training.weight_decay, training.max_grad_norm] == [
        5e-6, 0.99, 0.1, 0.1]
    assert training.lr_scheduler_type == "cosine" and training.num_generations == 16
    assert training.max_completion_length == 200 and training.logging_nan_inf_filter is False
    prompts_per_step = (training.per_device_train_batch_size * training.gradient_accumulation_steps
                        // training.num_generations)
    assert prompts_per_step == 4
    assert script.reward_funcs == ["xmlcount", "soft_format", "strict_format", "int", "correctness"]


def test_every_recipe_parses():
    recipes = sorted((REPO / "recipes").glob("*/grpo-*.yaml"))
    assert len(recipes) >= 2
    for recipe in recipes:
        script, training, model_args, _ = train.parse_args(["--config", str(recipe)])
        assert training.per_device_train_batch_size % training.num_generations == 0, recipe
        assert script.reward_funcs and model_args.model_name_or_path, recipe
        assert recipe.read_text().startswith("#") and "tinyr1 train --config" in recipe.read_text()


@pytest.mark.slow
def test_smollm2_alias_trains_one_short_step(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "smol"
    result = cli("train", "--model_name_or_path", "smollm2-135m-instruct", "--dataset_name", str(gsm8k_dir),
                 "--dataset_limit", "4", "--num_generations", "2", "--per_device_train_batch_size", "2",
                 "--gradient_accumulation_steps", "1", "--max_completion_length", "8", "--max_steps", "1",
                 "--save_strategy", "no", "--output_dir", str(out), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "smollm2-135m-instruct (135M parameters)" in result.stdout
    assert (out / "model.safetensors").is_file() and json.loads((out / "run.json").read_text())["global_step"] == 1


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_train_one_step(gsm8k_dir, tmp_path):
    out = tmp_path / "ddp"
    result = launch(base_args(gsm8k_dir, out, "--max_steps", "1", "--save_strategy", "no"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["global_step"] == 1 and (out / "model.safetensors").is_file()


def test_overwrite_output_dir_never_deletes_a_file_tinyr1_did_not_write(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "run"
    args = base_args(gsm8k_dir, out, "--max_steps", "1", "--save_strategy", "no")
    first = cli(*args, cwd=REPO)
    assert first.returncode == 0, first.stderr[-2000:]
    (out / "my-notes.txt").write_text("the user's own notes\n")
    refused = cli(*args, cwd=REPO)  # a fresh run never appends to another run's metrics
    assert refused.returncode == 2 and "already holds a tinyr1 train run" in refused.stderr
    again = cli(*args, "--overwrite_output_dir", "true", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "my-notes.txt").read_text() == "the user's own notes\n"
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "loss" in m] == [1]  # the old run's were removed


def test_time_budget_stops_after_a_step_and_finishes_the_run(cli, gsm8k_dir, tmp_path):
    out = tmp_path / "budget"
    result = cli(*base_args(gsm8k_dir, out, "--max_steps", "5", "--max_train_minutes", "0.0001"), cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max_train_minutes=0.0001 reached at step 1" in result.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["global_step"] == 1 and run["time_budget_reached_at_step"] == 1
    assert (out / "checkpoint-1" / "trainer_state.json").is_file() and (out / "model.safetensors").is_file()


def sft_adapter(folder, perturb: bool = False):
    """A LoRA adapter over the tiny model, saved as `tinyr1 sft` saves one; perturbed, it changes the model."""
    from peft import LoraConfig, get_peft_model

    from tinyr1.models.loading import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(TINY))
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj", "o_proj"]))
    if perturb:  # a fresh adapter is a no-op (B = 0)
        torch.manual_seed(0)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.data.normal_(0, 1.0)
    peft_model.save_pretrained(folder)
    return folder


def train_from_adapter(cli, gsm8k_dir, tmp_path, *extra, perturb: bool = False):
    out = tmp_path / "grpo"
    args = base_args(gsm8k_dir, out, "--max_steps", "1", *extra)
    args[args.index("--model_name_or_path") + 1] = str(sft_adapter(tmp_path / "sft", perturb))
    result = cli(*args, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_grpo_starts_from_an_sft_lora_adapter(cli, gsm8k_dir, tmp_path):
    out = train_from_adapter(cli, gsm8k_dir, tmp_path)
    assert json.loads((out / "run.json").read_text())["global_step"] == 1 and (out / "model.safetensors").is_file()


def test_kl_reference_is_the_merged_sft_model_not_its_base(cli, gsm8k_dir, tmp_path):
    out = train_from_adapter(cli, gsm8k_dir, tmp_path, "--beta", "0.04", perturb=True)
    step = next(m for m in read_jsonl(out / "metrics.jsonl") if "kl" in m)
    assert step["kl"] < 1e-4  # before the first update the policy *is* the reference: KL 0
    assert (out / "reference-model" / "config.json").is_file()


def test_a_second_sigterm_stops_a_real_run_at_once_and_says_so(gsm8k_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = base_args(gsm8k_dir, out, "--max_steps", "200", "--save_steps", "1", "--sample_every", "0",
                     "--max_completion_length", "512", "--temperature", "2.0")  # long steps: about a second each
    proc = subprocess.Popen([sys.executable, "-m", "tinyr1", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = []
    try:
        deadline = time.time() + 180
        while not (out / "checkpoint-1" / "trainer_state.json").is_file() and time.time() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        for line in proc.stdout:  # the kernel merges a second signal sent before the first is handled
            lines.append(line)
            if "saving a checkpoint at the end of step" in line:
                break
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        output = "".join(lines) + proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 143 and time.time() - sent < 10, output[-2000:]
    assert "second SIGTERM: stopping now; lost: step" in output
    assert json.loads((out / "run.json").read_text())["status"] == "aborted"
    # The next command's bookkeeping: the run's marker, or the stamp a checkpoint gets before it is written (a
    # second signal may land between the Trainer writing checkpoint-1 and the marker listing it).
    from tinyr1.run_folder import ownership

    assert "checkpoint-1" in ownership.owned_names(out, ownership.read_marker(out))


def test_settings_rejected_only_by_the_trainer_are_one_line(gsm8k_dir, tmp_path):
    from tinyr1.infra.errors import TinyR1Error

    args = base_args(gsm8k_dir, tmp_path / "o", "--max_steps", "1", "--use_peft", "true", "--lora_target_modules",
                     "nope_proj")[1:]
    with pytest.raises(TinyR1Error, match="cannot set up training: Target modules nope_proj not found"):
        train.main(args)


def test_tutorial_recipes_keep_their_five_rewards_and_the_reasoned_ones_do_not():
    from tinyr1.tasks.rewards import DEFAULT_REWARDS, REASONED_REWARDS

    for name, rewards in [("qwen2.5-0.5b-instruct/grpo-gsm8k.yaml", DEFAULT_REWARDS),
                          ("smollm2-135m-instruct/grpo-gsm8k-cpu.yaml", DEFAULT_REWARDS),
                          ("qwen2.5-0.5b-instruct/grpo-gsm8k-reasoned.yaml", REASONED_REWARDS),
                          ("smollm2-135m-instruct/grpo-gsm8k-reasoned-cpu.yaml", REASONED_REWARDS),
                          ("smollm2-135m-instruct/grpo-arith-cpu.yaml", REASONED_REWARDS)]:
        script, training, _, _ = train.parse_args(["--config", str(REPO / "recipes" / name)])
        assert script.reward_funcs == rewards, name
    arith = REPO / "recipes" / "smollm2-135m-instruct" / "grpo-arith-cpu.yaml"
    script, training, _, _ = train.parse_args(["--config", str(arith)])
    assert script.dataset_options == {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}
    assert training.loss_type == "dr_grpo" and training.reward_weights == [1.0, 1.0, 1.0]
