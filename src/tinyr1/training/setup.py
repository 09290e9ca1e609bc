"""The skeleton ``tinyr1 train`` and ``tinyr1 sft`` share: one parse of the recipe, the automatic output folder,
the device defaults, what a resume value means, and the claim of the run folder.

    script, training, model_args, values = parse_training_recipe([ScriptArgs, GRPOConfig, ModelConfig], argv,
                                                                 "tinyr1 train", "grpo", doc, defaults, rules)
    run, resume = claim_run_folder(training, "train", overwrite=script.overwrite_output_dir, values=values,
                                   accept_changes=script.resume_changed_settings)
    # run is None: the run named for resuming already finished (said so); the command exits 0
"""

from __future__ import annotations

import time
from pathlib import Path

from tinyr1.infra.recipe import load_recipe
from tinyr1.infra.validate import check_trainer_settings
from tinyr1.models.loading import local_config
from tinyr1.run_folder.folder import RunDir

AUTO_OUTPUT = "outputs/auto"  # the recipes' default output_dir: replaced by outputs/<model>-<kind>-<time>


def wants_resume(value) -> bool:
    """Whether a ``resume_from_checkpoint`` value asks to resume (trl passes strings from the command line).

    >>> [wants_resume(v) for v in (None, "", "false", "False", "latest", "true", "outputs/run/checkpoint-5")]
    [False, False, False, False, True, True, True]
    """
    return value not in (None, "", "false", "False")


def auto_output_dir(model_name_or_path: str, kind: str) -> str:
    """``outputs/<model's last path part>-<kind>-<YYYYmmdd-HHMMSS>``.

    >>> auto_output_dir("Qwen/Qwen2.5-0.5B-Instruct", "grpo")[:35]
    'outputs/qwen2.5-0.5b-instruct-grpo-'
    """
    short = Path(model_name_or_path.rstrip("/")).name.lower()
    return f"outputs/{short}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def parse_training_recipe(types: list[type], argv: list[str] | None, prog: str, kind: str, description: str,
                          defaults: dict, rules: dict | None = None, check_setup: bool = True):
    """The recipe, parsed and range-checked once: (script, training, model_args, values for config.yaml).

    ``check_setup`` also checks the Trainer settings that need the machine (``check_trainer_settings``)."""
    (script, training, model_args), values = load_recipe(types, argv, prog=prog, description=description,
                                                         defaults=defaults, rules=rules)
    if check_setup:
        check_trainer_settings(training)
    if training.output_dir == AUTO_OUTPUT:
        training.output_dir = auto_output_dir(model_args.model_name_or_path, kind)
    values["output_dir"] = training.output_dir
    return script, training, model_args, values


def claim_run_folder(training, command: str, *, overwrite: bool, values: dict | None = None,
                     accept_changes: bool = False) -> tuple[RunDir | None, str | None]:
    """The run folder (locked for this process; refused if it is a user's or another process's) and the checkpoint
    to resume from, or None; with the run's ``values``, the resume is checked against what it resumes
    (``tinyr1.run_folder.resume``). (None, None) when the run to resume has finished: nothing to train."""
    from tinyr1.run_folder.resume import FinishedRun

    run = RunDir.claim(training.output_dir, command, resume=wants_resume(training.resume_from_checkpoint),
                       overwrite=overwrite, main=training.process_index == 0)
    try:
        model = (values or {}).get("model_name_or_path")
        config = local_config(model) if model and wants_resume(training.resume_from_checkpoint) else None
        resume = run.resolve_resume(training.resume_from_checkpoint, values, accept_changes, config)
        if values is not None:  # one resume's consent, not the run's: config.yaml keeps it off for the next
            values["resume_changed_settings"] = False
        return run, resume
    except FinishedRun as done:
        if run.main:
            print(done, flush=True)
        return None, None
