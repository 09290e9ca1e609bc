"""Data: one loader for every source, turning GSM8K-style rows into the recipe's prompt rows.

``train``, ``eval`` and ``sft`` all load through ``load_examples``; ``tinyr1 prepare`` (``tinyr1.commands.prepare``)
writes its output:

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
``prompt`` (a file written by ``prepare``) are taken as they are. A bad row is named the one way
``tinyr1.infra.files`` describes: ``FILE line N`` in a JSON-lines file, ``SOURCE row N`` otherwise, from 1.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error, first_line
from tinyr1.infra.files import read_jsonl_numbered, read_text
from tinyr1.infra.naming import setting
from tinyr1.infra.paths import looks_local
from tinyr1.tasks.answers import SYSTEM_PROMPT, extract_hash_answer
from tinyr1.tasks.reasoning_gym import REASONING_GYM_PREFIX, check_dataset_options, reasoning_gym_rows

DEFAULT_DATASET = "openai/gsm8k"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def default_gsm8k_dir() -> Path:
    """Where a local copy of GSM8K is looked for by the benchmarks and tests: ``$TINYR1_GSM8K_DIR``, else
    ``../shared/data/gsm8k`` beside the working folder (a source checkout's root). Works the same from an installed
    package: nothing is computed from this file's location."""
    env = os.environ.get("TINYR1_GSM8K_DIR")
    return Path(env) if env else Path.cwd().parent / "shared" / "data" / "gsm8k"


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


class SourceRows(list):
    """Rows, and where each came from: ``where(i)`` names row ``i`` (from 0) the one way messages do.

    >>> SourceRows([{}, {}], "d.json").where(1), SourceRows([{}], "d.jsonl", lines=[3]).where(0)
    ('d.json row 2', 'd.jsonl line 3')
    """

    def __init__(self, rows, source, lines: list[int] | None = None):
        super().__init__(rows)
        self.source, self.lines = str(source), lines

    def where(self, index: int) -> str:
        if self.lines is not None and index < len(self.lines):
            return f"{self.source} line {self.lines[index]}"
        return f"{self.source} row {index + 1}"


def read_rows_file(path: Path) -> SourceRows:
    """Rows of one local ``.jsonl``, ``.json`` (a list of objects, or JSON lines) or ``.parquet`` file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return SourceRows(pq.read_table(path).to_pylist(), path)
        except Exception as err:  # pyarrow raises several types for a bad file
            raise TinyR1Error(f"{path}: not a readable parquet file ({err})") from None
    if path.suffix == ".json":
        text = read_text(path)
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as err:
                raise TinyR1Error(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
            except RecursionError:
                raise TinyR1Error(f"{path}: nested too deeply to read") from None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise TinyR1Error(f"{path}: expected a list of JSON objects")
            return SourceRows(rows, path)
    numbered = read_jsonl_numbered(path)
    return SourceRows([row for _, row in numbered], path, [line for line, _ in numbered])


def _local_file(path: Path, split: str) -> Path:
    if path.is_file():
        return path
    candidates = [path / f"{split}{s}" for s in DATA_SUFFIXES] + [path / "main" / f"{split}{s}" for s in DATA_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TinyR1Error(f"{path}: no {split}.jsonl, {split}.json or {split}.parquet in this folder")


def local_source_files(source: str, split: str) -> list[Path]:
    """The local files ``load_raw_rows`` reads for ``source`` and ``split`` — and, for a folder, every name it would
    look for (writing one of those would change what the folder holds); empty for a hub or generated source."""
    if source.startswith(REASONING_GYM_PREFIX):
        return []
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return [folder / f"{split}{s}" for folder in (path, path / "main") for s in DATA_SUFFIXES]


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
        first = first_line(err)
        raise TinyR1Error(
            f"{source}: could not load split {split!r} from the Hugging Face hub ({first}); check the name and your "
            "connection, or pass a local folder with train.jsonl/test.jsonl"
        ) from None


def load_raw_rows(source: str, split: str = "train", limit: int | None = None, seed: int = 0,
                  options=None) -> SourceRows:
    """Rows as the source has them (GSM8K: ``question`` and ``answer``), from any source form above."""
    if not source.strip():
        raise TinyR1Error("dataset_name is empty; give a hub id, a local file or folder, or reasoning-gym:<name>")
    if source.startswith(REASONING_GYM_PREFIX):
        return SourceRows(reasoning_gym_rows(source[len(REASONING_GYM_PREFIX):], split, limit, seed, options),
                          source)
    check_dataset_options(source, options)
    path = Path(source).expanduser()
    if path.exists():
        return read_rows_file(_local_file(path, split))
    if looks_local(source) or "/" not in source:  # a hub dataset id is always owner/name
        raise TinyR1Error(f"{source}: no such file or folder (and not a hub id of the form owner/name)")
    return SourceRows(_hub_rows(source, split), f"{source} ({split})")


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
        examples_row = _normalise_row(row, raw.where(index), skip_bad_rows)
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


def invalid_text(value) -> str | None:
    """The first text inside ``value`` (a string, or lists and dicts of them: chat turns) that is not valid Unicode
    (a lone surrogate, which no tokenizer can encode), or None.

    >>> invalid_text([{"role": "user", "content": "ok"}]), invalid_text("bad " + chr(0xD800)) is not None
    (None, True)
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((bad for item in items if (bad := invalid_text(item)) is not None), None)


def _gold(value, where: str) -> str:
    """A gold answer as text: text or a number; anything else (a dict, a list) is refused naming the row."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TinyR1Error(f"{where}: answer must be text or a number (the gold answer), got "
                          f"{type(value).__name__} {repr(value)[:40]}")
    return str(value)


def _normalise_row(row: dict, where: str, skip_bad_rows: bool, plain_gold: bool = False) -> dict | None:
    """A row as an example; ``plain_gold``: an answer without ``####`` on one line is the gold itself (rows given in
    Python, ``{"question": "What is 2 + 3?", "answer": "5"}``)."""
    bad = invalid_text([row.get("question"), row.get("prompt"), row.get("answer")])
    if bad is not None:
        raise TinyR1Error(f"{where}: holds text that is not valid Unicode ({bad[:40]!r}: a lone surrogate); fix the "
                          "row")
    if "prompt" in row and "answer" in row:  # already prepared
        check_messages(row["prompt"], where, "prompt")
        if row["answer"] is None:
            raise TinyR1Error(f"{where}: answer is null")
        gold = _gold(row["answer"], where)
        user = [m["content"] for m in row["prompt"] if m["role"] == "user"]
        return {"question": user[-1] if user else "", "answer": gold, "solution": row.get("solution"),
                "prompt": row["prompt"]}
    missing = [k for k in ("question", "answer") if k not in row]
    if missing:
        raise TinyR1Error(f"{where}: missing field {' and '.join(missing)}; rows need question, answer")
    if not isinstance(row["question"], str) or row["answer"] is None:
        raise TinyR1Error(f"{where}: question must be text and answer must not be null")
    if row.get("_gold"):
        return {"question": row["question"], "answer": row["answer"], "solution": row.get("solution")}
    answer = _gold(row["answer"], where)
    gold = extract_hash_answer(answer)
    if gold is None and plain_gold and "\n" not in answer.strip():
        return {"question": row["question"], "answer": answer.strip(), "solution": None}
    if gold is None:
        if skip_bad_rows:
            return None
        raise TinyR1Error(
            f"{where}: answer has no '#### <gold>' line; fix the row or pass {setting('skip_bad_rows')}"
        )
    solution = strip_calculator_annotations(answer.split("####")[0]).strip()
    return {"question": row["question"], "answer": gold, "solution": solution}


def to_prompt_rows(examples: list[dict], system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """The recipe's rows: ``{"prompt": [system, user], "answer": gold, "solution": worked solution}``."""
    return [{"prompt": ex.get("prompt") or build_prompt(ex["question"], system_prompt), "answer": ex["answer"],
             "solution": ex.get("solution")} for ex in examples]


# Rows read from an iterable dataset given in Python without a limit: one more is refused rather than read for ever.
MAX_PYTHON_ROWS = 1_000_000


def prompt_rows_from(rows, where: str, system_prompt: str = SYSTEM_PROMPT, skip_bad_rows: bool = False,
                     limit: int | None = None) -> list[dict]:
    """Prompt rows from rows given in Python — a list of dicts, a ``datasets.Dataset`` or ``IterableDataset``, a
    pandas ``DataFrame`` — by the rules a file's rows follow (``question`` and ``answer`` with a ``#### <gold>`` line,
    or prepared ``prompt`` and ``answer``), except that an answer of one line without ``####`` is the gold answer
    itself; a bad row is one line naming ``where`` and its position. The first ``limit`` are kept.

    >>> prompt_rows_from([{"question": "1 + 1?", "answer": "1 + 1 = 2 #### 2"}], "rows")[0]["answer"]
    '2'
    >>> prompt_rows_from([{"question": "What is 2 + 3?", "answer": 5}], "rows")[0]["answer"]
    '5'
    >>> prompt_rows_from([{"question": "1 + 1?"}], "rows")
    Traceback (most recent call last):
    tinyr1.infra.errors.TinyR1Error: rows[0]: missing field answer; rows need question, answer
    """
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame iterates its column names
        rows = rows.to_dict("records")
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise TinyR1Error(f"{where}: expected a list of rows (dicts), a datasets.Dataset or an IterableDataset, got "
                          f"{type(rows).__name__}")
    cap = limit if limit is not None else MAX_PYTHON_ROWS
    examples = []
    for index, row in enumerate(itertools.islice(iter(rows), cap + 1)):
        if index == cap:
            if limit is None:
                raise TinyR1Error(f"{where}: more than {MAX_PYTHON_ROWS:,} rows; give dataset_limit to read the "
                                  "first N of an endless or very large dataset")
            break
        if not isinstance(row, dict):
            raise TinyR1Error(f"{where}[{index}]: expected a dict with question and answer, got {type(row).__name__}")
        example = _normalise_row(row, f"{where}[{index}]", skip_bad_rows, plain_gold=True)
        if example is not None:
            examples.append(example)
    if not examples:
        raise TinyR1Error(f"{where}: no usable rows")
    return to_prompt_rows(examples, system_prompt)


def load_prompt_rows(source: str = DEFAULT_DATASET, split: str = "train", limit: int | None = None, seed: int = 0,
                     system_prompt: str = SYSTEM_PROMPT, skip_bad_rows: bool = False, options=None) -> list[dict]:
    """``load_examples`` then ``to_prompt_rows``: what ``train`` feeds to GRPO."""
    examples, _ = load_examples(source, split, limit, seed, skip_bad_rows, options)
    return to_prompt_rows(examples, system_prompt)
