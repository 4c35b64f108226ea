"""Page views, counted in memory and written to the store in batches.

The request path only increments a counter (no SQLite); a background task flushes
every few seconds, and a clean shutdown flushes what is left. Counts are kept per
(site, environment, path, UTC day), so staging traffic never mixes with
production's.

A flush the store refuses (a full disk, a database away) or that the disk
reserve holds back keeps its counts for the next one, up to
:data:`MAX_PENDING` distinct (site, environment, path, day) counts; beyond that,
and at a shutdown whose last flush fails, the log says how many views were lost.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge.router import Env, Route
from edge.snapshots.reserve import DiskReserve
from edge.snapshots.store import Store

log = logging.getLogger("edge.analytics")
_DAY = 86_400
MAX_PENDING = 100_000  # distinct counts kept while the store refuses them


def day_of(epoch_day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_day * _DAY))


def _site_env(route_key: str) -> tuple[str, Env]:
    site, _, env = route_key.partition("\x00")
    return site, "staging" if env == "staging" else "production"


ViewKey = tuple[str, str]  # (route key, manifest path)


class PageViewCounter:
    """Page views per (route, path) and UTC day, as plain integers in dicts."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        # Keyed by the route's key string (its hash is cached), not the Route itself
        # (whose __hash__ is a Python call), and per day in a dict of its own, so a
        # cache hit of an HTML page costs one clock read and one dict update.
        self._counts: dict[tuple[str, str, int], int] = {}
        self._day = -1
        self._day_end = 0.0
        self._today: dict[ViewKey, int] = {}
        self._max_pending = max_pending
        self._held_back = False
        self.lost = 0  # views dropped so far (kept past the bound, or at shutdown)

    @staticmethod
    def key(route: Route, path: str) -> ViewKey:
        """The counter key of a page (made once per cached page, not per view)."""
        return (route.key, path)

    def count(self, route: Route, path: str) -> None:
        """One page view, now."""
        self.count_key((route.key, path))

    def count_key(self, key: ViewKey) -> None:
        """One page view, now, by :meth:`key`. The hot path."""
        if time.time() >= self._day_end:
            self._next_day()
        today = self._today
        today[key] = today.get(key, 0) + 1

    def _next_day(self) -> None:
        self._settle()
        now = time.time()
        self._day = int(now) // _DAY
        self._day_end = (self._day + 1) * _DAY

    def _settle(self) -> None:
        """Move today's counts into the dated ones."""
        counts, day = self._counts, self._day
        for (route_key, path), n in self._today.items():
            dated = (route_key, path, day)
            counts[dated] = counts.get(dated, 0) + n
        self._today = {}

    @property
    def pending(self) -> int:
        """Views counted and not written yet."""
        return sum(self._counts.values()) + sum(self._today.values())

    def _keep(self, counts: dict[tuple[str, str, int], int]) -> None:
        """Put unwritten counts back, within the bound (the oldest days stay first)."""
        for dated, n in self._counts.items():
            counts[dated] = counts.get(dated, 0) + n
        if len(counts) > self._max_pending:
            ordered = sorted(counts.items(), key=lambda kv: kv[0][2])
            dropped = ordered[self._max_pending :]
            lost = sum(n for _, n in dropped)
            self.lost += lost
            log.error(
                "%d page views lost: more than %d counts waited for the store",
                lost,
                self._max_pending,
            )
            counts = dict(ordered[: self._max_pending])
        self._counts = counts

    async def flush(self, store: Store, reserve: DiskReserve | None = None) -> None:
        """Write everything counted so far; on failure keep it for the next flush."""
        self._settle()
        if reserve is not None and reserve.low():
            if not self._held_back:
                log.warning(
                    "the store's disk is below its reserve (%d bytes): page views are"
                    " kept in memory until there is room",
                    reserve.reserve,
                )
            self._held_back = True
            self._keep({})
            return
        self._held_back = False
        counts, self._counts = self._counts, {}
        if not counts:
            return
        rows = [(*_site_env(key), path, day_of(d), n) for (key, path, d), n in counts.items()]
        # Shielded: a shutdown that cancels the flush loop lets this write finish
        # (the store closes after it) instead of dropping the counts taken.
        write = asyncio.ensure_future(store.add_page_views(rows))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writing %d page-view counts failed; kept for the next try", len(rows))
            self._keep(counts)
            raise

    async def flush_last(self, store: Store) -> None:
        """The shutdown flush: what cannot be written now is lost, and the log says so."""
        try:
            await self.flush(store)
        except Exception:
            pass  # logged in flush
        left = self.pending
        if left:
            self.lost += left
            log.error("%d page views lost: the store refused them at shutdown", left)

    async def run(self, store: Store, every: float, reserve: DiskReserve | None = None) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush(store, reserve)
            except Exception:
                pass  # logged in flush; retried next time
