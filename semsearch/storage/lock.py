"""One writer at a time: an exclusive, non-blocking lock on the index folder."""

from __future__ import annotations

import contextlib
import fcntl
import os

from ..errors import IndexAccessError, IndexLockedError

LOCK_NAME = "write.lock"



class WriteLock:
    """An exclusive, non-blocking lock on an index folder (released if the process dies)."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexAccessError(
                f"cannot write to the index in {os.path.dirname(self.path)} ({exc.strerror}): "
                "check that you may write to that folder"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                with open(self.path) as fh:
                    pid = int(fh.read().strip() or 0)
                holder = f" (process {pid})" if pid else ""
            raise IndexLockedError(
                f"another semsearch process{holder} is writing to the index in "
                f"{os.path.dirname(self.path)}: wait for it to finish, then try again"
            ) from None
        with contextlib.suppress(OSError):  # who holds it, for the message above; a full disk
            os.ftruncate(fd, 0)  # must not stop the writer that would report it
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
