"""One `gpuledger serve` per warehouse: an exclusive lock file next to it, naming its holder.

DuckDB already refuses two writers at the same instant, but `serve` opens the warehouse only while
a job runs; two services would take turns, both export the week and interleave watermarks. The lock
is an flock(2) on `<warehouse>.lock`, so the kernel releases it when the holder dies, even on kill -9:
a crash never leaves a stale lock behind. The file keeps the holder's pid, host and start time for
the message the second instance prints. It is never deleted (unlinking a locked file lets a third
process lock a fresh inode while the second still holds the old one).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from core import conventions as c
from core.errors import TransientError


class WarehouseLocked(TransientError):
    """Another gpuledger instance writes this warehouse (retry once it has stopped)."""


def lock_path(warehouse: Path) -> Path:
    """The lock file beside the warehouse the path leads to: a symlink or another spelling of the path must
    find the same lock, or a second writer gets in."""
    real = warehouse.resolve()
    return real.with_name(real.name + c.LOCK_SUFFIX)


class WarehouseLock:
    def __init__(self, warehouse: Path) -> None:
        self.warehouse = warehouse
        self.path = lock_path(warehouse)
        self._fd: int | None = None

    def acquire(self) -> WarehouseLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise WarehouseLocked(
                f"{self.warehouse}: already written by another gpuledger ({holder}); stop it first, "
                "or give this instance its own warehouse.path"
            ) from None
        os.ftruncate(fd, 0)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> WarehouseLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        holder = json.loads(raw.decode() or "{}")
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
