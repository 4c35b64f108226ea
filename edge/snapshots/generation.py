"""Change counters shared by every process of one edge, through a mapped file.

How this works: ``data_dir/edge.generation`` holds two 64-bit counters. After a
pointer move commits, the process that made it bumps ``pointers``; every worker
compares it, per request, with the value it last synced at, and on a mismatch
re-reads the pointers from the store before serving. Because the bump happens
after the durable commit and before the API answers, a request that starts after
the answer, in any worker, sees the new snapshot. ``schedules`` is bumped when a
schedule is added or cancelled, so the one process that runs the timer re-arms.

Reading a counter is one ``unpack_from`` on shared memory (no syscall); bumping
takes an ``flock`` so concurrent bumps from several processes are never lost.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_COUNTER = struct.Struct("<Q")
_POINTERS = 0
_SCHEDULES = 8
_SIZE = 16


class SharedCounters:
    """The two counters of one data directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(self._fd).st_size < _SIZE:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    size = os.fstat(self._fd).st_size
                    if size < _SIZE:
                        # Written, not truncated: the disk block is allocated now, so
                        # a later bump on a full disk cannot fault (SIGBUS) the process.
                        os.pwrite(self._fd, bytes(_SIZE - size), size)
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(self._fd, _SIZE)
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> SharedCounters:
        return cls(data_dir / "edge.generation")

    def pointers(self) -> int:
        """The pointer generation: changes whenever any process moved a pointer."""
        value: int = _COUNTER.unpack_from(self._map, _POINTERS)[0]
        return value

    def schedules(self) -> int:
        value: int = _COUNTER.unpack_from(self._map, _SCHEDULES)[0]
        return value

    def bump_pointers(self) -> int:
        """Increment the pointer generation; the new value."""
        return self._bump(_POINTERS)

    def bump_schedules(self) -> int:
        return self._bump(_SCHEDULES)

    def _bump(self, offset: int) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value: int = _COUNTER.unpack_from(self._map, offset)[0] + 1
            _COUNTER.pack_into(self._map, offset, value)
            return value
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
