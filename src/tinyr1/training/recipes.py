"""A training run's recipe, shared by ``tinyr1 train`` / ``tinyr1 sft`` and ``tinyr1.train`` / ``tinyr1.sft``: parsed
once into trl's dataclasses and tinyr1's (from a YAML file, ``--field value`` flags or Python keyword arguments),
the automatic output folder, and the claim of the run folder before anything heavy loads.

    recipe = parse_recipe([GRPOScriptArguments, GRPOConfig, ModelConfig], "train", argv=argv, prog="tinyr1 train",
                          defaults=defaults)
    run, resume = claim_run_folder(recipe, "train")
    # run is None: the run named for resuming already finished (said so); the command exits 0
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.recipe import load_recipe
from tinyr1.infra.validate import check_trainer_settings
from tinyr1.models.loading import local_config
from tinyr1.run_folder.folder import RunDir, wants_resume
from tinyr1.run_folder.resume import FinishedRun

logger = logging.getLogger(__name__)

AUTO_OUTPUT = "outputs/auto"  # the recipes' default output_dir: replaced by outputs/<model>-<kind>-<time>


@dataclass
class Recipe:
    """One run's settings: tinyr1's script arguments, the trainer's config (``tinyr1.GRPOConfig`` /
    ``tinyr1.SFTConfig``), trl's ``ModelConfig``, and the merged values config.yaml records."""

    script: object
    args: object
    model_args: object
    values: dict
    source: Path | None = None  # the recipe file, if any
    caller: str | None = None  # the Python API function that parsed it, for messages; None: the command line

    def __iter__(self):  # script, args, model_args, values = recipe
        return iter((self.script, self.args, self.model_args, self.values))


def auto_output_dir(model_name_or_path: str, kind: str) -> str:
    """``outputs/<model's last path part>-<kind>-<YYYYmmdd-HHMMSS>``.

    >>> auto_output_dir("Qwen/Qwen2.5-0.5B-Instruct", "grpo")[:35]
    'outputs/qwen2.5-0.5b-instruct-grpo-'
    """
    short = Path(model_name_or_path.rstrip("/")).name.lower()
    return f"outputs/{short}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def parse_recipe(types: list[type], kind: str, *, prog: str, description: str, defaults: dict,
                 rules: dict | None = None, argv: list[str] | None = None, config=None,
                 python_values: dict | None = None, caller: str | None = None, check_setup: bool = True,
                 paired: dict[str, str] | None = None) -> Recipe:
    """The recipe, parsed and range-checked once (``tinyr1.infra.recipe.load_recipe``). ``check_setup`` also checks
    the Trainer settings that need the machine (``check_trainer_settings``)."""
    (script, args, model_args), values = load_recipe(types, argv, prog=prog, description=description,
                                                     defaults=defaults, rules=rules, config=config,
                                                     python_values=python_values, caller=caller, paired=paired)
    if check_setup:
        check_trainer_settings(args)
    if args.output_dir == AUTO_OUTPUT:
        args.output_dir = auto_output_dir(model_args.model_name_or_path, kind)
    values["output_dir"] = args.output_dir
    return Recipe(script, args, model_args, values, recipe_path(argv, config), caller)


def recipe_path(argv: list[str] | None, config=None) -> Path | None:
    """The recipe file a parse read: the API's ``config``, else ``--config`` of ``argv``."""
    if config is not None:
        return Path(config)
    argv = list(argv or [])
    return Path(argv[argv.index("--config") + 1]) if "--config" in argv[:-1] else None  # the command line's own


def producing_recipe(model: str, recipe: Path | None) -> Path | None:
    """The recipe beside ``recipe`` (its folder, or the folders next to it) whose output_dir is ``model``: a run
    that starts from another run's output (GRPO from a cold start) names the recipe to run first."""
    if recipe is None or not model or Path(model).expanduser().exists():
        return None
    folders = [recipe.parent, *sorted(p for p in recipe.parent.parent.iterdir() if p.is_dir())] \
        if recipe.parent.is_dir() else []
    for folder in dict.fromkeys(folders):
        for candidate in sorted(folder.glob("*.yaml")):
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if re.search(rf"^output_dir:\s*['\"]?{re.escape(model.rstrip('/'))}/?['\"]?\s*$", text, flags=re.M):
                return candidate
    return None


def untrained_model(model: str, source: Path | None, caller: str | None = None) -> str | None:
    """What to say when ``model`` is the output of a recipe beside ``source`` that has not been trained yet (GRPO
    from a cold start), or None. Said before anything loads: as a hub id the name would be retried, then fail as
    "cannot load the tokenizer"."""
    producer = producing_recipe(model, source)
    if producer is None:
        return None
    command = "sft" if producer.name.startswith("sft") else "train"
    # the command line's own where no Python caller
    first = (f"tinyr1.{command}(\"{producer}\")" if caller else f"tinyr1 {command} --config {producer}")
    other = "model=" if caller else "--model_name_or_path"  # the command line's own
    return (f"model_name_or_path {model}: not trained yet; it is what {first} writes: run that first, or give "
            f"{other} another model")


def check_model_exists(recipe: Recipe) -> None:
    """``untrained_model`` for a run about to start: one line, raised."""
    said = untrained_model(recipe.model_args.model_name_or_path, recipe.source, recipe.caller)
    if said:
        raise TinyR1Error(said)


def claim_run_folder(recipe: Recipe, command: str) -> tuple[RunDir | None, str | None]:
    """The run folder (locked for this process; refused if it is a user's or another process's) and the checkpoint
    to resume from, or None, checked against what it resumes (``tinyr1.run_folder.resume``). (None, None) when the
    run to resume has finished: nothing to train."""
    args, values = recipe.args, recipe.values
    foreign = args.resume_from_foreign_checkpoint  # a new run started from another run's checkpoint
    run = RunDir.claim(args.output_dir, command, resume=wants_resume(args.resume_from_checkpoint) and not foreign,
                       overwrite=args.overwrite_output_dir, main=args.process_index == 0)
    try:
        model = values.get("model_name_or_path")
        config = local_config(model) if model and wants_resume(args.resume_from_checkpoint) else None
        resume = run.resolve_resume(args.resume_from_checkpoint, values, args.resume_changed_settings, config,
                                    foreign=foreign)
        # one resume's consent, not the run's: config.yaml keeps them off, so a later resume continues this run
        values["resume_changed_settings"] = values["resume_from_foreign_checkpoint"] = False
        return run, resume
    except FinishedRun as done:
        if run.main:
            logger.info(done)
        return None, None
