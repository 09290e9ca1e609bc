"""run.json on disk: written whole or not at all, kept truthful on a full disk, and never left saying ``running``
by a dead process once a command looks at it.

- ``write_json``: written whole or not at all (``tinyr1.infra.files``); a failed write keeps the previous run.json.
- ``status_in_place``: on a full disk, the status rewritten inside run.json's own bytes (no new block needed).
- ``mark_if_killed``: a run.json saying ``running`` whose folder lock is free (its process died: kill -9, a lost
  machine) becomes ``killed``; claim, eval and report call it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error
from tinyr1.infra.files import read_json, write_text
from tinyr1.infra.log import TO_STDERR
from tinyr1.infra.naming import setting
from tinyr1.run_folder import ownership
from tinyr1.run_folder.lock import RunLock, holder

logger = logging.getLogger(__name__)


def write_json(path: Path, data: dict) -> None:
    """A JSON file written whole or not at all (``tinyr1.infra.files.write_text``); a failed write (a full disk)
    leaves the previous file and no temporary file, and raises the ``OSError`` for the caller to answer."""
    write_text(path, json.dumps(data, indent=2), raw_errors=True)


def status_in_place(path: Path, status: str, step) -> None:
    """On a full disk a new file cannot be made, but run.json's own bytes can be rewritten: its status, padded
    with spaces to its old size, so it needs no new block (not on copy-on-write filesystems: then it stays)."""
    try:
        old = path.read_bytes()
        info = json.loads(old)
        info.update(status=status, error="disk full", **({"global_step": step} if step is not None else {}))
        for text in (json.dumps(info, indent=2), json.dumps(info, separators=(",", ":"))):
            data = text.encode()
            if len(data) <= len(old):
                with path.open("r+b") as f:
                    f.write(data + b" " * (len(old) - len(data)))
                return
    except (OSError, ValueError, AttributeError):
        pass


def mark_if_killed(folder: Path) -> dict | None:
    """run.json, first marked ``killed`` when it says ``running`` but no process holds the folder's lock (its
    process died without a word: kill -9, a lost machine). None when there is no readable run.json."""
    try:
        info = read_json(Path(folder) / "run.json")
    except TinyR1Error:
        return None
    if info is None or info.get("status") != "running" or not ownership.is_ours(Path(folder) / "run.json"):
        return info
    pid = holder(folder)
    if pid is not None and pid != os.getpid():
        return info  # its process is still running
    try:  # held while marking, so a run starting now cannot have its own run.json overwritten
        lock = None if pid == os.getpid() else RunLock.acquire(folder, "check", setting("output_dir"))
    except TinyR1Error:
        return info
    try:
        info.update(status="killed", killed_noticed=time.strftime("%Y-%m-%dT%H:%M:%S"))
        write_json(Path(folder) / "run.json", info)
    except OSError:
        pass
    finally:
        if lock is not None:
            lock.release()
    return info


def warn_if_unfinished(model: str | None) -> None:
    """For a command about to read a model from a run folder whose run.json says running: a warning that it is still
    training, or that it was killed while saving (it is then marked ``killed``)."""
    folder = Path(model or "").expanduser()
    if not model or not (folder / "run.json").is_file():
        return
    before = _status(folder)
    info = mark_if_killed(folder) or {}
    if before != "running":
        return
    if info.get("status") == "killed":
        logger.warning(f"warning: {folder}: its run was killed before it finished (run.json said running; now "
                       "killed): the model there may be incomplete; evaluate one of its checkpoint-N folders instead",
                       extra=TO_STDERR)
    else:
        logger.warning(f"warning: {folder}: its run is still training (PID {holder(folder)}): the model there is not "
                       "the final one yet", extra=TO_STDERR)


def _status(folder: Path):
    try:
        return (read_json(folder / "run.json") or {}).get("status")
    except TinyR1Error:
        return None
