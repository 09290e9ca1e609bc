"""Supervised fine-tuning from a recipe: the one function ``tinyr1 sft`` and ``tinyr1.sft`` both run, around
``tinyr1.SFTTrainer`` — LoRA/QLoRA on alpaca rows, a reasoning cold start or chat messages (the recipe's
Unsloth-style part, on transformers and bitsandbytes).

    recipe = parse(argv=["--config", "recipes/smollm2-135m-instruct/sft-coldstart-cpu.yaml"])
    check_backend(recipe)
    code = run(recipe)             # 0, or 130/143 after a signal's clean stop; raises TinyR1Error

LoRA is on by default; the adapter and tokenizer are saved in ``output_dir`` (``merge_lora`` also saves a merged
model in ``output_dir/merged``). Out of memory raises ``tinyr1.OutOfMemoryError`` (exit 4) with the recipe's
remedies sized to the current settings.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

from datasets import Dataset
from trl import ModelConfig, get_peft_config

from tinyr1.infra.device import cuda_available
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.naming import setting
from tinyr1.infra.recipe import dump_recipe
from tinyr1.models import loading as models
from tinyr1.models import precision, quantization, whole_weights
from tinyr1.models.generation import generate_batch
from tinyr1.tasks.rows import build_prompt
from tinyr1.tasks.sft_rows import FORMATS, load_sft_rows
from tinyr1.training.config import SFTConfig
from tinyr1.training.fields import SFTScriptArguments
from tinyr1.training.recipes import AUTO_OUTPUT, Recipe, claim_run_folder, parse_recipe
from tinyr1.training.sft_trainer import SFTTrainer

logger = logging.getLogger(__name__)

# Why backend unsloth is refused (pip's resolution, docs/sft.md#unsloth).
UNSLOTH_DROPPED = ("no Unsloth release installs beside tinyr1's transformers and trl (the newest, 2026.10.9, needs "
                   "transformers <= 5.17, trl <= 1.15 and datasets < 5; beside them pip picks 2025.7.2, written for "
                   "transformers 4)")

DESCRIPTION = "LoRA/QLoRA supervised fine-tuning with trl's SFTTrainer from one YAML recipe plus --field overrides."


def recipe_defaults() -> dict:
    """The recipe's hyperparameters (Unsloth's notebook)."""
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
    return defaults  # use_cpu, bf16, activation checkpointing: the machine's (training.config.MachineDefaults)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def parse(argv: list[str] | None = None, *, config=None, python_values: dict | None = None,
          caller: str | None = None, check_setup: bool = True) -> Recipe:
    """The recipe, parsed and range-checked once: from ``argv`` (the CLI) or ``config`` and ``python_values`` (the
    Python API's recipe file and keyword arguments, named as ``caller`` in messages)."""
    recipe = parse_recipe([SFTScriptArguments, SFTConfig, ModelConfig], "sft", prog="tinyr1 sft",
                          description=DESCRIPTION, defaults=recipe_defaults(), argv=argv, config=config,
                          python_values=python_values, caller=caller, check_setup=check_setup)
    if recipe.script.dataset_format not in FORMATS:
        raise TinyR1Error(f"{setting('dataset_format')} {recipe.script.dataset_format!r}: use one of "
                          f"{', '.join(FORMATS)}")
    return recipe


def check_backend(recipe: Recipe) -> None:
    """One line, before anything heavy loads, where the backend or quantization cannot run here."""
    script, model_args = recipe.script, recipe.model_args
    if script.backend == "unsloth":
        raise TinyR1Error(f"{setting('backend', 'unsloth')} was dropped: {UNSLOTH_DROPPED}. Use "
                          f"{setting('backend', 'transformers')} with {setting('load_in_4bit', True)} (QLoRA, the "
                          "same recipe), or Unsloth in its own environment")
    if script.backend != "transformers":
        raise TinyR1Error(f"{setting('backend')} {script.backend!r}: use transformers (unsloth was dropped)")
    if script.merge_lora and not model_args.use_peft:
        raise TinyR1Error("merge_lora true: merges a LoRA adapter, and this run trains none, so it would do nothing; "
                          f"add {setting('use_peft', True)}, or drop merge_lora")
    quantization.check(model_args, trains_adapter=bool(model_args.use_peft))


def load_for_sft(recipe: Recipe, resolved, tokenizer):
    """Model (LoRA wrapping is left to SFTTrainer via peft_config), tokenizer, peft_config and the precision line."""
    training, model_args = recipe.args, recipe.model_args
    plan = precision.choose_precision(precision.training_request(training, model_args.dtype),
                                      lora=bool(model_args.use_peft))
    # device None: the trainer places the model (a quantized one is placed as it loads, on this process's device)
    model = models.load_model(resolved, dtype=plan.dtype, merge_adapter=True, device=None,
                              trust_remote_code=training.trust_remote_code,
                              **quantization.load_kwargs(model_args, plan))
    quantization.prepare_for_training(model)
    models.ensure_pad_token(tokenizer, model)
    tokenizer.padding_side = "right"  # training pads on the right; generation code sets left itself
    logger.info(plan.reason + quantization.describe(model_args, plan))
    return model, tokenizer, get_peft_config(model_args), plan.reason


def run(recipe: Recipe, threads: int | None = None) -> int:
    """claim the folder -> data -> model -> train -> save -> a sample answer: 0, or 130/143 after a signal's clean
    stop; raises TinyR1Error subclasses. ``threads``: the CPU threads in use (None on a GPU)."""
    script, training, model_args = recipe.script, recipe.args, recipe.model_args
    run_dir, resume = claim_run_folder(recipe, "sft")
    if run_dir is None:  # a finished run named for resuming: said so, nothing to train
        return 0
    if threads:
        logger.info(f"cpu: {threads} thread(s) ({getattr(threads, 'why', 'set by the caller')})")
    resolved = models.resolve_model(model_args.model_name_or_path)
    tokenizer = models.load_tokenizer(resolved)  # cheap: the data is rendered and checked before the model loads
    rows = load_sft_rows(script.dataset_name, script.dataset_format, script.dataset_split, script.dataset_limit,
                         script.dataset_seed, script.system_prompt, script.alpaca_as_chat, tokenizer.eos_token or "",
                         options=script.dataset_options)
    logger.info(f"data: {len(rows)} {script.dataset_format} rows from {script.dataset_name}")
    model, tokenizer, peft_config, reason = load_for_sft(recipe, resolved, tokenizer)
    # as train records them: a number measured in bf16 autocast holds on a CPU that multiplies bf16 natively
    run_dir.facts.update(precision.run_facts(next(model.parameters()).dtype, reason, threads))
    if run_dir.main:
        dump_recipe(run_dir.path / "config.yaml", recipe.values)
    run_dir.write_run_json("running", model=model_args.model_name_or_path, dataset=script.dataset_name,
                           split=script.dataset_split, dataset_format=script.dataset_format,
                           bf16=bool(training.bf16))
    trainer = run_dir.build_trainer(lambda: SFTTrainer(
        model=model, args=training, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=peft_config, run_folder=run_dir, recipe_values=recipe.values, finish=False))
    trainer.train(resume_from_checkpoint=resume)
    if trainer.stopped_by is not None:
        return 128 + trainer.stopped_by
    # an adapter trained on partitioned (ZeRO-3) or 4-bit weights is merged from its saved files, not in memory
    from_files = script.merge_lora and whole_weights.needs_merge_from_files(trainer.model)
    run_dir.save_final(trainer, tokenizer, script.merge_lora and not from_files)
    whole_weights.finish_merge(run_dir, trainer, from_files, resolved.path if from_files else None)
    if run_dir.main:
        _point_adapter_at(run_dir.path, model_args.model_name_or_path)
    run_dir.write_run_json("completed")
    logger.info(f"done: {trainer.state.global_step} steps in {time.time() - run_dir.started:.0f}s; saved to "
                f"{run_dir.path}")
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
    model.eval()
    system = script.system_prompt if script.dataset_format == "reasoning" else None
    conversation = build_prompt(script.sample_prompt, system) if system else \
        [{"role": "user", "content": script.sample_prompt}]
    if tokenizer.chat_template:
        answer = generate_batch(model, tokenizer, [conversation], max_new_tokens=SAMPLE_TOKENS, progress=False)[0].text
        logger.info(f"sample from the fine-tuned model:\nQ: {script.sample_prompt}\nA: {shown_sample(answer, system)}")


SAMPLE_TOKENS = 128


def shown_sample(answer: str, reasoning: bool) -> str:
    """The sample as printed: a line repeated to the token limit is shown once, with the count and what it means.

    >>> print(shown_sample("<reasoning>\\n" * 25 + "<reas", True))
    <reasoning>
    [that line 25 times in all, to the 128-token limit: the model has learned the tags, not yet where its answer ends]
    >>> shown_sample("Sure.\\n" + "4 - 1 = 3\\n" * 4 + "So 2.", False).split("\\n")[2:]
    ['[that line 4 times in all, to the 128-token limit: the model has not learned where its answer ends]', 'So 2.']
    """
    lines = answer.rstrip().split("\n")
    for start in range(len(lines)):
        end = start
        while end + 1 < len(lines) and lines[end + 1] == lines[start]:
            end += 1
        if end - start + 1 >= 4 and lines[start].strip():
            rest = lines[end + 1:]
            if len(rest) == 1 and lines[start].startswith(rest[0]):  # the repeat the token limit cut
                rest = []
            learned = "the model has learned the tags, not yet" if reasoning else "the model has not learned"
            note = (f"[that line {end - start + 1} times in all, to the {SAMPLE_TOKENS}-token limit: {learned} where "
                    "its answer ends]")
            return "\n".join(lines[:start + 1] + [note] + rest)
    return answer
