"""reasoning-gym generators as a data source (``reasoning-gym:<name>``): their options, checked before anything
heavy loads, and their rows in GSM8K's shape (``question``, ``answer``, a worked ``solution`` where one is known).
"""

from __future__ import annotations

import dataclasses

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting

REASONING_GYM_PREFIX = "reasoning-gym:"
# reasoning-gym draws each split from its own seed stream so train and test never share generated questions.
_SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_003, "validation": 2_000_003}


def parse_dataset_options(options) -> dict:
    """``--dataset_options`` as a dict: from ``key=value`` strings (values read as YAML scalars) or a mapping.

    >>> parse_dataset_options(["min_terms=3", "max_digits=2", "allow_negation=true"])
    {'min_terms': 3, 'max_digits': 2, 'allow_negation': True}
    >>> parse_dataset_options({"min_terms": 2}), parse_dataset_options(None), parse_dataset_options("max_terms=4")
    ({'min_terms': 2}, {}, {'max_terms': 4})
    """
    import yaml

    if not options:
        return {}
    if isinstance(options, dict):
        return {str(k): v for k, v in options.items()}
    if isinstance(options, str):
        options = options.replace(",", " ").split()
    parsed = {}
    for item in options:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise TinyR1Error(f"{setting('dataset_options')} {item!r}: expected key=value, e.g. min_terms=3")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            parsed[key.strip()] = value
    return parsed


def _generator_config(name: str):
    import reasoning_gym.factory as factory

    if name not in factory.DATASETS:
        close = [n for n in factory.DATASETS if name in n or n in name][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see reasoning_gym.factory.DATASETS"
        raise TinyR1Error(f"reasoning-gym:{name}: no such generator{hint}")
    return factory.DATASETS[name][1]


def check_dataset_options(source: str, options) -> dict:
    """The options parsed and checked against the generator's config: a bad key or value is one line naming it."""
    parsed = parse_dataset_options(options)
    if not parsed:
        return parsed
    if not source.startswith(REASONING_GYM_PREFIX):
        raise TinyR1Error(f"{setting('dataset_options')} {' '.join(parsed)}: options apply to reasoning-gym:<name> "
                          f"sources only, not {source}")
    name = source[len(REASONING_GYM_PREFIX):]
    config_cls = _generator_config(name)
    valid = [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    for key, value in parsed.items():
        if key not in valid:
            raise TinyR1Error(f"{setting('dataset_options')}: {name} has no option {key!r}; its options are "
                              f"{', '.join(valid)}")
        default = defaults[key]
        if isinstance(default, (bool, int, float)) and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
            kind = {"bool": "true or false", "int": "an integer", "float": "a number"}[type(default).__name__]
            raise TinyR1Error(f"{setting('dataset_options')} {key}={value}: {name}'s {key} must be {kind} (default "
                              f"{default})")
    try:
        config = config_cls(**parsed, size=1, seed=0)
        if hasattr(config, "validate"):
            config.validate()
    except (AssertionError, ValueError, TypeError) as err:
        shown = " ".join(f"{k}={v}" for k, v in parsed.items())
        raise TinyR1Error(f"{setting('dataset_options')} {shown}: rejected by {name} "
                          f"({err or 'invalid value'})") from None
    return parsed


def chain_solution(expression: str) -> str | None:
    """A worked solution for a sum of terms, left to right, one step a line; None for other expressions.

    >>> print(chain_solution("3 + 4 - 9"))
    3 + 4 = 7
    7 - 9 = -2
    >>> chain_solution("3 * 4") is None
    True
    """
    tokens = expression.split()
    if len(tokens) < 3 or len(tokens) % 2 == 0 or any(op not in "+-" for op in tokens[1::2]):
        return None
    try:
        value = int(tokens[0])
        steps = []
        for op, term in zip(tokens[1::2], tokens[2::2], strict=True):
            new = value + int(term) if op == "+" else value - int(term)
            steps.append(f"{value} {op} {term} = {new}")
            value = new
    except ValueError:
        return None
    return "\n".join(steps)


def reasoning_gym_rows(name: str, split: str, limit: int | None, seed: int, options=None) -> list[dict]:
    import reasoning_gym

    options = check_dataset_options(REASONING_GYM_PREFIX + name, options)
    size = limit or 1000
    try:
        dataset = reasoning_gym.create_dataset(name, size=size, seed=seed + _SPLIT_SEED_OFFSET.get(split, 0),
                                               **options)
    except Exception as err:  # reasoning-gym raises ValueError/KeyError for unknown names
        msg = f"reasoning-gym:{name}: cannot generate ({err}); see reasoning_gym.factory.DATASETS"
        raise TinyR1Error(msg) from None
    rows = []
    for entry in dataset:
        metadata = entry.get("metadata") or {}
        cot = metadata.get("answer_cot") or ""
        solution = cot.split("####")[0].strip() if cot else None
        if solution is None and isinstance(metadata.get("expression"), str):
            solution = chain_solution(metadata["expression"])
        rows.append({"question": entry["question"], "answer": str(entry["answer"]), "solution": solution,
                     "_gold": True})
    return rows
