"""The embedded runtime's data directory: one owner at a time, private to it.

`roughy serve` takes an exclusive lock on `<data dir>/roughy.lock` before it reads or writes
anything there. A second process on the same directory used to run crash recovery first
(putting the first one's running render back to pending and deleting its partial output)
and only then die on "address in use"; now it stops at once, naming the holder's pid. The
lock is an `flock`, so it goes with the process however it ends (a SIGKILL included), and
the next start recovers as before.

The directory is created 0700 and the lock file 0600: the database, the media and the
signing key are nobody else's to read.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "roughy.lock"


class DataDirInUse(Exception):
    """Another process holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUse(
                f"{self.data_dir.resolve()} is in use by another roughy process (pid {holder}); "
                "stop it first, or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
