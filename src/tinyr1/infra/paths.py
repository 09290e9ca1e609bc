"""Paths the user names: the one rule for "is this a local path", and output checks made before anything heavy.

An output that cannot be written (an empty string, a path that is a file where a folder is wanted or the
reverse, a read-only place) is reported in one line *before* a model loads or generates, not after an hour.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error


def looks_local(name: str) -> bool:
    """Whether a model or dataset string can only mean a local path (never a hub id ``owner/name``).

    >>> [looks_local(s) for s in ("./x", "/x", "~/x", "m.gguf", "d.jsonl", "a//b", "a/b/c", "Qwen/Qwen2.5", "gsm8k")]
    [True, True, True, True, True, True, True, False, False]
    """
    return (name.startswith((".", "/", "~")) or name.endswith((".gguf", ".jsonl", ".json", ".parquet"))
            or "//" in name or name.count("/") > 1)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _probe(folder: Path, what: str, shown: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise TinyR1Error(f"{what} {shown}: cannot write in {folder} ({err.strerror or err})") from None


def check_output_file(path: str | Path | None, what: str) -> Path:
    """A file tinyr1 will create or replace; raises one line if it cannot be written. ``what`` names the flag."""
    if path is None or not str(path).strip():
        raise TinyR1Error(f"{what}: empty; give a file path")
    file = Path(path).expanduser()
    if file.is_dir():
        raise TinyR1Error(f"{what} {path}: is a folder; give a file path")
    existing = _nearest_existing(file.parent)
    if not existing.is_dir():
        raise TinyR1Error(f"{what} {path}: {existing} is a file, not a folder")
    _probe(existing, what, str(path))
    return file


def check_output_dir(path: str | Path | None, what: str) -> Path:
    """A folder tinyr1 will create or write into; raises one line if it cannot be."""
    if path is None or not str(path).strip():
        raise TinyR1Error(f"{what}: empty; give a folder path")
    folder = Path(path).expanduser()
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise TinyR1Error(f"{what} {path}: {existing} is a file, not a folder")
    _probe(existing, what, str(path))
    return folder


def make_dirs(folder: Path, what: str) -> None:
    """``mkdir -p`` with a one-line error."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise TinyR1Error(f"{what} {folder}: cannot create ({err.strerror or err})") from None
