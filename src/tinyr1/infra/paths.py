"""Paths the user names: the one rule for "is this a local path", and output checks made before anything heavy.

An output that cannot be written (an empty string, a path that is a file where a folder is wanted or the
reverse, a read-only place) is reported in one line *before* a model loads or generates, not after an hour.

A file tinyr1 writes at a path the user chose (``prepare --output``, ``compare --output``, probe's ``--output``)
never replaces a file of the user's. tinyr1 knows its own files by a hidden sidecar beside each one,
``.<name>.tinyr1`` (JSON: the command, tinyr1's version, the file's size and SHA-256), so the file itself stays a
plain rows or text file that trl, ``datasets`` and editors read as they are (``datasets`` skips hidden files in a
folder). An existing file is replaced only when its sidecar says tinyr1 wrote it and its content is still what
tinyr1 wrote: a file edited since, copied elsewhere, or a symlink counts as the user's, and the command refuses it
in one line (exit code 2). An output that is one of the command's own inputs — named directly, through a symlink,
a relative path or the folder the input is read from — is refused the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import write_text
from tinyr1.infra.version import __version__


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


def sidecar(file: Path) -> Path:
    """The hidden file beside ``file`` that records tinyr1 wrote it: ``.<name>.tinyr1``."""
    return file.with_name(f".{file.name}.tinyr1")


def _digest(file: Path) -> str:
    sha = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def written_by(file: Path) -> str | None:
    """The tinyr1 command that wrote ``file``, if its sidecar says so and the file is unchanged since; else None."""
    file = Path(file)
    if file.is_symlink() or not file.is_file() or not sidecar(file).is_file():
        return None
    try:
        record = json.loads(sidecar(file).read_text(encoding="utf-8"))
        if record["bytes"] != file.stat().st_size or record["sha256"] != _digest(file):
            return None
        return str(record["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mark_written(file: Path, command: str) -> None:
    """Record that tinyr1 ``command`` wrote ``file`` as it is now (its sidecar, written atomically). If the sidecar
    cannot be written (a full disk), ``file`` is removed before the error is raised: a file tinyr1 could not vouch
    for would read as the user's and block the retry."""
    file = Path(file)
    record = {"written_by": f"tinyr1 {command}", "command": command, "tinyr1": __version__,
              "bytes": file.stat().st_size, "sha256": _digest(file)}
    try:
        write_text(sidecar(file), json.dumps(record, indent=1) + "\n")
    except BaseException:
        file.unlink(missing_ok=True)
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output_file(path: str | Path | None, what: str, *, owner: str | None = None,
                      inputs: Iterable[Path] = ()) -> Path:
    """A file tinyr1 will create or replace; raises one line if it cannot be written. ``what`` names the flag.

    With ``owner`` (the command, e.g. ``"prepare"``) the file is also refused when it exists and tinyr1 did not
    write it (see the module docstring), and when it is one of ``inputs`` (the files the command will read)."""
    if path is None or not str(path).strip():
        raise TinyR1Error(f"{what}: empty; give a file path")
    file = Path(path).expanduser()
    if file.is_dir():
        raise TinyR1Error(f"{what} {path}: is a folder; give a file path")
    for source in map(Path, inputs):
        if _same_file(file, source):
            if source.exists():
                raise TinyR1Error(f"{what} {path}: is the input file {source}; tinyr1 never writes over what it "
                                  "reads: write elsewhere")
            raise TinyR1Error(f"{what} {path}: is a name the input folder is read from ({source}); writing it "
                              "would change the input: write elsewhere")
    if owner is not None and (file.exists() or file.is_symlink()) and written_by(file) is None:
        kind = "a symlink" if file.is_symlink() else "a file tinyr1 did not write (or one changed since)"
        raise TinyR1Error(f"{what} {path}: already exists and is {kind}; tinyr1 never replaces a file of yours: "
                          "pick another path, or move the file away yourself")
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
