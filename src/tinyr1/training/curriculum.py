"""A curriculum by pass rate: each prompt's running pass rate, taken from its GRPO groups, steers what is drawn next.

GRPO learns only from prompts the model sometimes gets right. With ``curriculum: true``, ``tinyr1.GRPOTrainer``
holds a ``Curriculum`` and replaces trl's prompt sampler with its ``CurriculumSampler``, which draws each batch of
prompts by weight:

- a prompt not yet seen, or one the model gets right sometimes, has weight 1;
- a solved prompt (right in every completion of its last ``min_groups`` groups) is retired: weight ``retired``;
- a failed prompt (never right in its last ``min_groups`` groups) is revisited at weight ``revisit``.

"Right" is the correctness reward (``tinyr1.tasks.rewards.correctness_index``) paying more than 0. The rates are
updated from the rewards trl computes (the trainer's override of ``_calculate_rewards`` calls trl's own) and each
group's outcome is kept as a moving window of its last groups. The sampler lays prompts out as trl's does (each
prompt repeated ``num_generations`` times, each batch repeated for ``steps_per_generation`` x ``num_iterations``),
so the rest of trl's step is unchanged. The draws lag the rates by one batch: accelerate's data loader fetches a
batch ahead. Dynamic sampling's refills, where it is on too, are drawn the same way. The table and the sampler's
random state are saved in every checkpoint (``curriculum.json``) and restored on resume. Metrics per step:
``curriculum/solved``, ``curriculum/failed``, ``curriculum/learning`` (prompts between the two) and
``curriculum/seen``.

A difficulty schedule (``LevelSchedule``, optional): the prompts come in levels (the dataset column ``LEVEL``; for
reasoning-gym, one set of generator options a level, e.g. more terms and digits); only the levels opened so far are
drawn, and the next one
opens when the share of right completions over the last ``window`` groups at the newest open level reaches
``threshold``. Earlier levels stay in the draw, weighted by their pass rates like every prompt. Its state goes into
the same ``curriculum.json``; metric ``curriculum/level``.

One process only, like dynamic sampling: the rates come from each process's own rows.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path

import torch
from torch.utils.data import Sampler

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.tasks.rewards import correctness_index

logger = logging.getLogger(__name__)

INDEX = "_tinyr1_index"  # the dataset column that names each prompt's row
LEVEL = "_tinyr1_level"  # with a difficulty schedule: the column that gives each prompt's level
STATE_FILE = "curriculum.json"


def group_outcomes(keys: list, right: list[bool], group_size: int) -> list[tuple[int, float]]:
    """Each group's key (its first row's) and the fraction of its completions that were right.

    >>> group_outcomes([7, 7, 9, 9], [True, False, True, True], group_size=2)
    [(7, 0.5), (9, 1.0)]
    """
    outcomes = []
    for start in range(0, len(keys), group_size):
        group = right[start:start + group_size]
        outcomes.append((int(keys[start]), sum(group) / len(group)))
    return outcomes


class PassRates:
    """Each prompt's last ``window`` group outcomes (the fraction of its completions that were right).

    >>> rates = PassRates(window=2, min_groups=2, revisit=0.25, retired=0.0)
    >>> rates.update([0, 0, 1, 1], [True, True, False, False], group_size=2)
    >>> rates.update([0, 0, 1, 1], [True, True, False, True], group_size=2)
    >>> [rates.weight(i) for i in (0, 1, 2)]   # solved, learning, unseen
    [0.0, 1.0, 1.0]
    >>> rates.counts()
    {'seen': 2, 'solved': 1, 'failed': 0, 'learning': 1}
    """

    def __init__(self, window: int = 4, min_groups: int = 2, revisit: float = 0.25, retired: float = 0.0):
        self.window, self.min_groups, self.revisit, self.retired = window, min_groups, revisit, retired
        self.history: dict[int, deque] = {}

    def update(self, indices: list[int], right: list[bool], group_size: int) -> None:
        for index, outcome in group_outcomes(indices, right, group_size):
            self.history.setdefault(index, deque(maxlen=self.window)).append(outcome)

    def state(self, index: int) -> str:
        outcomes = self.history.get(index)
        if not outcomes or len(outcomes) < self.min_groups:
            return "unseen" if not outcomes else "learning"
        recent = list(outcomes)[-self.min_groups:]
        if all(o == 1.0 for o in recent):
            return "solved"
        if all(o == 0.0 for o in recent):
            return "failed"
        return "learning"

    def weight(self, index: int) -> float:
        return {"solved": self.retired, "failed": self.revisit}.get(self.state(index), 1.0)

    def counts(self) -> dict:
        states = [self.state(i) for i in self.history]
        return {"seen": len(states), **{s: states.count(s) for s in ("solved", "failed", "learning")}}

    def to_dict(self) -> dict:
        return {"window": self.window, "history": {str(k): list(v) for k, v in self.history.items()}}

    def load(self, data: dict) -> None:
        self.history = {int(k): deque(v, maxlen=self.window) for k, v in data.get("history", {}).items()}


class LevelSchedule:
    """Which levels of difficulty are open: level 0 at the start, the next once the newest open level's last
    ``window`` groups were right in at least ``threshold`` of their completions.

    >>> levels = LevelSchedule(count=3, threshold=0.8, window=2)
    >>> levels.update([0, 0, 0, 0], [True, True, True, False], group_size=2)   # two groups: 1.0 and 0.5
    >>> levels.update([0, 0], [True, True], group_size=2)                    # the last two: 0.5 and 1.0
    >>> levels.level
    0
    >>> levels.update([0, 0, 1, 1], [True, True, False, False], group_size=2)  # 1.0 and 1.0: level 1 opens
    >>> levels.level, levels.opened_at
    (1, [4])
    """

    def __init__(self, count: int, threshold: float, window: int = 32):
        self.count, self.threshold, self.window = count, threshold, window
        self.level, self.groups, self.opened_at = 0, 0, []
        self.recent: deque = deque(maxlen=window)

    def update(self, levels: list[int], right: list[bool], group_size: int) -> None:
        for level, outcome in group_outcomes(levels, right, group_size):
            self.groups += 1
            if level != self.level:
                continue
            self.recent.append(outcome)
            if (self.level + 1 < self.count and len(self.recent) == self.window
                    and sum(self.recent) / self.window >= self.threshold):
                self.level += 1
                self.opened_at.append(self.groups)
                self.recent.clear()

    def to_dict(self) -> dict:
        return {"level": self.level, "groups": self.groups, "opened_at": self.opened_at, "recent": list(self.recent)}

    def load(self, data: dict) -> None:
        self.level, self.groups = int(data["level"]), int(data["groups"])
        self.opened_at, self.recent = list(data["opened_at"]), deque(data["recent"], maxlen=self.window)


class CurriculumSampler(Sampler):
    """trl's ``RepeatSampler`` layout, with each batch of distinct prompts drawn by ``PassRates.weight`` when it is
    needed (lazily, so the draws follow the rates as they change)."""

    def __init__(self, num_samples: int, rates: PassRates, mini_repeat_count: int, batch_size: int,
                 repeat_count: int, seed: int, levels: LevelSchedule | None = None,
                 row_levels: list[int] | None = None):
        self.num_samples, self.rates, self.levels = num_samples, rates, levels
        self.row_levels = None if row_levels is None else torch.tensor(row_levels)
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (self.num_samples // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count

    def draw(self, count: int | None = None) -> list[int]:
        """``count`` (default ``batch_size``) distinct prompts, by weight, from the open levels; prompts of weight 0
        only when too few others remain, and those of a level not yet open only when the open ones hold too few."""
        count = min(count or self.batch_size, self.num_samples)
        weights = torch.tensor([self.rates.weight(i) for i in range(self.num_samples)], dtype=torch.float64)
        allowed = torch.ones(self.num_samples, dtype=torch.bool)
        if self.levels is not None:
            open_rows = self.row_levels <= self.levels.level
            if int(open_rows.sum()) >= count:  # else every level: too few open prompts to fill the batch
                allowed = open_rows
        weights = weights * allowed
        live = int((weights > 0).sum())
        if live < count:
            weights = weights + ((weights == 0) & allowed) * 1e-3  # retired prompts fill in, not an empty batch
        return torch.multinomial(weights, count, replacement=False, generator=self.generator).tolist()

    def __iter__(self):
        for _ in range(self.num_samples // self.batch_size):
            chosen = self.draw()
            for _ in range(self.repeat_count):
                for index in chosen:
                    yield from [index] * self.mini_repeat_count


class Curriculum:
    """The pass-rate table, the level schedule where the dataset has a ``LEVEL`` column, and the sampler that draws
    by them (module docstring). ``tinyr1.GRPOTrainer`` holds one where the config turns it on and calls it from its
    overrides of trl's ``_get_train_sampler`` and ``_calculate_rewards``."""

    def __init__(self, settings, dataset, seed: int):
        self.rates = PassRates(min_groups=settings.curriculum_min_groups, revisit=settings.curriculum_revisit)
        self.levels: LevelSchedule | None = None
        if LEVEL in (dataset.column_names or []):
            self.levels = LevelSchedule(max(dataset[LEVEL]) + 1, settings.curriculum_level_threshold,
                                        settings.curriculum_level_window)
        self.seed = seed
        self.sampler: CurriculumSampler | None = None
        self.generator_state: list | None = None  # the sampler's random state from a checkpoint, on resume

    def make_sampler(self, dataset, group_size: int, prompts_per_batch: int, repeat_count: int) -> CurriculumSampler:
        """trl's sampler replaced: ``prompts_per_batch`` distinct prompts a batch, each repeated ``group_size``
        times, each batch ``repeat_count`` times (trl's ``RepeatSampler`` layout)."""
        self.sampler = CurriculumSampler(len(dataset), self.rates, group_size, prompts_per_batch, repeat_count,
                                         self.seed, self.levels,
                                         list(dataset[LEVEL]) if self.levels is not None else None)
        if self.generator_state is not None:
            self.sampler.generator.set_state(torch.tensor(self.generator_state, dtype=torch.uint8))
        return self.sampler

    def update(self, inputs: list[dict], right: list[bool], group_size: int) -> dict[str, float]:
        """The rates (and levels) after a scored batch (``right``: each completion's correctness); the metrics."""
        self.rates.update([row[INDEX] for row in inputs], right, group_size)
        metrics = {f"curriculum/{name}": float(count) for name, count in self.rates.counts().items()}
        if self.levels is not None:
            self.levels.update([row[LEVEL] for row in inputs], right, group_size)
            metrics["curriculum/level"] = float(self.levels.level)
        return metrics

    def draw(self, groups: int) -> list[int]:
        """Dynamic sampling's refills drawn like every batch: by pass rate, from the open levels (with replacement
        only where the training set holds fewer prompts than ``groups``)."""
        picks = self.sampler.draw(groups)
        return (picks * groups)[:groups]

    def resume(self, checkpoint) -> None:
        """The rates, schedule and sampler state a checkpoint saved (a warning where it holds none)."""
        state = load_curriculum(self.rates, checkpoint, self.levels)
        if state is None:
            logger.warning(f"warning: {checkpoint} holds no curriculum state; pass rates start afresh")
        self.generator_state = state.get("generator") if state else None

    def save(self, folder: Path) -> None:
        state = {"rates": self.rates.to_dict(),
                 "generator": self.sampler.generator.get_state().tolist() if self.sampler else None}
        if self.levels is not None:
            state["levels"] = self.levels.to_dict()
        write_text(Path(folder) / STATE_FILE, json.dumps(state))  # whole or not at all: a kill mid-write


def load_curriculum(rates: PassRates, checkpoint: str | Path | None,
                    levels: LevelSchedule | None = None) -> dict | None:
    """The state saved in ``checkpoint`` (rates loaded into ``rates``, the schedule into ``levels``), or None where
    there is none."""
    if not checkpoint or not (Path(checkpoint) / STATE_FILE).is_file():
        return None
    file = Path(checkpoint) / STATE_FILE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
        rates.load(state["rates"])
        if levels is not None and "levels" in state:
            levels.load(state["levels"])
    except (ValueError, KeyError, TypeError):
        raise TinyR1Error(f"{file}: damaged curriculum state; resume from another checkpoint") from None
    return state


def check_curriculum(reward_names: list[str], num_processes: int) -> None:
    """One line, before anything heavy loads, where the curriculum cannot run as documented."""
    if correctness_index(reward_names) is None:
        raise TinyR1Error(f"curriculum: needs a correctness reward to judge pass rates (a reward whose name starts "
                          f"with 'correct'); reward_funcs are {', '.join(reward_names)}")
    if num_processes > 1:
        raise TinyR1Error(f"curriculum: runs on one process (CPU or one GPU); this launch has {num_processes}")
