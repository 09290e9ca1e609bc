"""Deleting what a run wrote, file by file: what ``--overwrite_output_dir`` and ``save_total_limit``'s rotation do.

tinyr1 never removes a folder wholesale. In a folder of the run (a checkpoint, eval/, plots/, merged/...) it deletes
only files it wrote, each by name: a checkpoint's by its manifest (``tinyr1.run_folder.checkpoints``), or by the
names a save writes where the manifest is missing (a save killed before its end); the run's other folders by the
names tinyr1 writes there. A folder left empty is removed; anything else found — a note, a folder of the user's,
a ``tinyr1 eval`` output saved inside a checkpoint — is kept where it is, and ``kept_line`` names it.

    kept = remove_written(run_dir, {"checkpoint-1", "metrics.jsonl"})
    if kept:
        print(kept_line(run_dir, kept))
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tinyr1.run_folder.checkpoints import CHECKPOINT_FILES, files_in, manifest

_CHECKPOINT = re.compile(r"checkpoint-\d+")
_MODEL_FILES = CHECKPOINT_FILES  # merged/ and reference-model/ hold what save_pretrained writes
_TMP = r"(\..+\.\d+\.tmp)"
# The run's other folders: the relative paths tinyr1 (or trl's logging) writes in each.
_WRITTEN = {
    "eval": re.compile(rf"(before|after)/(metrics\.json|samples\.jsonl|\.tinyr1-run|\.tinyr1-lock|{_TMP})"),
    "plots": re.compile(rf"(rewards|training)\.png|{_TMP}"),
    "runs": re.compile(r"[^/]+/events\.out\.tfevents\.[^/]+"),
}


def _written_by_run(top: str, folder: Path) -> set[str]:
    """The files under the run's folder ``top`` that tinyr1 wrote (see the module docstring)."""
    if _CHECKPOINT.fullmatch(top):
        listed = manifest(folder)
        if listed is not None:
            return listed
        return {name for name in files_in(folder) if "/" not in name and CHECKPOINT_FILES.fullmatch(name)}
    pattern = _WRITTEN.get(top)
    if pattern is None:  # merged/, reference-model/: a saved model at the top level
        return {name for name in files_in(folder) if "/" not in name and _MODEL_FILES.fullmatch(name)}
    return {name for name in files_in(folder) if pattern.fullmatch(name)}


def remove_written(root: Path, names) -> list[str]:
    """Delete the run's top-level ``names`` in ``root`` (files, and folders file by file); returns what was kept,
    as paths relative to ``root`` (a kept folder of the user's once, not each file in it)."""
    kept: list[str] = []
    for name in sorted(names):
        if not name or "/" in name or name in (".", ".."):  # a hand-edited marker must not reach outside
            continue
        target = Path(root) / name
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        elif target.is_dir():
            for relative in _written_by_run(name, target):
                path = target / relative
                if path.is_symlink() or path.is_file():
                    path.unlink()
            _remove_empty(target)
            if target.exists():
                kept += [f"{name}/{entry}" for entry in sorted(os.listdir(target))]
    return kept


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders under it that are empty now, deepest first; symlinks are not followed."""
    for current, dirs, _ in os.walk(folder, topdown=False):
        for sub in dirs:
            path = Path(current) / sub
            if not path.is_symlink():
                _try_rmdir(path)
    _try_rmdir(folder)


def _try_rmdir(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: something of the user's is in it
        pass


def kept_line(root: Path, kept: list[str], limit: int = 8) -> str:
    """One line naming what was kept: ``kept what tinyr1 did not write, in RUN: checkpoint-1/notes.txt, ...``."""
    shown = ", ".join(kept[:limit]) + (f" and {len(kept) - limit} more" if len(kept) > limit else "")
    return f"kept what tinyr1 did not write, in {root}: {shown}"


def to_rotate(own: set[str], current: str, limit: int | None) -> list[str]:
    """The run's checkpoints ``save_total_limit`` removes: all but the newest ``limit`` of ``own``, counting the one
    just saved (``current``) as the newest, whatever its number (a resume from an earlier checkpoint saves lower
    numbers than the ones it left behind). Another run's checkpoints are not in ``own``: never counted, never
    removed.

    >>> to_rotate({"checkpoint-1", "checkpoint-2", "checkpoint-3"}, "checkpoint-3", 2)
    ['checkpoint-1']
    >>> to_rotate({"checkpoint-4", "checkpoint-5", "checkpoint-2"}, "checkpoint-2", 1)
    ['checkpoint-4', 'checkpoint-5']
    """
    if not limit or limit <= 0:
        return []
    others = sorted((n for n in own if _CHECKPOINT.fullmatch(n) and n != current), key=lambda n: int(n[11:]))
    return others[:max(0, len(others) - (limit - 1))]
