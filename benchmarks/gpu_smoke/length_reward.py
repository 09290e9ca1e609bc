"""A reward that varies between completions even for a random tiny model (so advantages and gradients are non-zero)."""


def length_reward(completions, **kwargs) -> list[float]:
    texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
    return [len(t) / 100.0 for t in texts]
