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
