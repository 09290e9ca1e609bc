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
        super().__init__(model, args, *trl_args, callbacks=[*(callbacks or []), *self._run_callbacks], **trl_kwargs)
        self.facts = {"trainer": type(self).__name__}
