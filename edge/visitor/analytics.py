"""Page views, counted in memory and written to the store in batches.

The request path only increments a counter (no SQLite); a background task flushes
every few seconds, and a clean shutdown flushes what is left. Counts are kept per
(site, environment, path, UTC day), so staging traffic never mixes with
production's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from edge.router import Env, Route
from edge.snapshots.store import Store

log = logging.getLogger("edge.analytics")
_DAY = 86_400


def day_of(epoch_day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_day * _DAY))


def _site_env(route_key: str) -> tuple[str, Env]:
    site, _, env = route_key.partition("\x00")
    return site, "staging" if env == "staging" else "production"


class PageViewCounter:
    def __init__(self) -> None:
        # Keyed by the route's key string (its hash is cached), not the Route itself
        # (whose __hash__ is a Python call on every cache hit of an HTML page).
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def count(self, route: Route, path: str) -> None:
        """One page view, now. The hot path: one dictionary update."""
        self._counts[(route.key, path, int(time.time()) // _DAY)] += 1

    async def flush(self, store: Store) -> None:
        """Write everything counted so far; on failure keep it for the next flush."""
        counts, self._counts = self._counts, Counter()
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
            self._counts.update(counts)
            raise

    async def run(self, store: Store, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush(store)
            except Exception:
                pass  # logged in flush; retried next time
