"""Garbage collection on a timer: ``[retention] interval_seconds`` (off when 0).

Runs in worker 0 of each process group, one site after another, exactly what
``POST /v1/sites/{site}/gc`` does; the first run comes one interval after start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.snapshots.control import Control
from edge.timer import PokeableLoop

log = logging.getLogger("edge.gc")


class Collector(PokeableLoop):
    def __init__(self, control: Control, sites: Sequence[str], interval: float) -> None:
        super().__init__(log)
        self._control = control
        self._sites = list(sites)
        self._interval = interval
        self._started = False

    async def step(self) -> float:
        if not self._started:
            self._started = True
            return self._interval
        for site in self._sites:
            result = await self._control.collect(site, dry_run=False)
            if result.snapshots or result.blobs:
                log.info(
                    "collected %s: %d snapshot(s), %d blob(s), %d bytes",
                    site,
                    len(result.snapshots),
                    result.blobs,
                    result.bytes,
                )
        return self._interval


def collector_for(control: Control, sites: Sequence[str], interval: float) -> Collector | None:
    """The timer, when the configuration asks for one."""
    return Collector(control, sites, interval) if interval > 0 else None
