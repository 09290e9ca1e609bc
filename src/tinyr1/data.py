"""Data: one loader for every source, turning GSM8K-style rows into the recipe's prompt rows.

``train``, ``eval`` and ``sft`` all load through ``load_examples``; ``tinyr1 prepare`` writes its output:

    tinyr1 prepare --dataset_name ../shared/data/gsm8k --split train --output train.jsonl
    tinyr1 prepare --dataset_name reasoning-gym:gsm_symbolic --limit 100 --seed 1 --output sym.jsonl

Sources (``--dataset_name``):
- a hub id, default ``openai/gsm8k`` (config ``main``), through ``datasets.load_dataset``;
- ``modelscope/gsm8k`` through the ``modelscope`` package, for users who cannot reach the hub;
- a local folder holding ``<split>.jsonl`` / ``.json`` / ``.parquet``, or one such file;
- ``reasoning-gym:<name>`` (e.g. ``gsm_symbolic``), generated offline with ``--limit`` rows from ``--seed``, and
  the generator's own options from ``--dataset_options key=value ...`` (a mapping in a YAML recipe):

    tinyr1 prepare --dataset_name reasoning-gym:chain_sum --dataset_options min_terms=3 max_terms=3 max_digits=2 \
        --limit 500 --output x.jsonl
Rows need ``question`` and ``answer`` (GSM8K's worked answer ending in ``#### <gold>``); rows that already have a
``prompt`` (a file written by ``prepare``) are taken as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path

from tinyr1.answers import SYSTEM_PROMPT, extract_hash_answer
from tinyr1.errors import TinyR1Error
from tinyr1.jsonl import read_jsonl, read_text, write_jsonl
from tinyr1.paths import check_output_file, looks_local

DEFAULT_DATASET = "openai/gsm8k"
REASONING_GYM_PREFIX = "reasoning-gym:"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
# reasoning-gym draws each split from its own seed stream so train and test never share generated questions.
_SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_003, "validation": 2_000_003}
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def default_gsm8k_dir() -> Path:
    """Where real GSM8K lives on this project's machines: ``$TINYR1_GSM8K_DIR`` or ``../shared/data/gsm8k``."""
    env = os.environ.get("TINYR1_GSM8K_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"


def strip_calculator_annotations(text: str) -> str:
    """GSM8K's ``<<48/2=24>>`` calculator annotations removed.

    >>> strip_calculator_annotations("48/2 = <<48/2=24>>24 clips")
    '48/2 = 24 clips'
    """
    return _CALCULATOR.sub("", text)


def build_prompt(question: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """The recipe's chat prompt: its system prompt, then the question as the user turn."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


# ---------------------------------------------------------------- raw rows from each kind of source


def read_rows_file(path: Path) -> list[dict]:
    """Rows of one local ``.jsonl``, ``.json`` (a list of objects, or JSON lines) or ``.parquet`` file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for a bad file
            raise TinyR1Error(f"{path}: not a readable parquet file ({err})") from None
    if path.suffix == ".json":
        text = read_text(path)
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as err:
                raise TinyR1Error(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise TinyR1Error(f"{path}: expected a list of JSON objects")
            return rows
    return read_jsonl(path)


def _local_file(path: Path, split: str) -> Path:
    if path.is_file():
        return path
    candidates = [path / f"{split}{s}" for s in DATA_SUFFIXES] + [path / "main" / f"{split}{s}" for s in DATA_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TinyR1Error(f"{path}: no {split}.jsonl, {split}.json or {split}.parquet in this folder")


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
            raise TinyR1Error(f"--dataset_options {item!r}: expected key=value, e.g. min_terms=3")
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
        raise TinyR1Error(f"--dataset_options {' '.join(parsed)}: options apply to reasoning-gym:<name> sources "
                          f"only, not {source}")
    name = source[len(REASONING_GYM_PREFIX):]
    config_cls = _generator_config(name)
    valid = [f.name for f in dataclasses.fields(config_cls) if f.name not in ("seed", "size")]
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    for key, value in parsed.items():
        if key not in valid:
            raise TinyR1Error(f"--dataset_options: {name} has no option {key!r}; its options are {', '.join(valid)}")
        default = defaults[key]
        if isinstance(default, (bool, int, float)) and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)):
            kind = {"bool": "true or false", "int": "an integer", "float": "a number"}[type(default).__name__]
            raise TinyR1Error(f"--dataset_options {key}={value}: {name}'s {key} must be {kind} (default {default})")
    try:
        config = config_cls(**parsed, size=1, seed=0)
        if hasattr(config, "validate"):
            config.validate()
    except (AssertionError, ValueError, TypeError) as err:
        shown = " ".join(f"{k}={v}" for k, v in parsed.items())
        raise TinyR1Error(f"--dataset_options {shown}: rejected by {name} ({err or 'invalid value'})") from None
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


def _reasoning_gym_rows(name: str, split: str, limit: int | None, seed: int, options=None) -> list[dict]:
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


def _hub_rows(source: str, split: str) -> list[dict]:
    if source.startswith("modelscope/") or source.startswith("modelscope:"):
        try:
            from modelscope.msdatasets import MsDataset
        except ImportError:
            raise TinyR1Error(f"{source}: the modelscope package is not installed; pip install modelscope") from None
        name = source.split(":", 1)[1] if source.startswith("modelscope:") else source
        try:
            return list(MsDataset.load(name, subset_name="main", split=split))
        except Exception as err:
            raise TinyR1Error(f"{source}: ModelScope could not load split {split!r} ({err})") from None
    import datasets

    config = "main" if source.rstrip("/").endswith("gsm8k") else None
    try:
        return list(datasets.load_dataset(source, config, split=split))
    except Exception as err:  # offline, a wrong name or a wrong split
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TinyR1Error(
            f"{source}: could not load split {split!r} from the Hugging Face hub ({first}); check the name and your "
            "connection, or pass a local folder with train.jsonl/test.jsonl"
        ) from None


def load_raw_rows(source: str, split: str = "train", limit: int | None = None, seed: int = 0,
                  options=None) -> list[dict]:
    """Rows as the source has them (GSM8K: ``question`` and ``answer``), from any source form above."""
    if not source.strip():
        raise TinyR1Error("dataset_name is empty; give a hub id, a local file or folder, or reasoning-gym:<name>")
    if source.startswith(REASONING_GYM_PREFIX):
        return _reasoning_gym_rows(source[len(REASONING_GYM_PREFIX):], split, limit, seed, options)
    check_dataset_options(source, options)
    path = Path(source).expanduser()
    if path.exists():
        return read_rows_file(_local_file(path, split))
    if looks_local(source) or "/" not in source:  # a hub dataset id is always owner/name
        raise TinyR1Error(f"{source}: no such file or folder (and not a hub id of the form owner/name)")
    return _hub_rows(source, split)


# ---------------------------------------------------------------- normalised examples


def load_examples(source: str = DEFAULT_DATASET, split: str = "train", limit: int | None = None, seed: int = 0,
                  skip_bad_rows: bool = False, options=None) -> tuple[list[dict], int]:
    """Examples ``{"question", "answer" (gold), "solution"}`` and how many rows were skipped for lacking ``####``.

    The first ``limit`` rows are kept (reasoning-gym generates exactly ``limit``). A row without ``question`` or
    ``answer`` is an error naming it; one whose answer lacks ``####`` is too, unless ``skip_bad_rows``.
    """
    raw = load_raw_rows(source, split, limit, seed, options)
    examples, skipped = [], 0
    for index, row in enumerate(raw):
        if limit is not None and len(examples) >= limit:
            break
        examples_row = _normalise_row(row, source, index, skip_bad_rows)
        if examples_row is None:
            skipped += 1
        else:
            examples.append(examples_row)
    if not examples:
        raise TinyR1Error(f"{source} ({split}): no usable rows" + (f" ({skipped} skipped)" if skipped else ""))
    return examples, skipped


def check_messages(messages, where: str, field: str) -> None:
    """A list of chat turns ``{"role": str, "content": str}``, or one line naming the row and field."""
    ok = isinstance(messages, list) and messages and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
    if not ok:
        got = "an empty list" if messages == [] else ("a turn without role and content text" if
                                                      isinstance(messages, list) else type(messages).__name__)
        raise TinyR1Error(f"{where}: {field} must be a list of chat turns like "
                          f'[{{"role": "user", "content": "..."}}], got {got}')


def _normalise_row(row: dict, source: str, index: int, skip_bad_rows: bool) -> dict | None:
    if "prompt" in row and "answer" in row:  # already prepared
        check_messages(row["prompt"], f"{source} row {index}", "prompt")
        if row["answer"] is None:
            raise TinyR1Error(f"{source} row {index}: answer is null")
        user = [m["content"] for m in row["prompt"] if m["role"] == "user"]
        return {"question": user[-1] if user else "", "answer": str(row["answer"]), "solution": row.get("solution"),
                "prompt": row["prompt"]}
    missing = [k for k in ("question", "answer") if k not in row]
    if missing:
        raise TinyR1Error(f"{source} row {index}: missing field {' and '.join(missing)}; rows need question, answer")
    if not isinstance(row["question"], str) or row["answer"] is None:
        raise TinyR1Error(f"{source} row {index}: question must be text and answer must not be null")
    if row.get("_gold"):
        return {"question": row["question"], "answer": row["answer"], "solution": row.get("solution")}
    gold = extract_hash_answer(str(row["answer"]))
    if gold is None:
        if skip_bad_rows:
            return None
        raise TinyR1Error(
            f"{source} row {index}: answer has no '#### <gold>' line; fix the row or pass --skip_bad_rows"
        )
    solution = strip_calculator_annotations(str(row["answer"]).split("####")[0]).strip()
    return {"question": row["question"], "answer": gold, "solution": solution}


def to_prompt_rows(examples: list[dict], system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """The recipe's rows: ``{"prompt": [system, user], "answer": gold, "solution": worked solution}``."""
    return [{"prompt": ex.get("prompt") or build_prompt(ex["question"], system_prompt), "answer": ex["answer"],
             "solution": ex.get("solution")} for ex in examples]


def load_prompt_rows(source: str = DEFAULT_DATASET, split: str = "train", limit: int | None = None, seed: int = 0,
                     system_prompt: str = SYSTEM_PROMPT, skip_bad_rows: bool = False, options=None) -> list[dict]:
    """``load_examples`` then ``to_prompt_rows``: what ``train`` feeds to GRPO."""
    examples, _ = load_examples(source, split, limit, seed, skip_bad_rows, options)
    return to_prompt_rows(examples, system_prompt)


# ---------------------------------------------------------------- tinyr1 prepare


def build_parser() -> argparse.ArgumentParser:
    from tinyr1.config import one_line_errors

    parser = argparse.ArgumentParser(
        prog="tinyr1 prepare",
        description="Write the recipe's prompt rows ({prompt: [system, user], answer: gold}) as JSON lines.",
    )
    parser.add_argument("--dataset_name", default=DEFAULT_DATASET,
                        help="hub id (default openai/gsm8k), modelscope/gsm8k, a local folder or file, "
                             "or reasoning-gym:<name> such as reasoning-gym:gsm_symbolic")
    parser.add_argument("--split", default="train", help="split to read: train or test (default train)")
    parser.add_argument("--output", required=True, help="JSON-lines file to write")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N rows; for reasoning-gym, how many to generate (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for reasoning-gym generation (default 0)")
    parser.add_argument("--dataset_options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="reasoning-gym generator options, e.g. min_terms=3 max_terms=3 max_digits=2")
    parser.add_argument("--system_prompt", default=SYSTEM_PROMPT, help="system prompt (default: the recipe's)")
    parser.add_argument("--skip_bad_rows", action="store_true",
                        help="skip rows whose answer lacks '#### <gold>' and report how many, instead of stopping")
    return one_line_errors(parser, "tinyr1 prepare")


def main(argv: list[str] | None = None) -> int:
    from tinyr1.paths import make_dirs
    from tinyr1.validate import check, flag_source

    args = build_parser().parse_args(argv)
    check(vars(args), flag_source)
    output = check_output_file(args.output, "--output")  # before the data is read or generated
    if output.exists() and output.resolve() == Path(args.dataset_name).expanduser().resolve():
        raise TinyR1Error(f"--output {args.output}: is the input file; write the prepared rows elsewhere")
    examples, skipped = load_examples(args.dataset_name, args.split, args.limit, args.seed, args.skip_bad_rows,
                                      args.dataset_options)
    rows = to_prompt_rows(examples, args.system_prompt)
    make_dirs(output.parent, "--output")
    write_jsonl(output, rows)
    print(f"wrote {len(rows)} rows from {args.dataset_name} ({args.split}) to {output}"
          + (f"; skipped {skipped} rows without '####'" if skipped else ""))
    print("example row:")
    print(json.dumps(rows[0], indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
