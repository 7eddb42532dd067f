"""The write lock of an index directory: one process at a time may change an index."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ...errors import IndexStoreError

LOCK_NAME = ".lock"

try:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
except ImportError:  # Windows (untested): lock the file's first byte instead
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


class WriteLock:
    """An exclusive, non-blocking lock on an index directory, held while writing it."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._handle = None

    def __enter__(self) -> WriteLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise IndexStoreError(
                    f"The index {self.path.parent} is on read-only media or not writable ({exc.strerror}): it can be "
                    f"searched, but changing it needs a writable copy (copy the folder elsewhere).") from None
            raise
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            try:
                holder = handle.read().strip() or "another process"
            except OSError:  # Windows locks are mandatory: the holder's note cannot be read
                holder = "another process"
            handle.close()
            raise IndexStoreError(
                f"The index {self.path.parent} is being written by {holder}; wait for it to finish."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            _unlock(self._handle)
            self._handle.close()
            self._handle = None
