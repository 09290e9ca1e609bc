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

import json
import os
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error, first_line
from tinyr1.infra.files import read_jsonl_numbered, read_text
from tinyr1.infra.paths import looks_local
from tinyr1.tasks.answers import SYSTEM_PROMPT
from tinyr1.tasks.reasoning_gym import REASONING_GYM_PREFIX, check_dataset_options, reasoning_gym_rows
from tinyr1.tasks.rows import normalise_row, to_prompt_rows

DEFAULT_DATASET = "openai/gsm8k"
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def default_gsm8k_dir() -> Path:
    """Where a local copy of GSM8K is looked for by the benchmarks and tests: ``$TINYR1_GSM8K_DIR``, else
    ``../shared/data/gsm8k`` beside the working folder (a source checkout's root). Works the same from an installed
    package: nothing is computed from this file's location."""
    env = os.environ.get("TINYR1_GSM8K_DIR")
    return Path(env) if env else Path.cwd().parent / "shared" / "data" / "gsm8k"


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
        examples_row = normalise_row(row, raw.where(index), skip_bad_rows)
        if examples_row is None:
            skipped += 1
        else:
            examples.append(examples_row)
    if not examples:
        raise TinyR1Error(f"{source} ({split}): no usable rows" + (f" ({skipped} skipped)" if skipped else ""))
    return examples, skipped


def load_prompt_rows(source: str = DEFAULT_DATASET, split: str = "train", limit: int | None = None, seed: int = 0,
                     system_prompt: str = SYSTEM_PROMPT, skip_bad_rows: bool = False, options=None) -> list[dict]:
    """``load_examples`` then ``to_prompt_rows``: what ``train`` feeds to GRPO."""
    examples, _ = load_examples(source, split, limit, seed, skip_bad_rows, options)
    return to_prompt_rows(examples, system_prompt)
