"""One JSON-lines reader and writer for every file tinyr1 reads or writes, and the one atomic way it writes files.

A run killed mid-write (SIGKILL, a full disk, a lost machine) leaves its last line half written, so the reader
skips a truncated *last* line with a warning instead of failing; a bad line anywhere else is real corruption and
stays an error naming the file and line. Non-UTF-8 input is one line naming the file, never a traceback.

Row numbers in messages count from 1: a JSON-lines file's row is named by its line in the file (``FILE line 3``,
what an editor shows, blank lines included); rows of a JSON list, a parquet file or a hub dataset by their
position (``SOURCE row 3``).

Whole files (prepared rows, eval's pair, reports, plots) are written through ``atomic_file``: a hidden temporary
file beside the target, flushed to disk, then renamed over it, so a reader sees the old file or the new one,
never half of one. On any failure the temporary file is removed; a full disk (``ENOSPC``, or ``EDQUOT`` over
quota) is one line, exit code 2, naming the path, the bytes it needed and the bytes free.

    rows = read_jsonl(path)                 # list of dicts
    append_jsonl(path, {"step": 1})         # one line, appended
    write_jsonl(path, rows)                 # the whole file, atomically
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.log import TO_STDERR

logger = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded", "file too large", "file write failed",
                    "unexpected pos", "errno 28")


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


def read_jsonl_numbered(path: str | Path, missing_ok: bool = False) -> list[tuple[int, dict]]:
    """``(line number, object)`` for every object in a JSON-lines file, line numbers counted from 1.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "m.jsonl")
    >>> _ = open(f, "w").write('{"step": 1}\\n\\n{"step": 2}\\n')
    >>> read_jsonl_numbered(f)
    [(1, {'step': 1}), (3, {'step': 2})]
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
                logger.warning(f"warning: {path} line {index + 1}: truncated last line skipped (a run stopped while "
                               "writing it)", extra=TO_STDERR)
                break
            raise TinyR1Error(f"{path} line {index + 1}: not valid JSON ({err.msg}); expect one object per "
                              "line") from None
        except RecursionError:
            raise TinyR1Error(f"{path} line {index + 1}: nested too deeply to read") from None
        if not isinstance(row, dict):
            raise TinyR1Error(f"{path} line {index + 1}: expected a JSON object, got {type(row).__name__}")
        rows.append((index + 1, row))
    return rows


def read_jsonl(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """Every object in a JSON-lines file, skipping blank lines and a truncated last line (with a warning).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "m.jsonl")
    >>> _ = open(f, "w").write('{"step": 1}\\n{"step": 2}\\n{"st')
    >>> read_jsonl(f)
    [{'step': 1}, {'step': 2}]
    """
    return [row for _, row in read_jsonl_numbered(path, missing_ok)]


def read_json(path: str | Path) -> dict | None:
    """One JSON object file (run.json, metrics.json), or None when absent; a damaged one is one line."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise TinyR1Error(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise TinyR1Error(f"{path}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise TinyR1Error(f"{path}: expected a JSON object")
    return data


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one object as one line (a crash can only ever damage the last line)."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def is_disk_full(err: BaseException | None) -> bool:
    """Whether an error, or one it was raised from, is a full disk or an exhausted quota: torch, safetensors and
    Python report it in different shapes (``OSError`` ENOSPC or EDQUOT, torch's ``RuntimeError: ... file write
    failed``, safetensors' own error), often chained.

    >>> is_disk_full(OSError(28, "No space left on device")), is_disk_full(RuntimeError("bad value"))
    (True, False)
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL:
            return True
        if any(word in str(err).lower() for word in _DISK_FULL_WORDS):
            return True
        err = err.__cause__ or err.__context__
    return False


def write_error(path: str | Path, err: OSError, needed: int | None = None) -> TinyR1Error:
    """The one line for a write that failed: a full disk names the bytes needed and free, anything else its cause."""
    path = Path(path)
    if not is_disk_full(err):
        return TinyR1Error(f"{path}: cannot write ({err.strerror or err})")
    try:
        free = f"{shutil.disk_usage(path.parent if path.parent.exists() else Path('.')).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    need = f"needs {needed:,} bytes, " if needed is not None else ""
    return TinyR1Error(f"{path}: disk full ({need}{free} there); nothing was left half-written: free some space "
                       "or write elsewhere, then run the command again")


def temporary_name(path: Path) -> Path:
    """The hidden temporary file a write of ``path`` goes through, unique to this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, needed: int | None = None, raw_errors: bool = False):
    """Yield a temporary path to write; on success it is flushed and renamed over ``path``, on any failure removed
    (a full disk becomes ``write_error``'s one line, or stays the ``OSError`` with ``raw_errors``, for a caller that
    answers it itself). ``needed``: the bytes to be written, for that message."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not raw_errors:
            raise write_error(path, err, needed) from None
        raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk with its folder's entry
        _fsync(path.parent)


def write_bytes(path: str | Path, data: bytes, raw_errors: bool = False) -> None:
    """Write a whole file atomically (``atomic_file``)."""
    with atomic_file(path, len(data), raw_errors) as tmp:
        with tmp.open("wb") as f:
            f.write(data)


def write_together(parts: list[tuple[str | Path, bytes]]) -> None:
    """Replace several files as a set: every one written in full and flushed to a temporary file first, then all
    renamed into place in the order given (put the file that vouches for the others last). A failure before the
    renames removes every temporary file and leaves all the old files as they were."""
    parts = [(Path(path), data) for path, data in parts]
    done: list[Path] = []
    current = parts[0][0]
    try:
        for current, data in parts:
            tmp = temporary_name(current)
            done.append(tmp)
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException as err:
        for tmp in done:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(err, OSError):
            raise write_error(current, err, sum(len(d) for _, d in parts)) from None
        raise
    for (path, _), tmp in zip(parts, done, strict=True):
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        _fsync(parts[-1][0].parent)


def write_text(path: str | Path, text: str, raw_errors: bool = False) -> None:
    """Write a whole UTF-8 text file atomically (``atomic_file``)."""
    write_bytes(path, text.encode("utf-8"), raw_errors)


def jsonl_bytes(rows: list[dict]) -> bytes:
    """Rows as JSON lines, one object a line, each ending in a newline."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows as a JSON-lines file atomically (``atomic_file``), so a reader never sees half a file."""
    write_bytes(path, jsonl_bytes(rows))


def drop_torn_last_line(path: Path) -> int:
    """Cut a JSON-lines file after its last newline: every line tinyr1 appends ends with one, so bytes after it are
    a line a killed process was writing. Returns the bytes dropped (0 for an intact or absent file)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        keep, chunk = 0, 1 << 16  # find the last newline, reading backwards from the end
        position = size
        while position > 0:
            start = max(0, position - chunk)
            f.seek(start)
            found = f.read(position - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            position = start
        f.truncate(keep)
    logger.info(f"{path}: dropped a half-written last line ({size - keep} bytes) left by a run that was stopped while "
                "writing it")
    return size - keep
