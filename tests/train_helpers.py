"""Rewards for training tests: a random tiny model never earns the recipe's rewards, so every advantage would be
zero and no weight would move. These give completions different scores, as a real task would."""


def length_reward(completions, **kwargs) -> list[float]:
    """Longer completions score higher (a varying, finite reward)."""
    return [float(len(c[-1]["content"] if isinstance(c, list) else c)) for c in completions]


def wrong_signature(text):
    """A custom reward written for single strings, not trl's keyword batch: must fail at start-up, not at step 1."""
    return [len(text)]


def returns_a_number(completions, **kwargs):
    """A custom reward that returns one number for the batch instead of one per completion."""
    return 1.0


def nan_reward(completions, **kwargs) -> list[float]:
    """A broken reward: NaN for every completion (passes the start-up sample call, which accepts any float)."""
    return [float("nan")] * len(completions)


def none_reward(completions, **kwargs):
    """None for every completion: to trl, 'not applicable' to all of them, step after step."""
    return [None] * len(completions)


def one_value_reward(completions, **kwargs) -> list[float]:
    """Right for the one-completion sample call at start-up, wrong at step 1: one value for the whole batch."""
    return [1.0]


def correct_always(completions, **kwargs) -> list[float]:
    """Named as a correctness reward (the curriculum judges pass rates by it) and right for every completion."""
    return [1.0] * len(completions)


def raising_reward(completions, **kwargs) -> list[float]:
    """Passes the one-completion sample call at start-up, then fails at step 1 like a reward with a bug."""
    if len(completions) == 1:
        return [0.0]
    return [len(completions) / (len(completions) - len(completions)) for _ in completions]


def exiting_reward(completions, **kwargs) -> list[float]:
    """Passes the sample call, then calls sys.exit at step 1 (a reward that gives up on a lost server)."""
    import sys

    if len(completions) > 1:
        sys.exit("reward server gone")
    return [0.0]


def _second_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "1"


def nan_on_the_second_process(completions, **kwargs) -> list[float]:
    """Lengths on the first process, NaN on the second (past the one-completion sample call at start-up): a guard
    that fires on one process only."""
    if len(completions) > 1 and _second_process():
        return [float("nan")] * len(completions)
    return length_reward(completions)


def raises_on_the_second_process(completions, **kwargs) -> list[float]:
    """Lengths on the first process; on the second a reward that raises at step 1 (a lost judge server)."""
    if len(completions) > 1 and _second_process():
        raise RuntimeError("the judge went away")
    return length_reward(completions)
