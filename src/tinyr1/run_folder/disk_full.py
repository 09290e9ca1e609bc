"""A full disk during a run, told as one line: which folder, how much is free, about how much a save needs
(recognising one is ``tinyr1.infra.files.is_disk_full``). The run's exit code is 2, as for any problem the user
fixes; the retry after freeing space resumes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.naming import setting
from tinyr1.run_folder.checkpoints import latest_checkpoint


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def disk_full_error(folder: Path, what: str = "a checkpoint") -> TinyR1Error:
    """The one line for a full disk under ``folder``: the space free there and what the last save took."""
    try:
        free = _mb(shutil.disk_usage(folder).free)
    except OSError:
        free = "unknown"
    last = latest_checkpoint(folder) if folder.is_dir() else None
    need = f"; {what} needs about {_mb(_size(last))} ({last.name})" if last is not None else ""
    then = (f"resume with {setting('resume_from_checkpoint', 'latest')}" if last is not None else
            f"start again with {setting('overwrite_output_dir', True)} (removes only what the run wrote)")
    return TinyR1Error(f"{folder}: the disk is full ({free} free{need}); free some space (or pick an "
                       f"{setting('output_dir')} on another disk), then {then}")
