"""`run.lock`: one live process writes a run folder at a time."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


class RunFolderError(RuntimeError):
    """A run folder that this run may not write: another config's results, or another live process."""


class RunLock:
    """`run.lock` in a run folder: an exclusive `flock` held while the run writes, the holder's pid inside.

    The kernel releases the lock when its holder exits or is killed, so a folder left by a dead
    process is taken over at once, and a live holder is never raced.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "run.lock"
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.path.read_text().strip() or "unknown"
            raise RunFolderError(
                f"{self.path.parent} is being written by another live process (pid {holder}, see {self.path}); "
                "wait for it to finish or stop it, or write this run to another folder (hydra.run.dir=...)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
