"""One row's rules, wherever it comes from (a file, a hub split, reasoning-gym, rows given in Python): what makes a
row an example ``{"question", "answer" (the gold), "solution"}`` and the recipe's prompt row, and why a row is refused
(one line naming the row).

    normalise_row({"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"}, "rows[0]", skip_bad_rows=False)
    prompt_rows_from(rows, "tinyr1.train(dataset=...)")      # a list of dicts, a Dataset, a DataFrame
"""

from __future__ import annotations

import itertools
import re

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.tasks.answers import SYSTEM_PROMPT, extract_hash_answer

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def strip_calculator_annotations(text: str) -> str:
    """GSM8K's ``<<48/2=24>>`` calculator annotations removed.

    >>> strip_calculator_annotations("48/2 = <<48/2=24>>24 clips")
    '48/2 = 24 clips'
    """
    return _CALCULATOR.sub("", text)


def build_prompt(question: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """The recipe's chat prompt: its system prompt, then the question as the user turn."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]



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


def normalise_row(row: dict, where: str, skip_bad_rows: bool, plain_gold: bool = False) -> dict | None:
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
        example = normalise_row(row, f"{where}[{index}]", skip_bad_rows, plain_gold=True)
        if example is not None:
            examples.append(example)
    if not examples:
        raise TinyR1Error(f"{where}: no usable rows")
    return to_prompt_rows(examples, system_prompt)
