"""A background loop that sleeps until its next due time, or until poked."""

from __future__ import annotations

import asyncio
import logging

FAILURE_RETRY_SECONDS = 1.0


class PokeableLoop:
    """Runs :meth:`step` forever; each step says how long to sleep before the next.

    No polling: between steps the loop waits on an event with that timeout, and
    :meth:`poke` (new work arrived), or setting the ``wake`` event it was built
    with, cuts the wait short. A failing step is logged
    and retried, so the loop itself never dies. :meth:`stop` ends it between
    steps: a step in progress (a webhook POST, a scheduled swap) finishes and
    records its outcome rather than being cut off halfway.
    """

    def __init__(self, log: logging.Logger, *, wake: asyncio.Event | None = None) -> None:
        self._log = log
        # ``wake`` is given when what pokes the loop is built before it: the schedule
        # timer fires through Control, and Control tells it of new schedules.
        self._wake = wake if wake is not None else asyncio.Event()
        self._stopping = False

    def poke(self) -> None:
        """Run the next step now."""
        self._wake.set()

    async def step(self) -> float:
        """Do what is due; the seconds until the next step."""
        raise NotImplementedError

    def stop(self) -> None:
        """End :meth:`run` once the step in progress (if any) is done."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = await self.step()
            except Exception:
                self._log.exception("%s failed; retrying", type(self).__name__)
                delay = FAILURE_RETRY_SECONDS
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass
