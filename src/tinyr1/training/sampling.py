"""The opt-in sampling options of ``tinyr1.GRPOTrainer`` — dynamic sampling (``tinyr1.training.dynamic_sampling``)
and the pass-rate curriculum (``tinyr1.training.curriculum``) — checked before anything heavy loads, and the
dataset columns and checkpoint state they need.

    check_sampling_options(settings, world_size, reward_names)     # one line, exit 2, where they cannot run
    dataset = with_index(dataset)                                   # the curriculum names each prompt's row
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from tinyr1.cpu.touchpoints import fast_path_check
from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.training.curriculum import INDEX, check_curriculum
from tinyr1.training.dynamic_sampling import check_dynamic_sampling
from tinyr1.training.fields import GRPOFields

# feature switch -> the options that only it reads
FEATURE_OPTIONS = {"dynamic_sampling": ("dynamic_sampling_max_rounds", "dynamic_sampling_tolerance"),
                   "curriculum": ("curriculum_min_groups", "curriculum_revisit", "curriculum_level_threshold",
                                  "curriculum_level_window")}


def check_disabled_options(settings, switches: dict[str, tuple[str, ...]] | None = None,
                           how: str | None = None) -> None:
    """An option of a feature that is off does nothing: one set away from its default is refused, naming the flag
    that turns the feature on (or ``how``). ``switches``: feature -> its options (default ``FEATURE_OPTIONS``)."""
    for switch, options in (switches or FEATURE_OPTIONS).items():
        if getattr(settings, switch, None):
            continue
        for option in options:
            default = _default(settings, option)
            value = getattr(settings, option, default)
            if value != default:
                how = how or f"turn it on with {setting(switch, True)} ({switch}: true in a recipe)"
                raise TinyR1Error(f"{option} {value}: an option of {switch}, which is off, so it would do nothing; "
                                  f"{how}, or drop {option}")


def _default(settings, option: str):
    fields = getattr(type(settings), "__dataclass_fields__", {})
    found = fields.get(option) or GRPOFields.__dataclass_fields__.get(option)
    return None if found is None else found.default


def check_sampling_options(settings, world_size: int, reward_names: list[str]) -> None:
    """Dynamic sampling and the curriculum, where they are on: the trl version they were verified on, one process,
    a correctness reward for the curriculum; where they are off, none of their options set."""
    check_disabled_options(settings)
    if settings.dynamic_sampling or settings.curriculum:
        check = fast_path_check("sampling")
        if not check.allowed:
            raise TinyR1Error(f"dynamic_sampling/curriculum: {check.reason}; these options override trl internals "
                              "verified only there (tinyr1.cpu.touchpoints): drop them or install that trl")
    if settings.dynamic_sampling:
        check_dynamic_sampling(world_size)
    if settings.curriculum:
        check_curriculum(reward_names, world_size)


def index_rows(rows: list[dict]) -> list[dict]:
    """Each row with its position, so the curriculum can keep a pass rate per prompt."""
    return [{**row, INDEX: i} for i, row in enumerate(rows)]


def with_index(dataset):
    """A ``datasets.Dataset`` with the ``INDEX`` column (kept where it already has one)."""
    if INDEX in (dataset.column_names or []):
        return dataset
    return dataset.add_column(INDEX, list(range(len(dataset))))


class CurriculumCheckpoint(TrainerCallback):
    """Writes the curriculum's state (``tinyr1.training.curriculum.Curriculum``) into every checkpoint saved."""

    def __init__(self, curriculum):
        self.curriculum = curriculum

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and state.is_world_process_zero:
            self.curriculum.save(folder)
