"""One JSON-lines reader and writer for every file tinyr1 reads or writes.

A run killed mid-write (SIGKILL, a full disk, a lost machine) leaves its last line half written, so the reader
skips a truncated *last* line with a warning instead of failing; a bad line anywhere else is real corruption and
stays an error naming the file and line. Non-UTF-8 input is one line naming the file, never a traceback.

    rows = read_jsonl(path)                 # list of dicts
    append_jsonl(path, {"step": 1})         # one line, appended
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error


def read_text(path: str | Path) -> str:
    """A file's text as UTF-8; a file in another encoding is one line naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TinyR1Error(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
                          "save it as UTF-8") from None
    except IsADirectoryError:
        raise TinyR1Error(f"{path}: is a folder, expected a file") from None
    except OSError as err:
        raise TinyR1Error(f"{path}: cannot read ({err.strerror or err})") from None


def read_jsonl(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """Every object in a JSON-lines file, skipping blank lines and a truncated last line (with a warning).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "m.jsonl")
    >>> _ = open(f, "w").write('{"step": 1}\\n{"step": 2}\\n{"st')
    >>> read_jsonl(f)
    [{'step': 1}, {'step': 2}]
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    lines = read_text(path).split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            # A crash can only leave the final line unterminated (every write ends with its newline); a bad line
            # anywhere else, or a bad final line that was terminated, is corruption.
            if index == last == len(lines) - 1:
                print(f"warning: {path} line {index + 1}: truncated last line skipped (a run stopped while "
                      "writing it)", file=sys.stderr)
                break
            raise TinyR1Error(f"{path} line {index + 1}: not valid JSON ({err.msg}); expect one object per "
                              "line") from None
        if not isinstance(row, dict):
            raise TinyR1Error(f"{path} line {index + 1}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_json(path: str | Path) -> dict | None:
    """One JSON object file (run.json, metrics.json), or None when absent; a damaged one is one line."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise TinyR1Error(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise TinyR1Error(f"{path}: expected a JSON object")
    return data


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one object as one line (a crash can only ever damage the last line)."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows through a temporary file renamed into place, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
