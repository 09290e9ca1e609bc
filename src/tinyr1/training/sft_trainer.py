"""``tinyr1.SFTTrainer``: trl's ``SFTTrainer`` inside a tinyr1 run folder, with trl's constructor.

    from tinyr1 import SFTTrainer                  # the one changed line of a trl script
    trainer = SFTTrainer(model=model, args=SFTConfig(...), train_dataset=dataset, peft_config=lora)
    trainer.train()

What changing the import adds (``tinyr1.training.run_trainer``): ``output_dir`` claimed when training starts
(a folder of yours is refused), run.json, config.yaml and metrics.jsonl, checkpoints stamped as the run's and a
``resume_from_checkpoint="latest"`` checked against the run's settings, out of memory answered with remedies sized
to the settings (``tinyr1.OutOfMemoryError``), a clean stop on Ctrl-C/SIGTERM and ``max_train_minutes``. ``args``
is trl's ``SFTConfig`` or ``tinyr1.SFTConfig`` (trl's plus ``tinyr1.training.fields.SFTFields``).
"""

from __future__ import annotations

import trl

from tinyr1.infra.errors import TinyR1Error
from tinyr1.models.precision import keep_adapter_sums_fp32
from tinyr1.run_folder.folder import RunDir
from tinyr1.training.config import SFTConfig, trainer_settings
from tinyr1.training.fields import SFTFields
from tinyr1.training.run_trainer import RunFolderMixin


class SFTTrainer(RunFolderMixin, trl.SFTTrainer):
    """trl's ``SFTTrainer`` inside a tinyr1 run folder (module docstring). Beyond trl's arguments: ``run_folder``,
    ``recipe_values`` and ``finish``, as ``tinyr1.GRPOTrainer`` takes them."""

    command = "sft"

    def __init__(self, model, args=None, *trl_args, callbacks=None, run_folder: RunDir | None = None,
                 recipe_values: dict | None = None, finish: bool = True, **trl_kwargs):
        if args is None:  # trl's own default, with tinyr1's fields
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = SFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-SFT")
        self._setup_run_folder(trainer_settings(args, SFTFields), args.output_dir, args.world_size, run_folder,
                               recipe_values, finish)
        given = trl_kwargs.get("train_dataset")
        super().__init__(model, args, *trl_args, callbacks=[*(callbacks or []), *self._run_callbacks], **trl_kwargs)
        if args.bf16 and args.device.type == "cpu":  # else a LoRA's first updates vanish in bf16 sums
            keep_adapter_sums_fp32(self.model)
        self.facts = {"trainer": type(self).__name__}
        check_trainable(self.train_dataset, len(given) if hasattr(given, "__len__") else None, args.max_length)


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
                          "begins, so there is nothing to train on (loss 0); raise --max_length above the longest "
                          "prompt's tokens, or shorten the prompts")
    if cut:
        print(f"max_length {max_length}: {cut} of {total} training rows are cut before their answer begins and teach "
              "nothing; raise --max_length to train on them", flush=True)

