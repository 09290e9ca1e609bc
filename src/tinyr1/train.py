"""``tinyr1 train``: GRPO with trl's GRPOTrainer from one YAML recipe plus ``--field value`` overrides.

    tinyr1 train                                                  # the recipe's run: Qwen2.5-0.5B-Instruct, GSM8K
    tinyr1 train --config recipes/smollm2-135m-instruct/grpo-gsm8k-cpu.yaml --max_steps 20
    accelerate launch --config_file recipes/accelerate/ddp.yaml -m tinyr1 train --config RECIPE.yaml

Field names are trl's own (``GRPOConfig``, ``ModelConfig``) plus ``TrainScriptArguments`` below. The run leaves
``metrics.jsonl``, ``samples.jsonl``, ``config.yaml``, ``run.json``, checkpoints and the final model in
``output_dir``; the collapse guard (``tinyr1.guard``) stops a NaN or ``!!!!`` run with exit code 3.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tinyr1 import __version__
from tinyr1.answers import SYSTEM_PROMPT
from tinyr1.config import dump_recipe, parse_recipe, recipe_values
from tinyr1.errors import CollapseError, TinyR1Error
from tinyr1.rewards import DEFAULT_REWARDS

AUTO_OUTPUT = "outputs/auto"


@dataclass
class TrainScriptArguments:
    """tinyr1's own fields; everything else is trl's GRPOConfig and ModelConfig."""

    dataset_name: str = field(default="openai/gsm8k", metadata={"help": "hub id, local folder/file, "
                              "modelscope/gsm8k or reasoning-gym:<name> (see tinyr1 prepare --help)"})
    dataset_split: str = field(default="train", metadata={"help": "split to train on"})
    dataset_limit: int | None = field(default=None, metadata={"help": "use the first N rows (reasoning-gym: "
                                      "generate N, default 1000)"})
    dataset_seed: int = field(default=0, metadata={"help": "seed for reasoning-gym generation"})
    dataset_options: list[str] | None = field(default=None, metadata={"help": "reasoning-gym generator options as "
                                              "key=value (a mapping in YAML), e.g. min_terms=2 max_terms=3"})
    skip_bad_rows: bool = field(default=False, metadata={"help": "skip rows without '#### <gold>' instead of "
                                "stopping"})
    reward_funcs: list[str] = field(default_factory=lambda: list(DEFAULT_REWARDS), metadata={
        "help": "reward registry names or package.module:function, in order (weights: --reward_weights)"})
    system_prompt: str = field(default=SYSTEM_PROMPT, metadata={"help": "system prompt (default: the recipe's)"})
    max_prompt_tokens: int = field(default=256, metadata={"help": "drop prompts longer than this many tokens "
                                   "(trl 1.x no longer truncates prompts); the count dropped is printed"})
    sample_every: int = field(default=5, metadata={"help": "print a sample (question, answer, response, "
                              "extracted) every N steps and append it to samples.jsonl; 0 turns it off"})
    eval_before_after: bool = field(default=False, metadata={"help": "evaluate on the test split before and "
                                    "after training, compare, and write report.md"})
    eval_limit: int = field(default=200, metadata={"help": "questions for the before/after evaluation"})
    eval_split: str = field(default="test", metadata={"help": "split for the before/after evaluation"})
    eval_max_new_tokens: int = field(default=256, metadata={"help": "generation length for evaluation"})
    preflight: bool = field(default=True, metadata={"help": "generate a few tokens before training and stop "
                            "(exit 3) if logits are NaN/inf"})
    collapse_patience: int = field(default=3, metadata={"help": "consecutive non-finite or degenerate steps "
                                   "that stop the run (exit 3)"})
    degenerate_threshold: float = field(default=0.8, metadata={"help": "fraction of a step's completions that "
                                        "must be one repeated character/token to count as degenerate; 0 = off"})
    force_fp16: bool = field(default=False, metadata={"help": "allow fp16 with Qwen2-family models (it overflows)"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start afresh in an output_dir that "
                                       "already holds a run (its logs and checkpoints are deleted)"})
    merge_lora: bool = field(default=False, metadata={"help": "with --use_peft, also save a merged model in "
                             "output_dir/merged"})
    max_train_minutes: float | None = field(default=None, metadata={"help": "stop training after this many "
                                            "minutes (checkpoint saved), then finish normally: final model, "
                                            "after-evaluation, report"})
    num_threads: int | None = field(default=None, metadata={"help": "CPU threads (default: $OMP_NUM_THREADS or 1)"})


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
    # On CPU checkpointing only trades speed for memory that a small model does not need, and bf16 autocast over
    # fp32 weights was the fastest measured setting per GRPO step (benchmarks/grpo_step.py, docs/benchmarks.md).
    if not torch.cuda.is_available():
        defaults.update(use_cpu=True, bf16=True, activation_checkpointing=False)
    else:
        defaults.update(activation_checkpointing=True, bf16=torch.cuda.is_bf16_supported())
    return defaults


def parse_args(argv: list[str] | None):
    from trl import GRPOConfig, ModelConfig

    types = [TrainScriptArguments, GRPOConfig, ModelConfig]
    script, training, model_args = parse_recipe(types, argv, prog="tinyr1 train", description=__doc__.split("\n")[0],
                                                defaults=recipe_defaults())
    if training.output_dir == AUTO_OUTPUT:
        short = Path(model_args.model_name_or_path.rstrip("/")).name.lower()
        training.output_dir = f"outputs/{short}-grpo-{time.strftime('%Y%m%d-%H%M%S')}"
    values = recipe_values(types, argv, defaults=recipe_defaults())
    values["output_dir"] = training.output_dir
    return script, training, model_args, values


def build_dataset(script: TrainScriptArguments, tokenizer):
    from datasets import Dataset

    from tinyr1.data import load_prompt_rows

    rows = load_prompt_rows(script.dataset_name, script.dataset_split, script.dataset_limit, script.dataset_seed,
                            script.system_prompt, script.skip_bad_rows, script.dataset_options)
    kept = [{"prompt": r["prompt"], "answer": r["answer"]} for r in rows
            if len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True))
            <= script.max_prompt_tokens]
    dropped = len(rows) - len(kept)
    print(f"data: {len(kept)} prompts from {script.dataset_name} ({script.dataset_split})"
          + (f"; dropped {dropped} longer than max_prompt_tokens={script.max_prompt_tokens}" if dropped else ""))
    if not kept:
        raise TinyR1Error(f"max_prompt_tokens={script.max_prompt_tokens}: every prompt is longer; raise it")
    return Dataset.from_list(kept)


def resolve_resume(training) -> None:
    from tinyr1.models import latest_checkpoint

    value = training.resume_from_checkpoint
    if value in (None, "", "false", "False"):
        training.resume_from_checkpoint = None
    elif value in ("latest", "true", "True"):
        found = latest_checkpoint(Path(training.output_dir))
        if found is None:
            raise TinyR1Error(f"--resume_from_checkpoint latest: no complete checkpoint-N in {training.output_dir}")
        training.resume_from_checkpoint = str(found)
    elif not (Path(value) / "trainer_state.json").is_file():
        raise TinyR1Error(f"--resume_from_checkpoint {value}: not a complete checkpoint (no trainer_state.json)")


def _model_type(name_or_path: str) -> str | None:
    from transformers import AutoConfig

    from tinyr1.models import resolve_model

    try:  # the config is a small file; for a hub id it comes from the hub cache or the network
        return AutoConfig.from_pretrained(resolve_model(name_or_path).path).model_type
    except Exception:  # unreachable here: load_model reports it properly just after
        return None


def write_run_json(training, model_args, script, status: str, started: float, extra: dict) -> None:
    if training.process_index != 0:
        return
    import transformers
    import trl

    info = {"model": model_args.model_name_or_path, "dataset": script.dataset_name, "split": script.dataset_split,
            "status": status, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_seconds": round(time.time() - started, 1), "world_size": training.world_size,
            "versions": {"tinyr1": __version__, "torch": torch.__version__, "trl": trl.__version__,
                         "transformers": transformers.__version__, "python": platform.python_version()},
            **extra}
    (Path(training.output_dir) / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from trl import GRPOTrainer, get_peft_config

    from tinyr1 import callbacks, guard, models
    from tinyr1.rewards import get_reward_funcs

    script, training, model_args, values = parse_args(argv)
    started = time.time()
    reward_funcs = get_reward_funcs(script.reward_funcs)
    from tinyr1.data import check_dataset_options

    check_dataset_options(script.dataset_name, script.dataset_options)
    if training.reward_weights is not None and len(training.reward_weights) != len(reward_funcs):
        raise TinyR1Error(f"reward_weights: {len(training.reward_weights)} weights for {len(reward_funcs)} "
                          f"reward_funcs ({', '.join(script.reward_funcs)}); give one weight per reward")
    output_dir = Path(training.output_dir)
    _claim_output_dir(output_dir, resuming=training.resume_from_checkpoint not in (None, "", "false", "False"),
                      overwrite=script.overwrite_output_dir)
    resolve_resume(training)

    tokenizer = models.load_tokenizer(model_args.model_name_or_path)
    device = models.default_device()
    threads = models.configure_cpu_threads(script.num_threads) if device == "cpu" else None
    requested = "fp16" if training.fp16 else ("bf16" if training.bf16 else model_args.dtype)
    plan = models.choose_precision(requested, model_type=_model_type(model_args.model_name_or_path),
                                   force_fp16=script.force_fp16)
    # A LoRA adapter from `tinyr1 sft` is merged so GRPO (with or without a new LoRA) starts from the SFT model.
    model = models.load_model(model_args.model_name_or_path, dtype=plan.dtype, merge_adapter=True,
                              trust_remote_code=bool(getattr(training, "trust_remote_code", False)))
    pad_message = models.ensure_pad_token(tokenizer, model)
    if training.beta > 0 and models.resolve_model(model_args.model_name_or_path).kind == "adapter":
        _pin_reference_model(model, tokenizer, output_dir)
    if training.process_index == 0:
        print(f"model: {model_args.model_name_or_path} ({model.num_parameters() / 1e6:.0f}M parameters) on {device}"
              + (f", {threads} CPU thread(s)" if threads else ""))
        print(plan.reason + (f"; {pad_message}" if pad_message else ""))
    if script.preflight:
        guard.preflight_check(model.to("cuda") if device == "cuda" else model, tokenizer, bf16=training.bf16)

    dataset = build_dataset(script, tokenizer)
    if training.process_index == 0:
        dump_recipe(output_dir / "config.yaml", values)
    nan_guard = guard.NonFiniteGradGuard(script.collapse_patience)
    degenerate = guard.DegenerateGuard(script.degenerate_threshold, script.collapse_patience)
    recorder = callbacks.SampleRecorder(reward_funcs, output_dir, script.sample_every, degenerate)
    stopper = callbacks.GracefulStop()
    budget = callbacks.TimeBudget(script.max_train_minutes)
    extra = {"device": device, "dtype": str(plan.dtype).replace("torch.", ""), "bf16": training.bf16,
             "precision_reason": plan.reason, "num_threads": threads, "num_gpus": torch.cuda.device_count()}
    write_run_json(training, model_args, script, "running", started, extra)

    if script.eval_before_after:
        _evaluate_stage(script, training, model, tokenizer, "before")
    trainer = GRPOTrainer(model=model, reward_funcs=recorder.reward_funcs, args=training, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=get_peft_config(model_args),
                          callbacks=[nan_guard, recorder, stopper, budget, callbacks.MetricsLogger(output_dir)])
    try:
        trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    except BaseException:
        extra["global_step"] = trainer.state.global_step
        write_run_json(training, model_args, script, "failed", started, extra)
        raise
    extra["global_step"] = trainer.state.global_step
    extra["skipped_steps"] = nan_guard.skipped
    if budget.reached_at is not None:
        extra["time_budget_reached_at_step"] = budget.reached_at
        if training.process_index == 0:
            print(f"max_train_minutes={script.max_train_minutes} reached at step {budget.reached_at}", flush=True)
    collapse = nan_guard.collapsed or degenerate.collapsed
    if collapse:
        write_run_json(training, model_args, script, "collapsed", started, extra)
        raise CollapseError(f"training collapsed: {collapse}")
    if stopper.received is not None:
        write_run_json(training, model_args, script, "interrupted", started, extra)
        print(f"stopped at step {trainer.state.global_step}; checkpoint saved in {output_dir}\nresume with: "
              f"tinyr1 train --config {output_dir / 'config.yaml'} --resume_from_checkpoint latest", flush=True)
        return 128 + stopper.received  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    _save_final(trainer, tokenizer, output_dir, script.merge_lora)
    if script.eval_before_after:
        _evaluate_stage(script, training, trainer.model, tokenizer, "after")
    write_run_json(training, model_args, script, "completed", started, extra)
    if script.eval_before_after:
        _finish_story(script, training, model_args, output_dir)
    if training.process_index == 0:
        print(f"done: {trainer.state.global_step} steps in {time.time() - started:.0f}s; outputs in {output_dir}")
    return 0


def _claim_output_dir(output_dir: Path, resuming: bool, overwrite: bool) -> None:
    """A fresh run must not append its metrics to another run's files, nor resume from its checkpoints."""
    if (output_dir / "run.json").is_file() and not resuming:
        if not overwrite:
            raise TinyR1Error(f"output_dir {output_dir} already holds a run; continue it with "
                              "--resume_from_checkpoint latest, pick another --output_dir, or start afresh with "
                              "--overwrite_output_dir true")
        import shutil

        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


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


def _save_final(trainer, tokenizer, output_dir: Path, merge_lora: bool) -> None:
    trainer.save_model(str(output_dir))  # LoRA: the adapter; otherwise the full model, as safetensors
    if trainer.args.process_index != 0:
        return
    tokenizer.save_pretrained(output_dir)
    if merge_lora and hasattr(trainer.model, "merge_and_unload"):
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(output_dir / "merged")
        tokenizer.save_pretrained(output_dir / "merged")


def _evaluate_stage(script, training, model, tokenizer, stage: str) -> None:
    if training.process_index != 0:
        return
    try:
        from tinyr1.evaluate import evaluate
    except ImportError:
        raise TinyR1Error("eval_before_after needs tinyr1.evaluate, which this install lacks") from None
    was_training = model.training
    model.eval()
    evaluate(model=model, tokenizer=tokenizer, dataset_name=script.dataset_name, split=script.eval_split,
             limit=script.eval_limit, max_new_tokens=script.eval_max_new_tokens,
             system_prompt=script.system_prompt, output_dir=Path(training.output_dir) / "eval" / stage,
             dataset_options=script.dataset_options)
    model.train(was_training)


def _finish_story(script, training, model_args, output_dir: Path) -> None:
    if training.process_index != 0:
        return
    from tinyr1.compare import compare
    from tinyr1.report import write_report

    compare(model_args.model_name_or_path, str(output_dir), output=output_dir / "compare.md",
            system_prompt=script.system_prompt)
    from tinyr1.report import eval_table

    report = write_report(output_dir)
    print("\n".join(eval_table(*(_read_metrics(output_dir / "eval" / s) for s in ("before", "after")))))
    print(f"report: {report}")


def _read_metrics(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
