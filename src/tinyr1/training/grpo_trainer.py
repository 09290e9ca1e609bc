"""``tinyr1.GRPOTrainer``: trl's ``GRPOTrainer`` with tinyr1's guards, run folder and speed, and trl's constructor.

    from tinyr1 import GRPOTrainer                 # the one changed line of a trl script
    trainer = GRPOTrainer(model=model, reward_funcs=[correctness, my_reward], args=GRPOConfig(...),
                          train_dataset=dataset, processing_class=tokenizer)
    trainer.train()                                # later: trainer.train(resume_from_checkpoint="latest")
    tinyr1.report(trainer)

``args`` is trl's ``GRPOConfig`` or ``tinyr1.GRPOConfig`` (trl's plus tinyr1's fields, ``tinyr1.training.fields``;
a plain trl config gets their defaults). What the trainer adds, each governed by those fields:

- **the collapse guard** (``tinyr1.training.guards``): a NaN/inf preflight before step 1, non-finite optimizer
  steps skipped, ``!!!!`` completions or a reward with no finite value stopping the run: ``train`` then raises
  ``tinyr1.CollapseError`` and run.json says ``collapsed``;
- **the run folder** (``tinyr1.training.run_trainer``): ``output_dir`` claimed when training starts, run.json,
  config.yaml, metrics.jsonl, samples.jsonl, checkpoints stamped as the run's, ``resume_from_checkpoint="latest"``
  checked against the run's settings, a clean stop on Ctrl-C/SIGTERM (``stopped_by``) and ``max_train_minutes``;
- **dynamic sampling and the curriculum** where the config turns them on;
- **the CPU fast path** (``tinyr1.cpu.trainer``) where the version gate allows it (``cpu_fast_path``).

Reward functions may be trl's callables or names from tinyr1's registry (``tinyr1.tasks.rewards``); a callable
that trl could not call is refused at once, naming it. Everything else — the step, the loss, logging — is trl's.
"""

from __future__ import annotations

from pathlib import Path

from tinyr1.cpu import touchpoints
from tinyr1.cpu.trainer import CPUFastGRPOTrainer, generation_weights
from tinyr1.infra.errors import TinyR1Error
from tinyr1.models.loading import check_context, ensure_pad_token
from tinyr1.run_folder.folder import RunDir
from tinyr1.tasks.reward_lookup import check_reward_funcs
from tinyr1.training import guards
from tinyr1.training.callbacks import SampleRecorder
from tinyr1.training.config import GRPOConfig, trainer_settings
from tinyr1.training.curriculum import CurriculumMixin
from tinyr1.training.dynamic_sampling import DynamicSamplingMixin
from tinyr1.training.fields import GRPOFields
from tinyr1.training.live_view import report_last
from tinyr1.training.run_trainer import RunFolderMixin
from tinyr1.training.sampling import CurriculumCheckpoint, check_sampling_options, with_index


class GRPOTrainer(RunFolderMixin, CurriculumMixin, DynamicSamplingMixin, CPUFastGRPOTrainer):
    """trl's ``GRPOTrainer`` with tinyr1's guards, run folder, sampling options and CPU fast path (module docstring).

    Beyond trl's arguments: ``run_folder``, a folder ``tinyr1 train`` already claimed; ``recipe_values``, the
    settings its config.yaml records (default: ``args`` as a dict, the model and the rewards); ``finish``, whether
    ``train`` marks run.json ``completed`` (``tinyr1 train`` does it after the final save and evaluation).
    """

    command = "train"
    length_field = "max_completion_length"

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, eval_dataset=None,
                 processing_class=None, reward_processing_classes=None, callbacks=None, optimizers=(None, None),
                 peft_config=None, *, run_folder: RunDir | None = None, recipe_values: dict | None = None,
                 finish: bool = True, **trl_kwargs):
        if args is None:  # trl's own default, with tinyr1's fields
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = GRPOConfig(f"{str(name).rstrip('/').split('/')[-1]}-GRPO")
        settings = trainer_settings(args, GRPOFields)
        if settings.curriculum and train_dataset is not None:
            train_dataset = with_index(train_dataset)
        funcs = check_reward_funcs(reward_funcs, "reward_funcs", columns=_columns(train_dataset))
        names = [getattr(f, "__name__", str(f)) for f in funcs]
        if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
            raise TinyR1Error(f"reward_weights: {len(args.reward_weights)} weights for {len(funcs)} reward_funcs "
                              f"({', '.join(names)}); give one weight per reward")
        check_sampling_options(settings, args.world_size, names)
        _distinct_pad_token(model, processing_class)
        if not isinstance(model, str):  # a name is loaded by trl; tinyr1 train checks it before loading
            config = getattr(model, "config", None)
            check_context(config, getattr(config, "_name_or_path", None) or type(model).__name__,
                          [("max_completion_length", args.max_completion_length)])
        self._setup_run_folder(settings, args.output_dir, args.world_size, run_folder, recipe_values, finish)
        self._preflight_done = False
        self._nan = guards.NonFiniteGradGuard(settings.collapse_patience)
        self._degenerate = guards.DegenerateGuard(settings.degenerate_threshold, settings.collapse_patience)
        self._recorder = SampleRecorder(funcs, Path(args.output_dir), settings.sample_every, self._degenerate)
        ours = [self._nan, self._recorder, *self._run_callbacks, CurriculumCheckpoint(self)]
        super().__init__(model=model, reward_funcs=self._recorder.reward_funcs, args=args,
                         train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=processing_class,
                         reward_processing_classes=reward_processing_classes, callbacks=[*(callbacks or []), *ours],
                         optimizers=optimizers, peft_config=peft_config, **trl_kwargs)
        report_last(self)  # the integrations (report_to) see guard/skipped_steps, which a tinyr1 callback adds
        self.facts = {"trainer": type(self).__name__, **self._fast_path_facts(peft_config is not None)}
        if settings.curriculum:
            self.setup_curriculum(self.train_dataset)

    def _fast_path_facts(self, lora: bool) -> dict:
        """Take the fast path where the gate and the run allow it, said in one line; run.json's facts about it."""
        setting = self.tinyr1.cpu_fast_path
        self.forced = setting is True
        blocker = self.fast_path_blocker()
        if setting is False:
            reason = "cpu_fast_path false"
        elif blocker:
            reason = blocker
        else:
            reason = touchpoints.fast_path_check("training").reason
        used = self.uses_fast_path()
        if self.accelerator.is_main_process and blocker != "not on a CPU":
            if used:
                print(touchpoints.forced_line("training") if self.forced else
                      "trainer: CPU fast path (tinyr1.cpu.trainer; cpu_fast_path false for trl's own)", flush=True)
            elif blocker and setting is not False:
                print(f"trainer: trl's own GRPOTrainer step, not the CPU fast path: {blocker}", flush=True)
        weights = generation_weights(self.tinyr1.cpu_generation_weights, used, self.args,
                                     self.accelerator.unwrap_model(self.model), lora)
        self.generation_weights = weights["used"]
        wanted = {None: "auto", True: "true", False: "false"}[setting]
        return {"cpu_fast_path": {"setting": wanted, "used": used, "reason": reason}, "generation_weights": weights}

    def uses_fast_path(self) -> bool:
        return self.tinyr1.cpu_fast_path is not False and super().uses_fast_path()

    def preflight(self) -> None:
        """Generate a few tokens and stop (``CollapseError``) if any weight or logit is NaN/inf; once per trainer."""
        if self.tinyr1.preflight and not self._preflight_done:
            guards.preflight_check(self.accelerator.unwrap_model(self.model), self.processing_class,
                                   bf16=bool(self.args.bf16))
        self._preflight_done = True

    def _prepare_training(self, checkpoint: str | None) -> None:
        self.preflight()
        if self.tinyr1.curriculum and checkpoint:
            self.resume_curriculum(checkpoint)

    def _collapse(self) -> str | None:
        return self._nan.collapsed or self._degenerate.collapsed or self._recorder.reward_guard.collapsed

    def _record_facts(self) -> None:
        super()._record_facts()
        self.run.facts["skipped_steps"] = self._nan.skipped

    def recipe_values(self) -> dict:
        return {**super().recipe_values(), "reward_funcs": list(self.reward_func_names)}


def _distinct_pad_token(model, tokenizer) -> None:
    """A pad token equal to eos (the tutorial's ``tokenizer.pad_token = tokenizer.eos_token``) makes a padded prompt
    look finished and masks the real end-of-turn token in the loss, one of the known triggers of its collapse: the
    tokenizer gets a distinct one, said in one line."""
    if tokenizer is None or isinstance(model, str) or not hasattr(tokenizer, "eos_token_id"):
        return
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    message = ensure_pad_token(tokenizer, model)
    if message:
        print(f"{message}: a pad token equal to eos hides the end of each completion from the loss", flush=True)


def _columns(dataset) -> list[str] | None:
    return list(getattr(dataset, "column_names", None) or []) or None
