"""The disk reserve: free space kept for publishing, below which visitors stop writing.

Visitor writes (form posts, page-view counts) are the only writes strangers can
cause. Once the store's disk has less than ``[server] disk_reserve_bytes`` free,
they are refused (forms answer 503) or held back (page views stay in memory, up
to a bound), so what is left goes to the operators: blob uploads, snapshot
creation, publish and rollback keep working until the disk is really full.

Asking the file system costs a syscall; the answer is kept for ``every`` seconds.
Pure apart from the ``free_bytes`` function it is given (``Store.free_bytes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class DiskReserve:
    """Whether visitor writes may go on; :meth:`low` is cheap enough per request."""

    __slots__ = ("_checked", "_clock", "_every", "_free_bytes", "_low", "reserve")

    def __init__(
        self,
        free_bytes: Callable[[], int | None],
        reserve: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: float = 1.0,
    ) -> None:
        self._free_bytes = free_bytes
        self.reserve = reserve
        self._clock = clock
        self._every = every
        self._checked = -float("inf")
        self._low = False

    def low(self) -> bool:
        """True while the store's disk has less free space than the reserve."""
        if self.reserve <= 0:
            return False
        now = self._clock()
        if now - self._checked >= self._every:
            self._checked = now
            try:
                free = self._free_bytes()
            except OSError:
                free = None  # unknown: the store's own errors still refuse a full disk
            self._low = free is not None and free < self.reserve
        return self._low
