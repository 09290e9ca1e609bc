"""``tinyr1 train``'s prompts: the source's rows (one set a level with a difficulty schedule) or rows given in
Python, those longer than ``max_prompt_tokens`` dropped and counted, as a ``datasets.Dataset``."""

from __future__ import annotations

import logging

from datasets import Dataset

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.tasks.data import load_prompt_rows
from tinyr1.tasks.reasoning_gym import REASONING_GYM_PREFIX, check_dataset_options, parse_dataset_options
from tinyr1.training.curriculum import LEVEL
from tinyr1.training.sampling import index_rows

logger = logging.getLogger(__name__)


def prompt_length(tokenizer, prompt: list[dict]) -> int:
    """Tokens of a chat prompt as the model will see it. ``apply_chat_template(tokenize=True)`` returns a
    BatchEncoding under transformers 5, whose ``len()`` is its number of keys (2), not of tokens."""
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_levels(script, curriculum: bool) -> list[dict]:
    """Each level's generator options (``dataset_options`` with the level's on top), checked before anything heavy
    loads; [] without a schedule. ``curriculum``: whether the trainer's curriculum is on (the schedule runs in it)."""
    if not script.curriculum_levels:
        return []
    if not curriculum:
        raise TinyR1Error("curriculum_levels: a difficulty schedule runs inside the curriculum; add "
                          f"{setting('curriculum', True)}, or drop curriculum_levels")
    if not script.dataset_name.startswith(REASONING_GYM_PREFIX):
        raise TinyR1Error(f"curriculum_levels: levels are reasoning-gym generator options; dataset_name "
                          f"{script.dataset_name} is not a reasoning-gym:<name> source")
    base = parse_dataset_options(script.dataset_options)
    levels = []
    for number, level in enumerate(script.curriculum_levels):
        try:
            levels.append(check_dataset_options(script.dataset_name, {**base, **parse_dataset_options(level)}))
        except TinyR1Error as err:
            raise TinyR1Error(f"curriculum_levels[{number}] ({level}): {err}") from None
    return levels


def source_rows(script, curriculum: bool) -> list[dict]:
    """The recipe's prompt rows: one load, or with a difficulty schedule one a level, each row tagged with its level
    (``LEVEL``)."""
    def load(options):
        return load_prompt_rows(script.dataset_name, script.dataset_split, script.dataset_limit, script.dataset_seed,
                                script.system_prompt, script.skip_bad_rows, options)

    if not script.curriculum_levels:
        return load(script.dataset_options)
    levels = check_levels(script, curriculum)
    return [{**row, LEVEL: number} for number, options in enumerate(levels) for row in load(options)]


def build_dataset(script, tokenizer, rows: list[dict] | None = None, curriculum: bool = False,
                  source: str | None = None):
    """The training prompts (``rows`` where given, else the recipe's source), without those longer than
    ``max_prompt_tokens`` (dropped and counted); indexed for the curriculum. ``source`` names where the rows came
    from in the line printed."""
    source = source or f"{script.dataset_name} ({script.dataset_split})"
    rows = rows if rows is not None else source_rows(script, curriculum)
    kept = [{key: r[key] for key in ("prompt", "answer", LEVEL) if key in r} for r in rows
            if prompt_length(tokenizer, r["prompt"]) <= script.max_prompt_tokens]
    dropped = len(rows) - len(kept)
    levels = f" in {len(script.curriculum_levels)} levels" if script.curriculum_levels and LEVEL in rows[0] else ""
    logger.info(f"data: {len(kept)} prompts from {source}{levels}"
                + (f"; dropped {dropped} longer than max_prompt_tokens={script.max_prompt_tokens}" if dropped else ""))
    if not kept:
        raise TinyR1Error(f"max_prompt_tokens={script.max_prompt_tokens}: every prompt is longer; raise it")
    return Dataset.from_list(index_rows(kept) if curriculum else kept)
