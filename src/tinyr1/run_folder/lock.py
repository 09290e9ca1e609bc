"""One writer per folder: an exclusive OS-level lock that ``train``, ``sft`` and ``eval`` hold for their whole life.

The lock is ``fcntl.flock`` on ``.tinyr1-lock`` inside the folder, which also holds the holder's PID and command.
The kernel drops the lock when its process ends, however it ends (kill -9 included), so a stale lock cannot exist:
a lock file whose lock is free is just a file. The file is never deleted (deleting it would let a second process
lock a new file while a first still holds the old one). A second process is refused with one line naming the
holder's PID. flock is advisory and local: two machines writing one folder over NFS are not kept apart.

    lock = RunLock.acquire(folder, "train", "--output_dir")    # held until the process ends (or lock.release())
    holder(folder)                                              # the PID holding it, or None when it is free
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tinyr1.infra.errors import TinyR1Error

LOCK = ".tinyr1-lock"
_HELD: dict[str, RunLock] = {}  # this process's locks, by folder: a second claim here reuses the first


class RunLock:
    def __init__(self, folder: Path, fd: int):
        self.folder, self.fd = folder, fd

    @classmethod
    def acquire(cls, folder: str | Path, command: str, flag: str) -> RunLock:
        """Lock ``folder`` (which must exist) for this process, or raise one line naming the holder's PID."""
        import fcntl

        folder = Path(folder)
        key = str(folder.resolve())
        if key in _HELD:
            return _HELD[key]
        try:
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise TinyR1Error(f"{flag} {folder}: cannot create its lock file {LOCK} ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            pid, what = _read(folder)
            who = f"tinyr1 {what} (PID {pid})" if pid else "another tinyr1 process"
            raise TinyR1Error(f"{flag} {folder}: in use by {who}; one process writes a run folder at a time: pick "
                              f"another {flag}, or wait until {'PID ' + str(pid) if pid else 'it'} ends") from None
        lock = cls(folder, fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only the PID shown to others is missing
            pass
        _HELD[key] = lock
        return lock

    def release(self) -> None:
        import fcntl

        _HELD.pop(str(self.folder.resolve()), None)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


def _read(folder: Path) -> tuple[int | None, str]:
    try:
        fields = (folder / LOCK).read_text(encoding="utf-8").split()
        return int(fields[0]), fields[1] if len(fields) > 1 else "process"
    except (OSError, ValueError, IndexError):  # the holder has not written its PID yet
        return None, "process"


def holder(folder: str | Path) -> int | None:
    """The PID of the process holding ``folder``'s lock (0 when it is held but the PID is unknown), or None when
    no process holds it. This process's own lock counts as held."""
    import fcntl

    folder = Path(folder)
    if str(folder.resolve()) in _HELD:
        return os.getpid()
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read(folder)[0] or 0
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None
