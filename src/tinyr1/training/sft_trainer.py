"""``tinyr1.SFTTrainer``: trl's ``SFTTrainer`` inside a tinyr1 run folder, with trl's constructor.

    from tinyr1 import SFTTrainer                  # the one changed line of a trl script
    trainer = SFTTrainer(model=model, args=SFTConfig(...), train_dataset=dataset, peft_config=lora)
    trainer.train()

What changing the import adds (``tinyr1.training.run_session``): ``output_dir`` claimed when training starts
(a folder of yours is refused), run.json, config.yaml and metrics.jsonl, checkpoints stamped as the run's and a
``resume_from_checkpoint="latest"`` checked against the run's settings, out of memory answered with remedies sized
to the settings (``tinyr1.OutOfMemoryError``), a clean stop on Ctrl-C/SIGTERM and ``max_train_minutes``. ``args``
is trl's ``SFTConfig`` or ``tinyr1.SFTConfig`` (trl's plus ``tinyr1.training.fields.SFTFields``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import trl

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting, speaking
from tinyr1.models.precision import keep_trainers_adapter_sums_fp32
from tinyr1.run_folder.folder import RunDir
from tinyr1.run_folder.ownership import entries
from tinyr1.training.config import SFTConfig, trainer_settings
from tinyr1.training.fields import SFTFields
from tinyr1.training.rank_agreement import RankAgreement
from tinyr1.training.run_session import RunSession

logger = logging.getLogger(__name__)


class SFTTrainer(trl.SFTTrainer):
    """trl's ``SFTTrainer`` inside a tinyr1 run folder (module docstring). Beyond trl's arguments: ``run_folder``,
    ``recipe_values`` and ``finish``, as ``tinyr1.GRPOTrainer`` takes them. Every method of trl's it overrides is
    below, handing the work to its ``RunSession``."""

    def __init__(self, model, args=None, *trl_args, callbacks=None, run_folder: RunDir | None = None,
                 recipe_values: dict | None = None, finish: bool = True, **trl_kwargs):
        if args is None:  # trl's own default, with tinyr1's fields
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = SFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-SFT")
        with speaking(type(args).__name__):
            self._run = RunSession(trainer_settings(args, SFTFields), "sft", args, run_folder, recipe_values, finish,
                                   "max_length")
            given = trl_kwargs.get("train_dataset")
            before = entries(Path(args.output_dir))
            agreement = RankAgreement(lambda: None, self._run.signals, self._run.budget)  # last: sees the others
            super().__init__(model, args, *trl_args, callbacks=[*(callbacks or []), *self._run.callbacks, agreement],
                             **trl_kwargs)
            self._run.made_by_trainer = entries(Path(args.output_dir)) - before
            keep_trainers_adapter_sums_fp32(self.model, args)  # else a LoRA's first updates vanish in bf16
            self.facts = {"trainer": type(self).__name__}
            self._run.facts.update(self.facts)
            # trl turns a plain TrainingArguments into its SFTConfig: read the one it keeps
            check_trainable(self.train_dataset, len(given) if hasattr(given, "__len__") else None,
                            getattr(self.args, "max_length", None))

    @property
    def run(self) -> RunDir | None:
        return self._run.run

    @property
    def stopped_by(self) -> int | None:
        return self._run.stopped_by

    def recipe_values(self) -> dict:
        return self._run.recipe_values(self)

    # ------------------------------------------------------------ trl's and transformers' methods overridden

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None, **kwargs):
        """trl's ``train`` inside the run folder (``tinyr1.training.run_session``); returns trl's ``TrainOutput``."""
        with speaking(type(self.args).__name__):
            if not self._run.given:  # built in Python: config.yaml records the config as it is now
                self._run.values = self.recipe_values()
            return self._run.train(self, super().train, resume_from_checkpoint, lambda checkpoint: None,
                                   lambda: None, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs)

    def _save_checkpoint(self, model, trial):
        self._run.save_checkpoint(self, super()._save_checkpoint, model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint):
        self._run.load_optimizer_and_scheduler(self, super()._load_optimizer_and_scheduler, checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        self._run.saved()


def _segments(labels: list[int], lengths: list[int] | None) -> list[list[int]]:
    """A row's labels split into the examples it holds (a packed row holds several, ``seq_lengths``)."""
    if not lengths:
        return [labels]
    parts, start = [], 0
    for length in lengths:
        parts.append(labels[start:start + length])
        start += length
    return parts


def check_trainable(dataset, rows: int | None, max_length: int | None) -> None:
    """After trl tokenized and truncated the data: the examples cut at ``max_length`` before their answer begins
    teach nothing (every label masked). Some: said in one line. All: refused before training, in one line, since
    the run would train on nothing (loss 0, grad_norm 0) and end as if it had worked."""
    columns = getattr(dataset, "column_names", None) or []
    if "labels" not in columns or not hasattr(dataset, "__len__"):
        return  # a streamed dataset, or every token trains (no prompt/completion split): nothing to count
    wanted = [c for c in ("labels", "seq_lengths") if c in columns]
    examples = learning = 0
    for batch in dataset.select_columns(wanted).iter(batch_size=1024):  # a batch at a time: a large set stays small
        for labels, seq in zip(batch["labels"], batch.get("seq_lengths") or [None] * len(batch["labels"]),
                               strict=True):
            for part in _segments(labels, seq):
                examples += 1
                learning += any(label != -100 for label in part)
    total = max(rows or 0, examples)  # trl drops some cut rows itself when it does not pack
    cut = total - learning
    if learning == 0:
        raise TinyR1Error(f"max_length {max_length}: every one of the {total} training rows is cut before its answer "
                          f"begins, so there is nothing to train on (loss 0); raise {setting('max_length')} above the "
                          "longest prompt's tokens, or shorten the prompts")
    if cut:
        logger.info(f"max_length {max_length}: {cut} of {total} training rows are cut before their answer begins "
                    f"and teach nothing; raise {setting('max_length')} to train on them")

