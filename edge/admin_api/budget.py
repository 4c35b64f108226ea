"""Heavy admin work a few at a time, within a byte budget.

Issue 19: eight concurrent creations of a 61 MB snapshot peaked at 2.7 GiB, 24
at 7.5 GiB. A request whose work is large (a snapshot body to decode and
validate, a big manifest to send, a diff of two big manifests) first takes a
slot here: at most :data:`SLOTS` run at once and their estimated bytes together
stay within the budget (one alone may exceed it: it then runs by itself). Small
work is never held up. A request that waits longer than :data:`ADMIT_SECONDS`
is answered 503 (``busy``) with ``Retry-After``, and nothing of it was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from edge.errors import EdgeError

SLOTS = 2
# Work estimated below this runs at once, whatever else runs.
LIGHT_BYTES = 1024 * 1024
ADMIT_SECONDS = 60.0


class Busy(EdgeError):
    """Too much large admin work under way: try again shortly."""

    status = 503
    code = "busy"


class WorkBudget:
    """Admits large admin work: :data:`SLOTS` at once, ``max_bytes`` together."""

    def __init__(self, max_bytes: int, *, slots: int = SLOTS) -> None:
        self.max_bytes = max(max_bytes, LIGHT_BYTES)
        self._slots = slots
        self._running = 0
        self._bytes = 0
        self._changed = asyncio.Condition()

    @property
    def running(self) -> int:
        return self._running

    def _fits(self, cost: int) -> bool:
        if self._running >= self._slots:
            return False
        return self._running == 0 or self._bytes + cost <= self.max_bytes

    @asynccontextmanager
    async def admit(self, cost: int) -> AsyncIterator[None]:
        """Hold a slot for work of about ``cost`` bytes (light work: no slot)."""
        if cost < LIGHT_BYTES:
            yield
            return
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(cost)),
                                       ADMIT_SECONDS)  # fmt: skip
            except TimeoutError:
                raise Busy(
                    "the admin API is busy with large requests; try again shortly",
                    retry_after=5,
                ) from None
            self._running += 1
            self._bytes += cost
        try:
            yield
        finally:
            async with self._changed:
                self._running -= 1
                self._bytes -= cost
                self._changed.notify_all()
