"""The run folder around one trainer's ``train``: a plain object ``tinyr1.GRPOTrainer`` and ``tinyr1.SFTTrainer``
each hold and call from their overrides of trl's methods (``RunSession``).

When ``train`` starts, ``output_dir`` is claimed (``tinyr1.run_folder``: marker, lock; a folder of the user's is
refused), a resume value (``"latest"``, True, a path) is resolved to the run's own newest complete checkpoint and
checked against the run's settings, config.yaml and run.json are written; training runs with out-of-memory and
full-disk failures said in one line; the end is recorded (``completed``, ``interrupted`` after a first
Ctrl-C/SIGTERM with a checkpoint saved, ``collapsed`` with its reason). ``tinyr1 train`` / ``tinyr1 sft`` claim the
folder before loading the model and pass it in (``run_folder``).

One trainer, one run: a second ``train()`` on the same trainer resumes its run (``resume_from_checkpoint``) or is
refused in one line, never trains into a finished run again; after a collapse it is refused. Whatever way
``train`` ends (return, raise, KeyboardInterrupt), the signal handlers, the wakeup fd and torch's thread count are
as they were before it.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from pathlib import Path

from transformers.trainer_utils import TrainOutput

from tinyr1.infra.errors import CollapseError, TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.infra.out_of_memory import oom_remedies
from tinyr1.infra.recipe import dump_recipe, plain_values
from tinyr1.infra.thread_governor import thread_governor
from tinyr1.run_folder.checkpoints import files_in
from tinyr1.run_folder.folder import RunDir, wants_resume
from tinyr1.run_folder.resume import FinishedRun
from tinyr1.training.callbacks import GracefulStop, MetricsLogger, RunRecorder, TimeBudget
from tinyr1.training.optimizer_state import keep_settings

logger = logging.getLogger(__name__)


class RunSession:
    """A trainer's run folder and clean stops (module docstring). ``settings``: tinyr1's fields of the config
    (``tinyr1.training.config.trainer_settings``); ``command``: ``train`` or ``sft`` (the folder's marker records
    it); ``length_field``: the setting whose halving the out-of-memory remedies suggest."""

    def __init__(self, settings, command: str, args, run_folder: RunDir | None, recipe_values: dict | None,
                 finish: bool, length_field: str):
        self.settings, self.command, self.length_field = settings, command, length_field
        self.run, self.given = run_folder, run_folder is not None
        self.values, self.finish = recipe_values, finish
        self.stopped_by: int | None = None
        self.ended: str | None = None  # how the last train() ended: completed, interrupted, collapsed, failed
        self.facts: dict = {}
        self.made_by_trainer: set[str] = set()  # what trl's constructor wrote into output_dir (log_completions)
        self.signals = GracefulStop(on_abort=lambda: self.run and self.run.write_run_json("aborted"))
        self.budget = TimeBudget(settings.max_train_minutes)
        self.recorder = RunRecorder(run_folder)
        self.governor = thread_governor(args.world_size)
        self.callbacks = [self.signals, self.budget, MetricsLogger(Path(args.output_dir)), self.recorder,
                          *([self.governor] if self.governor else [])]

    # ------------------------------------------------------------ train

    def train(self, trainer, trl_train, resume_from_checkpoint, prepare, collapse, **trl_kwargs):
        """``trl_train`` inside the run folder (module docstring). ``prepare(checkpoint)`` runs after the claim,
        before step 1; ``collapse()`` says why the run must stop with exit 3, or None. Returns trl's
        ``TrainOutput`` (a finished run named for resuming: its last step's, nothing trained)."""
        self._check_again(resume_from_checkpoint)
        threads = _torch_threads()
        try:
            return self._train(trainer, trl_train, resume_from_checkpoint, prepare, collapse, trl_kwargs)
        except CollapseError:
            self.ended = "collapsed"
            _close_bars(trainer)
            raise
        except BaseException:
            self.ended = self.ended or "failed"
            _close_bars(trainer)
            raise
        finally:
            self.signals.restore()  # trl skips on_train_end when train raises
            _torch_threads(threads)

    def _train(self, trainer, trl_train, resume_from_checkpoint, prepare, collapse, trl_kwargs):
        try:
            checkpoint = self._claim(trainer, resume_from_checkpoint)
        except FinishedRun as done:
            logger.info(str(done))
            self.ended = "completed"
            return TrainOutput(trainer.state.global_step or done.step, done.loss, {})
        prepare(checkpoint)
        run = self.run
        if checkpoint:
            run.drop_logs_after(checkpoint)
        run.facts.update(self.facts)
        run.write_run_json("running", model=run.facts.get("model") or model_name(trainer.model))
        remedies = lambda: oom_remedies(trainer.args, trainer.model, self.length_field)  # noqa: E731
        with run.training(global_step=lambda: trainer.state.global_step, remedies=remedies):
            output = trl_train(resume_from_checkpoint=checkpoint, **trl_kwargs)
        self._record_facts()
        reason = collapse()
        if reason:
            run.write_run_json("collapsed", stopped_because=reason)
            raise CollapseError(f"training collapsed: {reason}")
        if self.signals.received is not None:  # a checkpoint of the finished step was saved
            self.stopped_by, self.ended = self.signals.received, "interrupted"
            run.interrupted(trainer.state.global_step, self.stopped_by)
        else:
            self.ended = "completed"
            if self.finish:
                run.write_run_json("completed")
        return output

    def _check_again(self, resume_from_checkpoint) -> None:
        """One trainer, one run: what a second ``train()`` on the same trainer may do."""
        if self.ended is None:
            return
        if self.ended == "collapsed":
            raise TinyR1Error(f"train(): this trainer's run in {self.run.path} collapsed; fix the cause and build a "
                              "new trainer (it may resume the run's last checkpoint with "
                              f"{setting('resume_from_checkpoint')})")
        if not wants_resume(resume_from_checkpoint):
            where = self.run.path if self.run is not None else "its output_dir"
            raise TinyR1Error(f"train(): this trainer already trained its run in {where} ({self.ended}); continue "
                              f"it with {setting('resume_from_checkpoint', 'latest')} (after raising max_steps, for "
                              "a finished run), or build a new trainer for a new run")

    def collapsed(self, reason: str) -> None:
        """A guard stopped the run outside trl's loop (the preflight): run.json says so and why, where it exists."""
        if self.run is not None:
            self.run.note("collapsed", stopped_because=reason)

    def stop_requested(self) -> str | None:
        """Why a loop inside a step (a refill) should end now: a first Ctrl-C/SIGTERM, or max_train_minutes spent;
        the step then finishes with what it has and the run stops cleanly at its end."""
        if self.signals.received is not None:
            return signal.Signals(self.signals.received).name
        if self.budget.spent():
            return f"max_train_minutes={self.settings.max_train_minutes} spent"
        return None

    def _claim(self, trainer, resume_from_checkpoint) -> str | None:
        """The run folder (claimed now unless a command already did), and the checkpoint to resume from, checked."""
        value = "latest" if resume_from_checkpoint is True else resume_from_checkpoint
        if self.given and self.ended is None:  # the command claimed it and resolved the checkpoint already
            self.recorder.run = self.run
            return value or None
        values = self.values if self.values is not None else self.recipe_values(trainer)
        foreign = self.settings.resume_from_foreign_checkpoint
        if self.run is None:
            self.run = RunDir.claim(trainer.args.output_dir, self.command, resume=wants_resume(value) and not foreign,
                                    overwrite=self.settings.overwrite_output_dir,
                                    main=trainer.args.process_index == 0, made_here=self.made_by_trainer)
        self.recorder.run = self.run
        checkpoint = self.run.resolve_resume(value or None, values, self.settings.resume_changed_settings,
                                             model_config(trainer.model), foreign=foreign)
        if self.run.main:
            dump_recipe(self.run.path / "config.yaml", values)
        self.values = values
        return checkpoint

    def recipe_values(self, trainer) -> dict:
        """What config.yaml records for a run built in Python: the config's fields with tinyr1's (their defaults
        where the config is trl's own, so trl's and tinyr1's config classes record the same run alike), the model."""
        values = {**plain_values(trainer.args.to_dict()), **plain_values(dataclasses.asdict(self.settings))}
        values["model_name_or_path"] = model_name(trainer.model)
        return values

    def _record_facts(self) -> None:
        run = self.run
        if self.governor and (changes := self.governor.governor.changes):
            run.facts["thread_changes"] = [list(change) for change in changes]
        if self.budget.reached_at is not None:
            run.facts["time_budget_reached_at_step"] = self.budget.reached_at
            if run.main:
                logger.info(f"max_train_minutes={self.settings.max_train_minutes} reached at step "
                            f"{self.budget.reached_at}")

    # ------------------------------------------------------------ saving and restoring

    def save_checkpoint(self, trainer, trl_save, model, trial) -> None:
        """trl's checkpoint save, then its manifest and ``save_total_limit``'s rotation done by tinyr1: only the
        run's own checkpoints count, and only the files a save wrote are deleted (``tinyr1.run_folder.cleanup``);
        the Trainer's own rotation, which removes whole folders, is held off for the save."""
        folder = Path(trainer._get_output_dir(trial=trial)) / f"checkpoint-{trainer.state.global_step}"
        before = files_in(folder)
        limit, trainer.args.save_total_limit = trainer.args.save_total_limit, None
        try:
            trl_save(model, trial)
        finally:
            trainer.args.save_total_limit = limit
        if self.run is not None:
            self.run.checkpoint_saved(folder, before, limit)

    @staticmethod
    def load_optimizer_and_scheduler(trainer, trl_load, checkpoint) -> None:
        """trl's restore of the optimizer and scheduler, then this run's settings put back over the restored ones:
        torch restores a checkpoint's learning rate, betas and weight decay with its state, so a change accepted
        with ``resume_changed_settings`` would be announced and never applied (``keep_settings``)."""
        fresh = None
        if checkpoint is not None and not getattr(trainer, "is_deepspeed_enabled", False):
            fresh = [{k: v for k, v in group.items() if k != "params"} for group in trainer.optimizer.param_groups]
        trl_load(checkpoint)
        if fresh is not None:
            keep_settings(trainer.optimizer, trainer.lr_scheduler, fresh)

    def saved(self) -> None:
        """After trl's ``save_model``: the saved files recorded as the run's."""
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


def _close_bars(trainer) -> None:
    """The Trainer's progress bars, closed after a raise (it closes them only at a normal end), so the line that
    says why starts a line of its own."""
    for callback in trainer.callback_handler.callbacks:
        for name in ("training_bar", "prediction_bar"):
            bar = getattr(callback, name, None)
            if bar is not None and hasattr(bar, "close"):
                bar.close()
                setattr(callback, name, None)


def _torch_threads(count: int | None = None) -> int | None:
    """torch's CPU thread count, or set it back to ``count`` (the thread governor may change it during training)."""
    import torch

    if count is None:
        return torch.get_num_threads()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
