"""``tinyr1 train``: GRPO with trl's GRPOTrainer from one YAML recipe plus ``--field value`` overrides.

    tinyr1 train                                                  # the recipe's run: Qwen2.5-0.5B-Instruct, GSM8K
    tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --max_steps 20
    accelerate launch --config_file recipes/accelerate/ddp.yaml -m tinyr1 train --config RECIPE.yaml

Field names are trl's own (``GRPOConfig``, ``ModelConfig``) plus ``TrainScriptArguments`` below. The run leaves
``metrics.jsonl``, ``samples.jsonl``, ``config.yaml``, ``run.json``, checkpoints and the final model in
``output_dir``; the collapse guard (``tinyr1.training.guards``) stops a NaN or ``!!!!`` run with exit code 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from tinyr1.infra.errors import CollapseError, TinyR1Error
from tinyr1.infra.recipe import dump_recipe
from tinyr1.run_folder.folder import RunDir
from tinyr1.training import before_after
from tinyr1.training.config import TrainScriptArguments
from tinyr1.training.data import build_dataset
from tinyr1.training.setup import AUTO_OUTPUT, claim_run_folder, parse_training_recipe


def recipe_defaults() -> dict:
    """The recipe's run, adapted to trl 1.x, plus the device policy for this machine."""
    defaults = {
        "model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "output_dir": AUTO_OUTPUT, "dtype": "auto",
        "learning_rate": 5e-6, "adam_beta1": 0.9, "adam_beta2": 0.99, "weight_decay": 0.1, "warmup_steps": 0.1,
        "lr_scheduler_type": "cosine", "max_grad_norm": 0.1, "num_generations": 16, "max_completion_length": 200,
        "num_train_epochs": 1, "logging_steps": 1, "save_steps": 100, "report_to": "none",
        # trl 1.x counts completions: 16 per micro-batch x 4 accumulation = 4 prompts x 16 completions per step.
        "per_device_train_batch_size": 16, "gradient_accumulation_steps": 4,
        # The Trainer's filter turns a NaN loss into the running mean, which is how the recipe logged loss 0.0.
        "logging_nan_inf_filter": False,
    }
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; the new name wins when set.
    from tinyr1.models.precision import trainer_device_defaults

    return {**defaults, **trainer_device_defaults()}


def parse_args(argv: list[str] | None, check_setup: bool = True):
    """The recipe, parsed and range-checked once: (script, training, model_args, values for config.yaml)."""
    from trl import GRPOConfig, ModelConfig

    from tinyr1.infra.validate import GRPO_RULES

    return parse_training_recipe([TrainScriptArguments, GRPOConfig, ModelConfig], argv, "tinyr1 train", "grpo",
                                 __doc__.split("\n")[0], recipe_defaults(), GRPO_RULES, check_setup)


def load_rewards(script: TrainScriptArguments, training) -> list:
    """The reward functions, each tried once on a sample so a wrong signature fails before the model loads."""
    from tinyr1.tasks.rewards import get_reward_funcs

    reward_funcs = get_reward_funcs(script.reward_funcs)
    from tinyr1.tasks.reasoning_gym import check_dataset_options

    check_dataset_options(script.dataset_name, script.dataset_options)
    from tinyr1.training.sampling import check_sampling_options

    check_sampling_options(script, training, reward_funcs)
    if training.reward_weights is not None and len(training.reward_weights) != len(reward_funcs):
        raise TinyR1Error(f"reward_weights: {len(training.reward_weights)} weights for {len(reward_funcs)} "
                          f"reward_funcs ({', '.join(script.reward_funcs)}); give one weight per reward")
    return reward_funcs


def claim_run(script: TrainScriptArguments, training, values: dict | None = None) -> RunDir | None:
    """The output folder (refused if it is a user's or in use), and the checkpoint to resume from, if any,
    checked against the run's ``values``; None when the run to resume has finished."""
    run, training.resume_from_checkpoint = claim_run_folder(training, "train", overwrite=script.overwrite_output_dir,
                                                            values=values,
                                                            accept_changes=script.resume_changed_settings)
    if run is not None and script.eval_before_after:  # the evaluation's data is checked now, not after hours
        from tinyr1.tasks.data import load_examples

        load_examples(script.dataset_name, script.eval_split, script.eval_limit, script.dataset_seed,
                      options=script.dataset_options)
    return run


def _model_type(resolved) -> str | None:
    from transformers import AutoConfig
    try:  # the config is a small file; for a hub id it comes from the hub cache or the network
        return AutoConfig.from_pretrained(resolved.path).model_type
    except Exception:  # load_model reports an unloadable model properly just after
        return None


def load_policy(script, training, model_args, resolved, tokenizer, run: RunDir, threads: int | None):
    """The model to train, in the precision chosen for this machine, checked for NaN before step 1; ``threads``:
    what ``configure_cpu`` set (None on a GPU)."""
    from tinyr1.infra.device import default_device
    from tinyr1.models import loading as models
    from tinyr1.models import precision
    from tinyr1.training import guards as guard

    device = default_device()
    plan = precision.choose_precision(precision.training_request(training, model_args.dtype),
                                   model_type=_model_type(resolved), force_fp16=script.force_fp16,
                                   lora=bool(model_args.use_peft))
    # A LoRA adapter from `tinyr1 sft` is merged so GRPO (with or without a new LoRA) starts from the SFT model.
    model = models.load_model(resolved, dtype=plan.dtype, merge_adapter=True,
                              trust_remote_code=bool(getattr(training, "trust_remote_code", False)))
    pad_message = models.ensure_pad_token(tokenizer, model)
    if training.beta > 0 and resolved.kind == "adapter":
        _pin_reference_model(model, tokenizer, run.path)
        run.record()
    if run.main:
        print(f"model: {model_args.model_name_or_path} ({model.num_parameters() / 1e6:.0f}M parameters) on {device}"
              + (f", {threads} CPU thread(s) ({getattr(threads, 'why', 'set by the caller')})" if threads else ""))
        print(plan.reason + (f"; {pad_message}" if pad_message else ""))
    if script.preflight:
        guard.preflight_check(model.to("cuda") if device == "cuda" else model, tokenizer, bf16=training.bf16)
    run.facts.update(device=device, dtype=str(plan.dtype).replace("torch.", ""), bf16=training.bf16,
                     precision_reason=plan.reason, num_threads=None if threads is None else int(threads),
                     threads_reason=getattr(threads, "why", None), num_gpus=torch.cuda.device_count())
    if device == "cpu":
        from tinyr1.infra.cpu_features import cpu_bf16

        run.facts["cpu"] = cpu_bf16().as_dict()
    return model


def main(argv: list[str] | None = None) -> int:
    """parse -> rewards -> the CLI's CPU tuning -> ``execute``. The Python API (``tinyr1.train``) takes the same
    steps but the tuning, which it applies only when asked."""
    from tinyr1.infra.device import configure_cpu

    script, training, model_args, values = parse_args(argv)
    reward_funcs = load_rewards(script, training)
    threads = configure_cpu(script.num_threads)
    return execute(script, training, model_args, values, reward_funcs, threads)


def execute(script, training, model_args, values: dict, reward_funcs: list, threads: int | None) -> int:
    """model path -> claim the folder -> tokenizer and data -> model -> train -> finish: 0, or 130/143 after a
    signal's clean stop (``RunDir.interrupted``); raises TinyR1Error subclasses. ``threads``: the CPU threads in
    use, for run.json (None on a GPU)."""
    from tinyr1.models import loading as models

    resolved = models.resolve_model(model_args.model_name_or_path)
    run = claim_run(script, training, values)
    if run is None:  # a finished run named for resuming: said so, nothing to train
        return 0
    tokenizer = models.load_tokenizer(resolved)
    dataset = build_dataset(script, tokenizer)
    model = load_policy(script, training, model_args, resolved, tokenizer, run, threads)
    if run.main:
        dump_recipe(run.path / "config.yaml", values)
    run.write_run_json("running", model=model_args.model_name_or_path, dataset=script.dataset_name,
                       split=script.dataset_split, world_size=training.world_size)
    if script.eval_before_after:
        before_after.evaluate_stage(script, run, model, tokenizer, "before")
    try:
        return train_and_finish(script, training, model_args, run, model, tokenizer, dataset, reward_funcs)
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """``accelerate launch`` opens a process group; closing it before exit avoids NCCL's warning (seen on a GPU)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_and_finish(script, training, model_args, run: RunDir, model, tokenizer, dataset, reward_funcs) -> int:
    """Train under the guards, then stop cleanly (collapse: exit 3; a signal: 130/143) or finish the story."""
    from trl import get_peft_config

    from tinyr1.infra.out_of_memory import oom_remedies
    from tinyr1.training import callbacks
    from tinyr1.training import guards as guard

    nan_guard = guard.NonFiniteGradGuard(script.collapse_patience)
    degenerate = guard.DegenerateGuard(script.degenerate_threshold, script.collapse_patience)
    recorder = callbacks.SampleRecorder(reward_funcs, run.path, script.sample_every, degenerate)
    stopper = callbacks.GracefulStop(on_abort=lambda: run.write_run_json("aborted"))
    budget = callbacks.TimeBudget(script.max_train_minutes)
    from tinyr1.cpu.trainer import with_generation_weights
    from tinyr1.infra.thread_governor import thread_governor
    from tinyr1.training.sampling import apply_sampling_options

    trainer_class, run.facts["generation_weights"] = with_generation_weights(
        _trainer_class(run, script.cpu_fast_path), script.cpu_generation_weights, training, model,
        bool(model_args.use_peft))
    trainer_class, extra = apply_sampling_options(script, training, trainer_class)
    governor = thread_governor(training.world_size)
    run.facts["trainer"] = trainer_class.__name__
    trainer = run.build_trainer(lambda: trainer_class(
        model=model, reward_funcs=recorder.reward_funcs, args=training, train_dataset=dataset,
        processing_class=tokenizer, peft_config=get_peft_config(model_args),
        callbacks=[nan_guard, recorder, stopper, budget, callbacks.MetricsLogger(run.path), run.callback(), *extra,
                   *([governor] if governor else [])]))
    for callback in extra:
        callback.trainer = trainer
    run.train(trainer, training.resume_from_checkpoint,
              remedies=lambda: oom_remedies(training, model_args, "max_completion_length"))
    run.facts["skipped_steps"] = nan_guard.skipped
    if governor and (changes := governor.governor.changes):
        run.facts["thread_changes"] = [list(change) for change in changes]
    if budget.reached_at is not None:
        run.facts["time_budget_reached_at_step"] = budget.reached_at
        if run.main:
            print(f"max_train_minutes={script.max_train_minutes} reached at step {budget.reached_at}", flush=True)
    collapse = nan_guard.collapsed or degenerate.collapsed or recorder.reward_guard.collapsed
    if collapse:
        run.write_run_json("collapsed")
        raise CollapseError(f"training collapsed: {collapse}")
    if stopper.received is not None:  # first Ctrl-C/SIGTERM: a checkpoint was saved at the end of the step
        return run.interrupted(trainer, stopper.received)
    run.save_final(trainer, tokenizer, script.merge_lora)
    if script.eval_before_after:
        before_after.evaluate_stage(script, run, trainer.model, tokenizer, "after")
    run.write_run_json("completed")
    if script.eval_before_after and run.main:
        before_after.finish_story(script, model_args, run)
    if run.main:
        print(f"done: {trainer.state.global_step} steps in {time.time() - run.started:.0f}s; outputs in {run.path}")
    return 0


def _trainer_class(run: RunDir, cpu_fast_path: bool | None):
    """trl's GRPOTrainer, or on CPU its fast-path subclass (same step, less work: tinyr1.cpu.trainer) where
    ``cpu_fast_path`` (None: the version gate of tinyr1.cpu.touchpoints decides; True: forced; False: off) allows it.
    The decision goes to run.json (``trainer``, ``cpu_fast_path``)."""
    from trl import GRPOTrainer

    setting = {None: "auto", True: "true", False: "false"}[cpu_fast_path]
    trainer_class, reason = GRPOTrainer, "--cpu_fast_path false"
    if run.facts["device"] != "cpu":
        reason = "not on a CPU"
    elif cpu_fast_path is not False:
        from tinyr1.cpu import touchpoints
        from tinyr1.cpu.trainer import CPUFastGRPOTrainer, ForcedCPUFastGRPOTrainer

        check = touchpoints.fast_path_check("training")
        reason = check.reason
        if check.allowed:
            trainer_class = CPUFastGRPOTrainer
            print("trainer: CPU fast path (tinyr1.cpu.trainer; --cpu_fast_path false for trl's own)", flush=True)
        elif cpu_fast_path:
            trainer_class = ForcedCPUFastGRPOTrainer
            print(touchpoints.forced_line("training"), flush=True)
        else:
            touchpoints.announce("training")  # the one line saying why trl's own trainer runs
    run.facts["trainer"] = trainer_class.__name__
    run.facts["cpu_fast_path"] = {"setting": setting, "used": trainer_class is not GRPOTrainer, "reason": reason}
    return trainer_class


def _pin_reference_model(model, tokenizer, output_dir: Path) -> None:
    """With beta > 0 trl loads the KL reference from ``model.config._name_or_path``. For a merged SFT adapter that
    names the *base* model, so the KL would pull towards the model before SFT. Save the merged starting model once
    and point the config at it, so the reference is exactly the model GRPO starts from."""
    from accelerate import PartialState

    folder = output_dir / "reference-model"
    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    model.config._name_or_path = str(folder)


if __name__ == "__main__":
    sys.exit(main())
