"""``tinyr1.GRPOTrainer``: trl's ``GRPOTrainer`` with tinyr1's guards, run folder and speed, and trl's constructor.

    from tinyr1 import GRPOTrainer                 # the one changed line of a trl script
    trainer = GRPOTrainer(model=model, reward_funcs=[correctness, my_reward], args=GRPOConfig(...),
                          train_dataset=dataset, processing_class=tokenizer)
    trainer.train()                                # later: trainer.train(resume_from_checkpoint="latest")
    tinyr1.report(trainer)

``args`` is trl's ``GRPOConfig`` or ``tinyr1.GRPOConfig`` (trl's plus tinyr1's fields, ``tinyr1.training.fields``;
a plain trl config gets their defaults, and the same values record the same run whichever class holds them).

Every method of trl's (and transformers') this class overrides is in its body below, a few lines each, handing the
work to a plain object: the run folder (``run_session.RunSession``), the rewards' observer and the guards
(``reward_observer``, ``guards``, ``signal_guard``), dynamic sampling and the curriculum where the config turns
them on, and the CPU fast path (``tinyr1.cpu.fast_path``) where the version gate allows it. docs/architecture.md's
table of overrides is checked against this class (tests/test_architecture.py). Everything else — the step, the
loss, logging — is trl's. Messages raised or logged here name settings as a ``GRPOConfig`` field
(``GRPOConfig(overwrite_output_dir=True)``), or as the command line or the Python API where they built the trainer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trl
from trl.models.utils import unwrap_model_for_generation

from tinyr1.cpu import touchpoints
from tinyr1.cpu.fast_path import FastPath
from tinyr1.infra.errors import CollapseError, TinyR1ValueError
from tinyr1.infra.naming import speaking
from tinyr1.models.loading import check_context
from tinyr1.models.precision import keep_trainers_adapter_sums_fp32
from tinyr1.run_folder.folder import RunDir
from tinyr1.run_folder.ownership import entries
from tinyr1.tasks.reward_lookup import callable_name, check_reward_funcs
from tinyr1.tasks.rewards import completion_text, correctness_index
from tinyr1.training import guards
from tinyr1.training.config import GRPOConfig, trainer_settings
from tinyr1.training.curriculum import Curriculum
from tinyr1.training.dynamic_sampling import DynamicSampling, uniform_prompts
from tinyr1.training.fields import GRPOFields
from tinyr1.training.live_view import report_last
from tinyr1.training.model_checks import fit_model_and_tokenizer
from tinyr1.training.rank_agreement import RankAgreement
from tinyr1.training.reward_observer import RewardObserver
from tinyr1.training.run_session import RunSession
from tinyr1.training.sampling import CurriculumCheckpoint, check_sampling_options, with_index
from tinyr1.training.signal_guard import NoSignalGuard

logger = logging.getLogger(__name__)


class GRPOTrainer(trl.GRPOTrainer):
    """trl's ``GRPOTrainer`` with tinyr1's guards, run folder, sampling options and CPU fast path (module docstring).

    Beyond trl's arguments: ``run_folder``, a folder ``tinyr1 train`` already claimed; ``recipe_values``, the
    settings its config.yaml records (default: the config's fields with tinyr1's, the model and the rewards);
    ``finish``, whether ``train`` marks run.json ``completed`` (``tinyr1 train`` does it after the final save and
    evaluation).
    """

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, eval_dataset=None,
                 processing_class=None, reward_processing_classes=None, callbacks=None, optimizers=(None, None),
                 peft_config=None, *, run_folder: RunDir | None = None, recipe_values: dict | None = None,
                 finish: bool = True, **trl_kwargs):
        if args is None:  # trl's own default, with tinyr1's fields
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = GRPOConfig(f"{str(name).rstrip('/').split('/')[-1]}-GRPO")
        with speaking(type(args).__name__):
            settings = trainer_settings(args, GRPOFields)
            if settings.curriculum and train_dataset is not None:
                train_dataset = with_index(train_dataset)
            environments = trl_kwargs.get("environment_factory") is not None
            funcs = check_reward_funcs(reward_funcs, "reward_funcs", columns=_columns(train_dataset),
                                       optional=environments)
            names = [callable_name(f) if not isinstance(f, str) else f for f in funcs]
            if args.reward_weights is not None and len(args.reward_weights) != len(funcs) and not environments:
                raise TinyR1ValueError(f"reward_weights: {len(args.reward_weights)} weights for {len(funcs)} "
                                       f"reward_funcs ({', '.join(names)}); give one weight per reward")
            check_sampling_options(settings, args.world_size, names)
            fit_model_and_tokenizer(model, processing_class, peft_config)
            if not isinstance(model, str):  # a name is loaded by trl; tinyr1 train checks it before loading
                config = getattr(model, "config", None)
                check_context(config, getattr(config, "_name_or_path", None) or type(model).__name__,
                              [("max_completion_length", args.max_completion_length)])
            self._run = RunSession(settings, "train", args, run_folder, recipe_values, finish,
                                   "max_completion_length")
            self._nan = guards.NonFiniteGradGuard(settings.collapse_patience)
            self._degenerate = guards.DegenerateGuard(settings.degenerate_threshold, settings.collapse_patience)
            self._observer = RewardObserver(funcs, Path(args.output_dir), settings.sample_every, self._degenerate,
                                            distributed=args.world_size > 1)
            self._no_signal = NoSignalGuard(settings.no_signal_patience, names, None, args.max_completion_length)
            self._fast = FastPath(settings.cpu_fast_path, settings.cpu_generation_weights)
            self._sampling = DynamicSampling(settings, args.seed) if settings.dynamic_sampling else None
            self._curriculum = Curriculum(settings, train_dataset, args.seed) if settings.curriculum else None
            self._preflight_done = False
            self._agreement = RankAgreement(self._local_collapse, self._run.signals, self._run.budget)
            ours = [self._nan, self._observer, self._no_signal, *self._run.callbacks,
                    *([CurriculumCheckpoint(self._curriculum)] if self._curriculum else []),
                    self._agreement]  # last: it sees every other callback's decision of the step
            before = entries(Path(args.output_dir))
            super().__init__(model=model, reward_funcs=self._observer.reward_funcs, args=args,
                             train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=processing_class,
                             reward_processing_classes=reward_processing_classes,
                             callbacks=[*(callbacks or []), *ours], optimizers=optimizers, peft_config=peft_config,
                             **trl_kwargs)
            self._run.made_by_trainer = entries(Path(args.output_dir)) - before  # trl's completions/ folder
            keep_trainers_adapter_sums_fp32(self.model, args)  # else a LoRA's first updates vanish in bf16
            report_last(self)  # the integrations (report_to) see guard/skipped_steps, which a tinyr1 callback adds
            self._no_signal.names = list(self.reward_func_names)  # with an environment's own rewards, as trl logs
            self._no_signal.correctness = correctness_index(self.reward_func_names)
            self._reads_rewards = touchpoints.fast_path_check("sampling").allowed
            if not self._reads_rewards and settings.no_signal_patience:
                logger.warning(f"no-signal guard off: {touchpoints.fast_path_check('sampling').reason}")
            self.facts = {"trainer": type(self).__name__, **self._fast.decide(self, peft_config is not None)}
            self._run.facts.update(self.facts)

    # ------------------------------------------------------------ what tinyr1 adds, for callers

    @property
    def run(self) -> RunDir | None:
        """The run folder, once ``train`` claimed it (or the one ``tinyr1 train`` passed in)."""
        return self._run.run

    @property
    def stopped_by(self) -> int | None:
        """The signal (SIGINT, SIGTERM) after which the last ``train`` saved and stopped, or None."""
        return self._run.stopped_by

    @property
    def fast_path_calls(self):
        """How often each part ran on the CPU fast path (``logps``, ``generation``): what a test of the fast path
        asserts, so a closed version gate (trl's own code) fails it instead of comparing trl with trl."""
        return self._fast.calls

    @property
    def fast_path(self) -> FastPath:
        return self._fast

    @property
    def tinyr1(self):
        """tinyr1's fields of the config (``tinyr1.training.fields.GRPOFields``; their defaults for trl's config)."""
        return self._run.settings

    @property
    def curriculum(self) -> Curriculum | None:
        return self._curriculum

    def uses_fast_path(self) -> bool:
        return self._fast.on

    def preflight(self) -> None:
        """Generate a few tokens and stop (``CollapseError``) if any weight or logit is NaN/inf; once per trainer.
        A stop is written to run.json (``collapsed``, with the reason) where the run folder is claimed."""
        if self._run.settings.preflight and not self._preflight_done:
            try:
                # every process: under ZeRO-3 the weights are gathered whole for the check (a collective)
                with unwrap_model_for_generation(self.model_wrapped, self.accelerator) as model:
                    guards.preflight_check(model, self.processing_class, bf16=bool(self.args.bf16))
            except CollapseError as err:
                self._run.collapsed(str(err))
                raise
        self._preflight_done = True

    def _before_training(self, checkpoint: str | None) -> None:
        self.preflight()
        if self._curriculum is not None and checkpoint:
            self._curriculum.resume(checkpoint)

    def _collapse(self) -> str | None:
        """Why the run stopped with exit 3, the same on every process (``rank_agreement``), or None."""
        self._run.run.facts["skipped_steps"] = self._nan.skipped
        return self._agreement.agreed or self._local_collapse()

    def _local_collapse(self) -> str | None:
        return (self._nan.collapsed or self._degenerate.collapsed or self._observer.reward_guard.collapsed
                or self._observer.failure or self._no_signal.collapsed)

    def recipe_values(self) -> dict:
        return {**self._run.recipe_values(self), "reward_funcs": list(self.reward_func_names)}

    def _fresh_inputs(self, count: int) -> list[dict]:
        """``count`` rows for dynamic sampling's refills: prompts drawn by the curriculum, else uniformly, each
        repeated ``num_generations`` times as trl's sampler lays them out."""
        groups = count // self.num_generations
        picks = self._curriculum.draw(groups) if self._curriculum is not None else \
            uniform_prompts(len(self.train_dataset), groups, self._sampling.generator)
        return [self.train_dataset[i] for i in picks for _ in range(self.num_generations)]

    def _saw_rewards(self, rewards, inputs, prompts, completions, completion_ids_list) -> None:
        """A scored batch, to the guards and samplers that read it (trl's rewards, gathered across processes)."""
        eos, limit = set(self.eos_token_ids), self.args.max_completion_length
        cut = [len(ids) >= limit and (not ids or ids[-1] not in eos) for ids in completion_ids_list]
        self._no_signal.observe(rewards, self.reward_weights, self.num_generations,
                                [completion_text(c) for c in completions], cut)
        if self._sampling is not None:
            self._sampling.saw(rewards)
        correct = correctness_index(self.reward_func_names)
        if self._curriculum is not None and len(rewards) == len(inputs) and correct is not None:  # one process
            right = (rewards[:, correct].nan_to_num() > 0).tolist()
            self._log_metrics(self._curriculum.update(inputs, right, self.num_generations))

    # ------------------------------------------------------------ trl's and transformers' methods overridden

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """trl's ``train`` inside the run folder (``run_session``); returns trl's ``TrainOutput``. Raises
        ``tinyr1.CollapseError`` when a guard stopped the run (run.json then says ``collapsed`` and why)."""
        with speaking(type(self.args).__name__):
            if not self._run.given:  # built in Python: config.yaml records the config (as it is now), model, rewards
                self._run.values = self.recipe_values()
            return self._run.train(self, super().train, resume_from_checkpoint, self._before_training,
                                   self._collapse, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)

    def _calculate_rewards(self, *args, **kwargs):
        rewards = super()._calculate_rewards(*args, **kwargs)
        if self.model.training and self._reads_rewards and not kwargs:  # trl calls it with four positional arguments
            self._saw_rewards(rewards, *args)
        return rewards

    def _generate_and_score_completions(self, inputs):
        if self._sampling is None or not self.model.training:
            return super()._generate_and_score_completions(inputs)
        batch, metrics = self._sampling.generate(
            inputs, super()._generate_and_score_completions, self._fresh_inputs, self._run.stop_requested,
            group_size=self.num_generations, weights=self.reward_weights,
            correctness=correctness_index(self.reward_func_names), slices=self.args.steps_per_generation,
            pad_token_id=self.processing_class.pad_token_id)
        self._log_metrics(metrics)
        return batch

    def _get_train_sampler(self, dataset=None):
        if self._curriculum is None:
            return super()._get_train_sampler(dataset)
        return self._curriculum.make_sampler(self.train_dataset if dataset is None else dataset, self.num_generations,
                                             self.args.generation_batch_size // self.num_generations,
                                             self.num_iterations * self.args.steps_per_generation)

    # Off the fast path both hand trl exactly what trl passed, so a trl whose signatures changed (outside the gate's
    # versions) still runs its own code.
    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        if not self._fast.on:
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)
        return self._fast.logps_and_entropies(self, super()._get_per_token_logps_and_entropies, *args, **kwargs)

    def _generate_single_turn(self, *args, **kwargs):
        if not self._fast.on:
            return super()._generate_single_turn(*args, **kwargs)
        return self._fast.generate_single_turn(self, super()._generate_single_turn, *args, **kwargs)

    def _save_checkpoint(self, model, trial):
        self._run.save_checkpoint(self, super()._save_checkpoint, model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint):
        self._run.load_optimizer_and_scheduler(self, super()._load_optimizer_and_scheduler, checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        self._run.saved()

    def _log_metrics(self, metrics: dict) -> None:
        for key, value in metrics.items():
            self._metrics["train"][key].append(float(value))


def _columns(dataset) -> list[str] | None:
    return list(getattr(dataset, "column_names", None) or []) or None
