"""The run folder around a trl trainer's ``train``, shared by ``tinyr1.GRPOTrainer`` and ``tinyr1.SFTTrainer``.

``RunFolderMixin`` goes before trl's trainer class. When ``train`` starts, ``output_dir`` is claimed
(``tinyr1.run_folder``: marker, lock; a folder of the user's is refused), a resume value (``"latest"``, True, a
path) is resolved to the run's own newest complete checkpoint and checked against the run's settings, config.yaml
and run.json are written; training runs with out-of-memory and full-disk failures said in one line; the end is
recorded (``completed``, ``interrupted`` after a first Ctrl-C/SIGTERM with a checkpoint saved, ``collapsed``).
``tinyr1 train`` / ``tinyr1 sft`` claim the folder before loading the model and pass it in (``run_folder``).
"""

from __future__ import annotations

import signal
from pathlib import Path

from tinyr1.infra.errors import CollapseError, TinyR1Error
from tinyr1.infra.out_of_memory import oom_remedies
from tinyr1.infra.recipe import dump_recipe, plain_values
from tinyr1.infra.thread_governor import thread_governor
from tinyr1.run_folder.checkpoints import files_in
from tinyr1.run_folder.folder import RunDir, wants_resume
from tinyr1.run_folder.resume import FinishedRun
from tinyr1.training.callbacks import GracefulStop, MetricsLogger, RunRecorder, TimeBudget


class RunFolderMixin:
    """Put before a trl trainer class; call ``_setup_run_folder`` in ``__init__`` before trl's and add
    ``self._run_callbacks`` to the trainer's callbacks. Subclasses may extend ``_prepare_training`` (after the claim,
    before step 1) and ``_collapse`` (why the run must stop with exit 3, or None)."""

    command = "train"  # the tinyr1 command whose run this is (the folder's marker records it)
    length_field = "max_length"  # the setting whose halving the out-of-memory remedies suggest

    def _setup_run_folder(self, settings, output_dir, world_size: int, run_folder: RunDir | None,
                          recipe_values: dict | None, finish: bool) -> None:
        self.tinyr1 = settings
        self.run, self._values, self._finish = run_folder, recipe_values, finish
        self.stopped_by: int | None = None
        self.facts: dict = {}
        self._signals = GracefulStop(on_abort=lambda: self.run and self.run.write_run_json("aborted"))
        self._budget = TimeBudget(settings.max_train_minutes)
        self._run_recorder = RunRecorder(run_folder)
        self._governor = thread_governor(world_size)
        self._run_callbacks = [self._signals, self._budget, MetricsLogger(Path(output_dir)), self._run_recorder,
                               *([self._governor] if self._governor else [])]

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """trl's ``train`` inside the run folder (module docstring). Returns trl's ``TrainOutput``, or None when the
        run named for resuming has already finished. Raises ``CollapseError`` when a guard stopped the run."""
        try:
            checkpoint = self._claim(resume_from_checkpoint)
        except FinishedRun as done:
            print(done, flush=True)
            return None
        self._prepare_training(checkpoint)
        run = self.run
        if checkpoint:
            run.drop_logs_after(checkpoint)
        run.facts.update(self.facts)
        run.write_run_json("running", model=run.facts.get("model") or model_name(self.model))
        remedies = lambda: oom_remedies(self.args, self.model, self.length_field)  # noqa: E731
        with run.training(global_step=lambda: self.state.global_step, remedies=remedies):
            output = super().train(resume_from_checkpoint=checkpoint, trial=trial,
                                   ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)
        self._record_facts()
        collapse = self._collapse()
        if collapse:
            run.write_run_json("collapsed")
            raise CollapseError(f"training collapsed: {collapse}")
        if self._signals.received is not None:  # a checkpoint of the finished step was saved
            self.stopped_by = self._signals.received
            hint = None if self._values is not None and self._finish is False else \
                "trainer.train(resume_from_checkpoint='latest')"
            run.interrupted(self.state.global_step, self.stopped_by, hint)
        elif self._finish:
            run.write_run_json("completed")
        return output

    def stop_requested(self) -> str | None:
        """Why a loop inside a step (a refill) should end now: a first Ctrl-C/SIGTERM, or max_train_minutes spent;
        the step then finishes with what it has and the run stops cleanly at its end."""
        if self._signals.received is not None:
            return signal.Signals(self._signals.received).name
        if self._budget.spent():
            return f"max_train_minutes={self.tinyr1.max_train_minutes} spent"
        return None

    def _prepare_training(self, checkpoint: str | None) -> None:
        """After the claim, before step 1."""

    def _collapse(self) -> str | None:
        return None

    def _claim(self, resume_from_checkpoint) -> str | None:
        """The run folder (claimed now unless a command already did), and the checkpoint to resume from, checked."""
        value = "latest" if resume_from_checkpoint is True else resume_from_checkpoint
        if self.run is not None:  # the command claimed it and resolved the checkpoint before loading the model
            self._run_recorder.run = self.run
            return value or None
        values = self._values if self._values is not None else self.recipe_values()
        foreign = self.tinyr1.resume_from_foreign_checkpoint
        self.run = RunDir.claim(self.args.output_dir, self.command, resume=wants_resume(value) and not foreign,
                                overwrite=self.tinyr1.overwrite_output_dir, main=self.args.process_index == 0)
        self._run_recorder.run = self.run
        checkpoint = self.run.resolve_resume(value or None, values, self.tinyr1.resume_changed_settings,
                                             model_config(self.model), foreign=foreign)
        if self.run.main:
            dump_recipe(self.run.path / "config.yaml", values)
        self._values = values
        return checkpoint

    def recipe_values(self) -> dict:
        """What config.yaml records for a run built in Python: the config's fields and the model."""
        values = plain_values(self.args.to_dict())
        values["model_name_or_path"] = model_name(self.model)
        return values

    def _record_facts(self) -> None:
        run = self.run
        if self._governor and (changes := self._governor.governor.changes):
            run.facts["thread_changes"] = [list(change) for change in changes]
        if self._budget.reached_at is not None:
            run.facts["time_budget_reached_at_step"] = self._budget.reached_at
            if run.main:
                print(f"max_train_minutes={self.tinyr1.max_train_minutes} reached at step {self._budget.reached_at}",
                      flush=True)

    def _save_checkpoint(self, model, trial):
        """trl's checkpoint save, then its manifest and ``save_total_limit``'s rotation done by tinyr1: only the
        run's own checkpoints count, and only the files a save wrote are deleted (``tinyr1.run_folder.cleanup``);
        the Trainer's own rotation, which removes whole folders, is held off for the save."""
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        before = files_in(folder)
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        if self.run is not None:
            self.run.checkpoint_saved(folder, before, limit)

    def _load_optimizer_and_scheduler(self, checkpoint):
        """trl's restore of the optimizer and scheduler, then this run's settings put back over the restored ones:
        torch restores a checkpoint's learning rate, betas and weight decay with its state, so a change accepted
        with ``resume_changed_settings`` would be announced and never applied (``keep_settings``)."""
        fresh = None
        if checkpoint is not None and not getattr(self, "is_deepspeed_enabled", False):
            fresh = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        super()._load_optimizer_and_scheduler(checkpoint)
        if fresh is not None:
            keep_settings(self.optimizer, self.lr_scheduler, fresh)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """trl's save, the saved files recorded as the run's."""
        super().save_model(output_dir, _internal_call)
        if self.run is not None:
            self.run.record()


def model_name(model) -> str:
    """How run.json and config.yaml name a model given as a name or an object."""
    if isinstance(model, str):
        return model
    config = getattr(getattr(model, "config", None), "_name_or_path", None)
    return str(config) if config else type(model).__name__


def model_config(model) -> dict | None:
    """The model's architecture, for the resume check that a checkpoint fits it."""
    config = getattr(model, "config", None)
    return config.to_dict() if config is not None and hasattr(config, "to_dict") else None


def keep_settings(optimizer, scheduler, fresh: list[dict]) -> None:
    """Put the settings of the optimizer built for this run (``fresh``: its param groups before the restore) back
    over a checkpoint's, keeping the restored state (Adam's moments, the scheduler's step). The scheduler's base
    rates follow, and the rate of the next step is recomputed from its schedule: the same numbers when nothing
    changed, the new schedule's when something did. A scheduler that is not a ``LambdaLR`` (all of transformers'
    but ``reduce_lr_on_plateau``) cannot be recomputed: a change there is refused."""
    from torch.optim.lr_scheduler import LambdaLR  # lazy: run_trainer is imported before torch is needed

    groups = optimizer.param_groups
    base = [settings.get("initial_lr", settings["lr"]) for settings in fresh]
    changed = len(groups) != len(fresh) or any(
        _same(group.get(key)) != _same(value) for group, settings in zip(groups, fresh, strict=False)
        for key, value in settings.items() if key != "lr") or any(
        group.get("initial_lr") != rate for group, rate in zip(groups, base, strict=False))
    if not changed:
        return
    if len(groups) != len(fresh) or not isinstance(scheduler, LambdaLR):
        raise TinyR1Error(f"--resume_changed_settings: the optimizer or its schedule ({type(scheduler).__name__}) "
                          "cannot take new settings exactly on a resume; resume with the run's optimizer settings "
                          "(its config.yaml), or start a new run")
    for group, settings, rate in zip(groups, fresh, base, strict=True):
        group.update({k: v for k, v in settings.items() if k != "lr"}, initial_lr=rate)
    scheduler.base_lrs = list(base)
    for group, rate, schedule in zip(groups, base, scheduler.lr_lambdas, strict=True):
        group["lr"] = rate * schedule(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]


def _same(value):
    """A setting as compared: betas restored from a checkpoint may come back a list where the optimizer has a tuple."""
    return tuple(value) if isinstance(value, list) else value
