"""GRPO from a recipe: the one function ``tinyr1 train`` and ``tinyr1.train`` both run, around ``tinyr1.GRPOTrainer``.

    recipe = parse(argv=["--config", "recipes/smollm2-135m-instruct/grpo-arith-cpu.yaml", "--max_steps", "20"])
    code = run(recipe, reward_funcs(recipe))        # 0, or 130/143 after a signal's clean stop; raises TinyR1Error

``run`` claims the output folder before anything heavy loads, builds the prompts (from the recipe's source, or rows
given in Python), loads the model in the precision chosen for this machine (or takes one given in Python), then
trains with ``tinyr1.GRPOTrainer`` and finishes the run's story: the final model, the before/after evaluation, the
comparison and the report (``tinyr1.training.before_after``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from accelerate import PartialState
from transformers import AutoConfig
from trl import ModelConfig, get_peft_config

from tinyr1.infra.device import default_device
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json
from tinyr1.infra.naming import setting
from tinyr1.infra.recipe import dump_recipe
from tinyr1.infra.validate import GRPO_RULES
from tinyr1.models import loading as models
from tinyr1.models import precision, quantization, whole_weights
from tinyr1.run_folder.folder import RunDir
from tinyr1.tasks.data import load_examples
from tinyr1.tasks.reasoning_gym import check_dataset_options
from tinyr1.tasks.reward_lookup import check_reward_funcs, get_reward_funcs
from tinyr1.training import before_after, live_view
from tinyr1.training.config import GRPOConfig
from tinyr1.training.data import build_dataset, check_levels, source_rows
from tinyr1.training.fields import GRPOScriptArguments
from tinyr1.training.grpo_trainer import GRPOTrainer
from tinyr1.training.recipes import AUTO_OUTPUT, Recipe, check_model_exists, claim_run_folder, parse_recipe
from tinyr1.training.sampling import check_disabled_options, check_sampling_options

logger = logging.getLogger(__name__)

DESCRIPTION = "GRPO with trl's GRPOTrainer from one YAML recipe plus --field overrides."


def recipe_defaults() -> dict:
    """The recipe's run, adapted to trl 1.x."""
    defaults = {
        "model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "output_dir": AUTO_OUTPUT, "dtype": "auto",
        "learning_rate": 5e-6, "adam_beta1": 0.9, "adam_beta2": 0.99, "weight_decay": 0.1, "warmup_steps": 0.1,
        "lr_scheduler_type": "cosine", "max_grad_norm": 0.1, "num_generations": 16, "max_completion_length": 200,
        # trl 1.16's KL defaults, stated (docs/training.md): no KL term; were it on, the bias-corrected gradient.
        "beta": 0.0, "use_bias_correction_kl": True,
        "num_train_epochs": 1, "logging_steps": 1, "save_steps": 100, "report_to": "none",
        # trl 1.x counts completions: 16 per micro-batch x 4 accumulation = 4 prompts x 16 completions per step.
        "per_device_train_batch_size": 16, "gradient_accumulation_steps": 4,
        # The Trainer's filter turns a NaN loss into the running mean, which is how the recipe logged loss 0.0.
        "logging_nan_inf_filter": False,
    }
    return defaults  # use_cpu, bf16, activation checkpointing: the machine's (training.config.MachineDefaults)


def parse(argv: list[str] | None = None, *, config=None, python_values: dict | None = None,
          caller: str | None = None, check_setup: bool = True) -> Recipe:
    """The recipe, parsed and range-checked once: from ``argv`` (the CLI) or ``config`` and ``python_values`` (the
    Python API's recipe file and keyword arguments, named as ``caller`` in messages)."""
    return parse_recipe([GRPOScriptArguments, GRPOConfig, ModelConfig], "grpo", prog="tinyr1 train",
                        description=DESCRIPTION, defaults=recipe_defaults(), rules=GRPO_RULES, argv=argv,
                        config=config, python_values=python_values, caller=caller, check_setup=check_setup,
                        paired={"reward_funcs": "reward_weights"})


def reward_funcs(recipe: Recipe, given: list | None = None, argument: str | None = None) -> list:
    """The reward functions (``given``: functions and names from Python, else the recipe's names), each checked
    before the model loads, and the data options checked with them; ``argument`` names them in messages."""
    script, args = recipe.script, recipe.args
    argument = argument or setting("reward_funcs")
    funcs = check_reward_funcs(given, argument) if given is not None else get_reward_funcs(script.reward_funcs)
    check_dataset_options(script.dataset_name, script.dataset_options)
    check_levels(script, args.curriculum)
    check_sampling_options(args, args.world_size, [getattr(f, "__name__", str(f)) for f in funcs])
    if args.curriculum:  # the level options are read only by a difficulty schedule
        check_disabled_options(_LevelSwitch(script.curriculum_levels, args),
                               {"curriculum_levels": ("curriculum_level_threshold", "curriculum_level_window")},
                               f"give a difficulty schedule with {setting('curriculum_levels')} (one set of "
                               "generator options a level)")
    if script.merge_lora and not recipe.model_args.use_peft:
        raise TinyR1Error("merge_lora true: merges a LoRA adapter, and this run trains none, so it would do nothing; "
                          f"add {setting('use_peft', True)}, or drop merge_lora")
    quantization.check(recipe.model_args, trains_adapter=bool(recipe.model_args.use_peft))
    if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
        names = ", ".join(getattr(f, "__name__", str(f)) for f in funcs)
        raise TinyR1Error(f"reward_weights: {len(args.reward_weights)} weights for {len(funcs)} reward_funcs "
                          f"({names}); give one weight per reward")
    return funcs


def check_lengths(recipe: Recipe, config) -> None:
    """Prompt and completion within the model's context (its config, where it is known before loading)."""
    script, args, name = recipe.script, recipe.args, recipe.model_args.model_name_or_path
    models.check_context(config, name, [(setting("max_completion_length"), args.max_completion_length),
                                        (setting("max_prompt_tokens"), script.max_prompt_tokens)])
    if script.eval_before_after:
        models.check_context(config, name, [(setting("eval_max_new_tokens"), script.eval_max_new_tokens)])


class _LevelSwitch:
    """The curriculum's level options beside the switch that turns them on: a schedule in ``curriculum_levels``."""

    def __init__(self, levels, args):
        self.curriculum_levels = levels
        self.curriculum_level_threshold = args.curriculum_level_threshold
        self.curriculum_level_window = args.curriculum_level_window


def run(recipe: Recipe, funcs: list, threads: int | None = None, *, model=None, tokenizer=None,
        rows: list[dict] | None = None) -> int:
    """Claim the folder -> prompts -> model -> train -> finish: 0, or 130/143 after a signal's clean stop; raises
    TinyR1Error subclasses. ``threads``: the CPU threads in use, for run.json (None on a GPU). ``model`` (with its
    ``tokenizer``) and ``rows`` (prompt rows) replace the recipe's model and data source where given."""
    script, args, model_args = recipe.script, recipe.args, recipe.model_args
    if model is not None and quantization.wanted(model_args):
        raise TinyR1Error("load_in_4bit/load_in_8bit: a model given in Python trains as it was loaded; load it "
                          "quantized yourself (quantization_config=BitsAndBytesConfig(...)) or give "
                          "model_name_or_path")
    if model is None:
        check_model_exists(recipe)
    resolved = models.resolve_model(model_args.model_name_or_path) if model is None else None
    check_lengths(recipe, model.config if model is not None else models.local_config(model_args.model_name_or_path))
    source = "the rows given" if rows is not None else None
    rows = rows if rows is not None else source_rows(script, args.curriculum)  # a bad source: before the claim
    run_dir, resume = claim_run_folder(recipe, "train")
    if run_dir is None:  # a finished run named for resuming: said so, nothing to train
        return 0
    args.resume_from_checkpoint = resume
    if script.eval_before_after and run_dir.main:  # the evaluation's data is checked now, not after hours
        load_examples(script.dataset_name, script.eval_split, script.eval_limit, script.dataset_seed,
                      options=script.dataset_options)
    tokenizer = tokenizer if tokenizer is not None else models.load_tokenizer(resolved)
    dataset = build_dataset(script, tokenizer, rows, curriculum=args.curriculum, source=source)
    if model is None:
        model = load_policy(recipe, resolved, tokenizer, run_dir, threads)
    else:
        describe_given_model(model, tokenizer, run_dir, threads)
    if run_dir.main:
        dump_recipe(run_dir.path / "config.yaml", recipe.values)
    run_dir.write_run_json("running", model=model_args.model_name_or_path, dataset=script.dataset_name,
                           split=script.dataset_split, world_size=args.world_size, bf16=bool(args.bf16))
    live_view.default_run_name(args)
    try:
        trainer = run_dir.build_trainer(lambda: GRPOTrainer(
            model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=get_peft_config(model_args), run_folder=run_dir, recipe_values=recipe.values, finish=False))
        live = live_view.LiveView(trainer)
        trainer.preflight()  # before the evaluation: a NaN model stops in seconds
        if script.eval_before_after:
            before_after.evaluate_stage(script, run_dir, trainer, tokenizer, "before", model_args.model_name_or_path)
            live.before(read_json(run_dir.path / "eval" / "before" / "metrics.json"))
        trainer.train(resume_from_checkpoint=resume)
        if trainer.stopped_by is not None:
            return 128 + trainer.stopped_by
        save_final(run_dir, trainer, tokenizer, script.merge_lora, resolved)
        if script.eval_before_after:
            before_after.evaluate_stage(script, run_dir, trainer, tokenizer, "after", str(run_dir.path))
            live.after(read_json(run_dir.path / "eval" / "after" / "metrics.json"))
        run_dir.write_run_json("completed")
        if script.eval_before_after and run_dir.main:
            before_after.finish_story(script, model_args, run_dir)
        if run_dir.main:
            logger.info(f"done: {trainer.state.global_step} steps in {time.time() - run_dir.started:.0f}s; outputs in "
                        f"{run_dir.path}")
        return 0
    finally:
        _close_process_group()


def save_final(run_dir: RunDir, trainer, tokenizer, merge_lora: bool, resolved) -> None:
    """The final model or adapter; a merge of an adapter trained on partitioned (ZeRO-3) or 4-bit weights is made
    from the saved adapter on the main process (``tinyr1.models.whole_weights``), not in memory."""
    from_files = merge_lora and resolved is not None and whole_weights.needs_merge_from_files(trainer.model)
    run_dir.save_final(trainer, tokenizer, merge_lora and not from_files)
    whole_weights.finish_merge(run_dir, trainer, from_files, resolved.path if from_files else None)


def load_policy(recipe: Recipe, resolved, tokenizer, run_dir: RunDir, threads: int | None):
    """The model to train, in the precision chosen for this machine; a LoRA adapter from ``tinyr1 sft`` merged so
    GRPO (with or without a new LoRA) starts from the SFT model."""
    script, args, model_args = recipe.script, recipe.args, recipe.model_args
    plan = precision.choose_precision(precision.training_request(args, model_args.dtype),
                                      model_type=_model_type(resolved), force_fp16=script.force_fp16,
                                      lora=bool(model_args.use_peft))
    # device None: the trainer places the model (a quantized one is placed as it loads, on this process's device)
    model = models.load_model(resolved, dtype=plan.dtype, merge_adapter=True, device=None,
                              trust_remote_code=bool(getattr(args, "trust_remote_code", False)),
                              **quantization.load_kwargs(model_args, plan))
    quantization.prepare_for_training(model)
    pad_message = models.ensure_pad_token(tokenizer, model)
    if args.beta > 0 and resolved.kind == "adapter":
        _pin_reference_model(model, tokenizer, run_dir.path)
        run_dir.record()
    describe(model, model_args.model_name_or_path, run_dir, threads,
             plan.reason + quantization.describe(model_args, plan) + (f"; {pad_message}" if pad_message else ""),
             plan.dtype)
    return model


def describe_given_model(model, tokenizer, run_dir: RunDir, threads: int | None) -> None:
    """A model loaded by the caller trains as it is, in its own dtype; its tokenizer gets a distinct pad token."""
    pad_message = models.ensure_pad_token(tokenizer, model)
    dtype = next(model.parameters()).dtype
    name = getattr(model.config, "_name_or_path", None) or type(model).__name__
    describe(model, name, run_dir, threads, f"precision: {str(dtype).replace('torch.', '')} (the model as given)"
             + (f"; {pad_message}" if pad_message else ""), dtype)


def describe(model, name: str, run_dir: RunDir, threads: int | None, reason: str, dtype) -> None:
    """The run header (model, device, threads, precision) and run.json's facts about them."""
    device = default_device()
    if run_dir.main:
        cpu = f", {threads} CPU thread(s) ({getattr(threads, 'why', 'set by the caller')})" if threads else ""
        logger.info(f"model: {name} ({model.num_parameters() / 1e6:.0f}M parameters) on {device}{cpu}")
        logger.info(reason)
    run_dir.facts.update(precision.run_facts(dtype, reason, threads))


def _model_type(resolved) -> str | None:
    try:  # the config is a small file; for a hub id it comes from the hub cache or the network
        return AutoConfig.from_pretrained(resolved.path).model_type
    except Exception:  # load_model reports an unloadable model properly just after
        return None


def _close_process_group() -> None:
    """``accelerate launch`` opens a process group; closing it before exit avoids NCCL's warning (seen on a GPU)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _pin_reference_model(model, tokenizer, output_dir: Path) -> None:
    """With beta > 0 trl loads the KL reference from ``model.config._name_or_path``. For a merged SFT adapter that
    names the *base* model, so the KL would pull towards the model before SFT. Save the merged starting model once
    and point the config at it, so the reference is exactly the model GRPO starts from."""
    folder = output_dir / "reference-model"
    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    model.config._name_or_path = str(folder)
