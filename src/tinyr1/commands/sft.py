"""``tinyr1 sft``: LoRA/QLoRA supervised fine-tuning with trl's SFTTrainer (the recipe's Unsloth-style part).

    tinyr1 sft --config recipes/deepseek-r1-distill-llama-8b/sft-alpaca.yaml            # GPU, 4-bit, alpaca
    tinyr1 sft --config recipes/smollm2-135m-instruct/sft-coldstart-cpu.yaml            # CPU, GRPO cold start
    tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --model_name_or_path <sft output_dir>

Field names are trl's (``SFTConfig``, ``ModelConfig``) plus ``SFTScriptArguments``. LoRA is on by default; the
adapter and tokenizer are saved in ``output_dir`` (``--merge_lora true`` also saves a merged model in
``output_dir/merged``). Out of memory exits 4 with the recipe's four remedies sized to the current settings.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from tinyr1.infra.device import cuda_available
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.out_of_memory import oom_remedies
from tinyr1.infra.recipe import dump_recipe
from tinyr1.tasks.sft_rows import FORMATS
from tinyr1.training.config import SFTScriptArguments
from tinyr1.training.setup import AUTO_OUTPUT, claim_run_folder, parse_training_recipe


def recipe_defaults() -> dict:
    """The recipe's hyperparameters (Unsloth's notebook), plus the device policy for this machine."""
    gpu = cuda_available()
    defaults = {
        "model_name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "output_dir": AUTO_OUTPUT, "dtype": "auto",
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "learning_rate": 2e-5,
        "num_train_epochs": 3, "lr_scheduler_type": "linear", "weight_decay": 0.01, "seed": 3407,
        "save_steps": 500, "logging_steps": 1, "warmup_steps": 5, "packing": True, "max_length": 2048,
        "report_to": "none", "use_peft": True, "lora_r": 16, "lora_alpha": 16, "lora_dropout": 0.0,
        "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        # 8-bit AdamW needs bitsandbytes on a GPU; plain AdamW elsewhere.
        "optim": "adamw_8bit" if gpu and _has("bitsandbytes") else "adamw_torch",
    }
    from tinyr1.models.precision import trainer_device_defaults

    return {**defaults, **trainer_device_defaults()}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def check_backend(script, model_args) -> None:
    if script.backend not in ("transformers", "unsloth"):
        raise TinyR1Error(f"--backend {script.backend!r}: use transformers or unsloth")
    if script.backend == "unsloth" and not (_has("unsloth") and cuda_available()):
        raise TinyR1Error("--backend unsloth needs both the unsloth package (pip install unsloth) and a CUDA GPU; "
                          f"here: unsloth {'installed' if _has('unsloth') else 'missing'}, GPU "
                          f"{'present' if cuda_available() else 'absent'}. Use --backend transformers")
    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    if quantized and not (cuda_available() and _has("bitsandbytes")):
        raise TinyR1Error("--load_in_4bit/--load_in_8bit need a CUDA GPU and bitsandbytes (pip install "
                          "bitsandbytes); on CPU train the LoRA adapter without quantization")


def load_for_sft(script, training, model_args, resolved, tokenizer):
    """Model (LoRA wrapping is left to SFTTrainer via peft_config) and tokenizer, per backend."""
    from tinyr1.models import loading as models
    from tinyr1.models import precision

    if script.backend == "unsloth":  # unverified here: follows Unsloth's documented FastLanguageModel API
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(model_args.model_name_or_path,
                                                             max_seq_length=training.max_length,
                                                             load_in_4bit=model_args.load_in_4bit)
        model = FastLanguageModel.get_peft_model(model, r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
                                                 lora_dropout=model_args.lora_dropout,
                                                 target_modules=model_args.lora_target_modules, bias="none",
                                                 use_gradient_checkpointing="unsloth", random_state=training.seed)
        return model, tokenizer, None
    from trl import get_peft_config, get_quantization_config

    quantization = get_quantization_config(model_args)
    # k-bit weights must be placed on the GPU at load time (bitsandbytes quantizes as they arrive).
    extra = {"quantization_config": quantization,
             "device_map": {"": torch.cuda.current_device()}} if quantization else {}
    plan = precision.choose_precision(precision.training_request(training, model_args.dtype),
                                   lora=bool(model_args.use_peft))
    model = models.load_model(resolved, dtype=plan.dtype, merge_adapter=True,
                              trust_remote_code=training.trust_remote_code, **extra)
    models.ensure_pad_token(tokenizer, model)
    tokenizer.padding_side = "right"  # training pads on the right; generation code sets left itself
    print(plan.reason)
    return model, tokenizer, get_peft_config(model_args)


def parse_args(argv: list[str] | None, check_setup: bool = True):
    """The recipe, parsed and range-checked once: (script, training, model_args, values for config.yaml)."""
    from trl import ModelConfig, SFTConfig

    script, training, model_args, values = parse_training_recipe(
        [SFTScriptArguments, SFTConfig, ModelConfig], argv, "tinyr1 sft", "sft", __doc__.split("\n")[0],
        recipe_defaults(), check_setup=check_setup)
    if script.dataset_format not in FORMATS:
        raise TinyR1Error(f"--dataset_format {script.dataset_format!r}: use one of {', '.join(FORMATS)}")
    return script, training, model_args, values


def main(argv: list[str] | None = None) -> int:
    """parse -> check backend -> the CLI's CPU tuning -> ``execute``. The Python API (``tinyr1.sft``) takes the same
    steps but the tuning, which it applies only when asked."""
    from tinyr1.infra.device import configure_cpu

    script, training, model_args, values = parse_args(argv)
    check_backend(script, model_args)
    threads = configure_cpu(script.num_threads)
    if threads:
        print(f"cpu: {threads} thread(s) ({threads.why})")
    return execute(script, training, model_args, values)


def execute(script, training, model_args, values: dict) -> int:
    """claim the folder -> model -> data -> train -> save -> a sample answer: 0, or 130/143 after a signal's clean
    stop (``RunDir.interrupted``); raises TinyR1Error subclasses."""
    from datasets import Dataset
    from trl import SFTTrainer

    from tinyr1.infra.thread_governor import thread_governor
    from tinyr1.models import loading as models
    from tinyr1.tasks.sft_rows import load_sft_rows
    from tinyr1.training.callbacks import GracefulStop, MetricsLogger

    run, resume = claim_run_folder(training, "sft", overwrite=script.overwrite_output_dir, values=values,
                                   accept_changes=script.resume_changed_settings)
    if run is None:  # a finished run named for resuming: said so, nothing to train
        return 0
    resolved = models.resolve_model(model_args.model_name_or_path)
    tokenizer = models.load_tokenizer(resolved)  # cheap: the data is rendered and checked before the model loads
    rows = load_sft_rows(script.dataset_name, script.dataset_format, script.dataset_split, script.dataset_limit,
                         script.dataset_seed, script.system_prompt, script.alpaca_as_chat, tokenizer.eos_token or "",
                         options=script.dataset_options)
    print(f"data: {len(rows)} {script.dataset_format} rows from {script.dataset_name}")
    model, tokenizer, peft_config = load_for_sft(script, training, model_args, resolved, tokenizer)
    if run.main:
        dump_recipe(run.path / "config.yaml", values)
    run.write_run_json("running", model=model_args.model_name_or_path, dataset=script.dataset_name,
                       split=script.dataset_split, dataset_format=script.dataset_format)
    stopper = GracefulStop(on_abort=lambda: run.write_run_json("aborted"))
    governor = thread_governor(training.world_size)
    trainer = run.build_trainer(lambda: SFTTrainer(
        model=model, args=training, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=peft_config, callbacks=[MetricsLogger(run.path), stopper, run.callback(),
                                            *([governor] if governor else [])]))
    run.train(trainer, resume, remedies=lambda: oom_remedies(training, model_args))
    if stopper.received is not None:  # first Ctrl-C/SIGTERM: a checkpoint was saved at the end of the step
        return run.interrupted(trainer, stopper.received)
    run.save_final(trainer, tokenizer, script.merge_lora)
    if run.main:
        _point_adapter_at(run.path, model_args.model_name_or_path)
    run.write_run_json("completed")
    print(f"done: {trainer.state.global_step} steps in {time.time() - run.started:.0f}s; saved to {run.path}")
    _sample(trainer.model, tokenizer, script)
    return 0


def _point_adapter_at(output_dir: Path, base: str) -> None:
    """Record the base model as the user named it (e.g. the offline alias), so the adapter resolves anywhere."""
    config = output_dir / "adapter_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        data["base_model_name_or_path"] = base
        write_text(config, json.dumps(data, indent=2))  # whole or not at all


def _sample(model, tokenizer, script) -> None:
    """The recipe ended with a generation from the fine-tuned model; so does this."""
    from tinyr1.models.generation import generate_batch
    from tinyr1.tasks.data import build_prompt

    model.eval()
    system = script.system_prompt if script.dataset_format == "reasoning" else None
    conversation = build_prompt(script.sample_prompt, system) if system else \
        [{"role": "user", "content": script.sample_prompt}]
    if tokenizer.chat_template:
        answer = generate_batch(model, tokenizer, [conversation], max_new_tokens=128, progress=False)[0].text
        print(f"sample from the fine-tuned model:\nQ: {script.sample_prompt}\nA: {answer}")


if __name__ == "__main__":
    sys.exit(main())
