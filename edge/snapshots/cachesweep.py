"""Every node's blob cache follows collections (PostgreSQL store).

How this works:
- A collection that removes blobs sends ``NOTIFY edge_blobs``; the fan-out
  (:mod:`edge.snapshots.fanout`) pokes this loop on it, and on every (re)connect,
  so a node that was down or cut off during a collection catches up as it returns.
- Without a poke it sweeps every :data:`CACHE_SWEEP_SECONDS` anyway: a safety net
  under LISTEN/NOTIFY, like the fan-out's heartbeat.
- A sweep removes each cached file :func:`sweepable` picks: a blob the database no
  longer holds (collected), or one no snapshot this node serves names that was
  fetched more than :data:`CACHE_IDLE_SECONDS` ago (old snapshots' blobs, so the
  cache stays bounded even without collections). A removed file is fetched from the
  database again on its next use.
- Pokes that arrive while a sweep runs coalesce into one more sweep: the cost is
  bounded by the cache's size, never by the number of collections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("edge.cache")

CACHE_SWEEP_SECONDS = 3600.0
CACHE_IDLE_SECONDS = 86_400.0  # an unserved blob's file stays this long after its fetch


def sweepable(
    files: Iterable[tuple[str, float]], *, stored: set[str], served: set[str], idle_before: float
) -> list[str]:
    """Which cached ``(sha256, mtime)`` files go: never one ``served`` names; one the
    database no longer ``stored``; one fetched (``mtime``) before ``idle_before``."""
    return [
        sha256
        for sha256, mtime in files
        if sha256 not in served and (sha256 not in stored or mtime < idle_before)
    ]


class CacheSweeper:
    """Runs ``sweep`` when poked, and every ``interval`` seconds; one at a time."""

    def __init__(
        self, sweep: Callable[[], Awaitable[int]], *, interval: float = CACHE_SWEEP_SECONDS
    ) -> None:
        self._sweep = sweep
        self._interval = interval
        self._wanted = asyncio.Event()
        self.sweeps = 0  # completed sweeps
        self.removed = 0  # files removed by them

    def poke(self) -> None:
        """Ask for a sweep soon (one more after the running one, if any)."""
        self._wanted.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wanted.wait(), self._interval)
            except TimeoutError:
                pass
            self._wanted.clear()
            try:
                removed = await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next poke or interval tries again
                log.warning("sweeping the blob cache failed: %s", exc)
                continue
            self.sweeps += 1
            self.removed += removed
            if removed:
                log.info("blob cache: removed %d file(s) of collected blobs", removed)
