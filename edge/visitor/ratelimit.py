"""Per-client token buckets: how often one visitor may post a site's form. Pure.

How this works: each key (site, environment, form, client address) owns a
bucket holding up to ``burst`` tokens that refills at ``rate`` tokens per
second. A post takes one token; an empty bucket refuses and says how long until
the next token (the ``Retry-After`` of the 429). Buckets live in one dict in
least-recently-used order; when it holds ``max_clients`` keys the oldest quarter is
forgotten at once, so a flood of new addresses costs bounded memory and amortised
O(1) per post (a forgotten client starts again with a full bucket: the bound on
what many addresses can post is the inbox cap, not this table).

The clock is injected so tests step time by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

MAX_CLIENTS = 100_000  # buckets kept per process


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` posts at once, then ``per_minute`` posts a minute."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


class RateLimiter:
    """Token buckets by key; :meth:`take` is one dict lookup and some arithmetic."""

    __slots__ = ("_buckets", "_clock", "_max")

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS
    ) -> None:
        self._clock = clock
        self._max = max(max_clients, 4)
        # key -> (tokens, when they were counted)
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, rate: Rate) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds to wait."""
        now = self._clock()
        found = self._buckets.pop(key, None)  # re-inserted below: the dict stays in LRU order
        if found is None:
            tokens = float(rate.burst)
            if len(self._buckets) >= self._max:
                self._forget_oldest()
        else:
            tokens, then = found
            tokens = min(float(rate.burst), tokens + max(now - then, 0.0) * rate.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if rate.per_second <= 0:
            return math.inf
        return (1.0 - tokens) / rate.per_second

    def _forget_oldest(self) -> None:
        drop = self._max // 4
        for key in list(self._buckets)[:drop]:
            del self._buckets[key]


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    if math.isinf(seconds):
        return "3600"
    return str(max(1, math.ceil(seconds)))
