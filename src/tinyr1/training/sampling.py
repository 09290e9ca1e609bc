"""The recipe's opt-in sampling options for GRPO, applied to whichever trainer class ``tinyr1 train`` picked:
dynamic sampling (``tinyr1.training.dynamic_sampling``) and the pass-rate curriculum (``tinyr1.training.curriculum``).

    check_sampling_options(script, training, reward_funcs)          # before anything heavy loads
    rows = index_rows(rows) if script.curriculum else rows          # the dataset names each prompt's row
    trainer_class, callbacks = apply_sampling_options(script, training, trainer_class)
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from tinyr1.infra.errors import TinyR1Error
from tinyr1.training.curriculum import (
    INDEX,
    LEVEL,
    LevelSchedule,
    PassRates,
    check_curriculum,
    check_levels,
    load_curriculum,
    with_curriculum,
)
from tinyr1.training.dynamic_sampling import check_dynamic_sampling, with_dynamic_sampling


def check_sampling_options(script, training, reward_funcs) -> None:
    if script.dynamic_sampling or script.curriculum:
        from tinyr1.cpu.touchpoints import fast_path_check

        check = fast_path_check("sampling")
        if not check.allowed:
            raise TinyR1Error(f"dynamic_sampling/curriculum: {check.reason}; these options override trl internals "
                              "verified only there (tinyr1.cpu.touchpoints): drop them or install that trl")
    if script.dynamic_sampling:
        check_dynamic_sampling(training.world_size)
    if script.curriculum:
        check_curriculum([f.__name__ for f in reward_funcs], training.world_size)
    check_levels(script)


def index_rows(rows: list[dict]) -> list[dict]:
    """Each row with its position, so the curriculum can keep a pass rate per prompt."""
    return [{**row, INDEX: i} for i, row in enumerate(rows)]


def level_rows(script, load) -> list[dict]:
    """With a difficulty schedule, ``load(options)`` once a level, each row tagged with its level (``LEVEL``)."""
    return [{**row, LEVEL: number} for number, options in enumerate(check_levels(script)) for row in load(options)]


class CurriculumCheckpoint(TrainerCallback):
    """Writes the curriculum's state into every checkpoint the Trainer saves (``trainer`` is set once built)."""

    trainer = None

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.trainer is not None and folder.is_dir() and state.is_world_process_zero:
            self.trainer.save_curriculum(folder)


def apply_sampling_options(script, training, trainer_class: type) -> tuple[type, list]:
    """``trainer_class`` with the enabled options in front of it, and the callbacks they need."""
    callbacks = []
    if script.dynamic_sampling:
        trainer_class = with_dynamic_sampling(trainer_class, script.dynamic_sampling_max_rounds,
                                              script.dynamic_sampling_tolerance, training.seed)
    if script.curriculum:
        rates = PassRates(min_groups=script.curriculum_min_groups, revisit=script.curriculum_revisit)
        levels = None
        if script.curriculum_levels:
            levels = LevelSchedule(len(script.curriculum_levels), script.curriculum_level_threshold,
                                   script.curriculum_level_window)
        state = load_curriculum(rates, training.resume_from_checkpoint, levels)
        if training.resume_from_checkpoint and state is None:
            print(f"warning: {training.resume_from_checkpoint} holds no curriculum state; pass rates start afresh",
                  flush=True)
        trainer_class = with_curriculum(trainer_class, rates, state.get("generator") if state else None, levels)
        callbacks.append(CurriculumCheckpoint())
    return trainer_class, callbacks
